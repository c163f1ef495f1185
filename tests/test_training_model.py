"""Local init weights: a torchvision-format state dict with a 1000-way head loads into the 7-way network."""
from __future__ import annotations

import pytest
import torch

from training.model import build_model, load_init, set_backbone_trainable


def test_load_init_skips_mismatched_head_and_freezes_backbone(tmp_path):
    torch.manual_seed(0)
    donor = build_model(1000)
    path = tmp_path / "resnet50.pth"
    torch.save(donor.state_dict(), path)
    model = build_model(7)
    left = load_init(model, str(path))
    assert left == ["fc.bias", "fc.weight"]
    assert torch.equal(model.conv1.weight, donor.conv1.weight)
    set_backbone_trainable(model, False)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]


def test_load_init_refuses_a_foreign_backbone(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="backbone"):
        load_init(build_model(7), str(path))
