"""Distillation (training/distill.py) on real networks: the teacher sees the plugin's TTA views, the loss vanishes
only at the teacher, and a teacher that cannot teach this student is refused with what to do."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.augment import dihedral
from training.config import TrainConfig
from training.distill import Teacher, distill_loss
from training.model import build_model
from training.precision import Precision

CPU = torch.device("cpu")
FP32 = Precision(None, channels_last=False, grad_scaler=False)


@pytest.mark.parametrize("views", [2, 4, 8])
def test_the_teacher_averages_the_same_views_as_test_time_augmentation(views):
    from training.inference import TTA_VIEWS

    torch.manual_seed(0)
    net = build_model(7, "resnet18").eval()
    x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = np.mean([net(torch.from_numpy(np.ascontiguousarray(dihedral(x, k)))).numpy()
                            for k in TTA_VIEWS[views]], axis=0)
    got = Teacher(net, views, FP32, CPU).logits(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert not any(p.requires_grad for p in net.parameters()), "the teacher is frozen"


def test_the_loss_vanishes_at_the_teacher_and_pulls_towards_it():
    teacher = torch.tensor([[3.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    assert distill_loss(teacher.clone(), teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros_like(teacher, requires_grad=True)
    loss = distill_loss(student, teacher, 2.0)
    loss.backward()
    assert loss.item() > 0 and (torch.sign(-student.grad) == torch.sign(teacher - teacher.mean(1, keepdim=True))).all()


def test_a_teacher_that_cannot_teach_this_student_is_refused(tmp_path):
    from training import checkpoint

    with pytest.raises(FileNotFoundError, match="make cv"):
        Teacher.load(tmp_path / "nowhere.pt", 7, 4, FP32, CPU)
    cfg = TrainConfig(arch="resnet18", outlier_mode="class")
    net = build_model(8, "resnet18")
    checkpoint.save(tmp_path / "t.pt", model=net.state_dict(), config=json.loads(cfg.to_json()),
                    contract=cfg.base_contract().to_metadata())
    with pytest.raises(ValueError, match="8 outputs, the student 7"):
        Teacher.load(tmp_path / "t.pt", 7, 4, FP32, CPU)
    with pytest.raises(ValueError, match="distill_views"):
        Teacher(net, 3, FP32, CPU)
    with pytest.raises(ValueError, match="distill_weight"):
        TrainConfig(distill_weight=1.5)
