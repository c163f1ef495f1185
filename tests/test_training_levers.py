"""The issue-5 levers at unit size: losses, mixing, the extra "other" output, ensembles and SSL losses.

Real torch on tiny tensors; each test pins the property the lever exists for.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.config import TrainConfig
from training.losses import class_balanced_weights, known_loss, mixed_known_loss, outlier_loss
from training.metrics import coverage_at_rejection
from training.mixing import mix_batch
from training.model import Ensemble, build_model, class_probs, output_count
from training.pretrain import byol_loss, ema_update, nt_xent


def test_class_balanced_weights_favour_rare_classes_and_average_one():
    w = class_balanced_weights(np.array([275, 70, 11]), beta=0.999)
    assert w[2] > w[1] > w[0] and w.mean() == pytest.approx(1.0)
    # beta -> 0 gives equal weights: the lever is a continuum from "none" to inverse frequency
    assert np.allclose(class_balanced_weights(np.array([275, 70, 11]), beta=1e-9), 1.0)


def test_focal_loss_down_weights_easy_examples():
    logits = torch.tensor([[8.0, 0.0], [0.2, 0.0]])
    y = torch.tensor([0, 0])
    plain, focal = known_loss(logits, y), known_loss(logits, y, focal_gamma=2.0)
    assert (focal < plain).all() and focal[0] / plain[0] < focal[1] / plain[1]


def test_mixed_loss_blends_the_two_labels():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    a, b = torch.tensor([0]), torch.tensor([2])
    got = mixed_known_loss(logits, a, b, 0.3)
    assert float(got) == pytest.approx(0.3 * float(known_loss(logits, a)) + 0.7 * float(known_loss(logits, b)))


def test_outlier_loss_uniform_is_lowest_at_uniform_and_class_mode_targets_extra_output():
    flat, peaked = torch.zeros(1, 7), torch.tensor([[5.0, 0, 0, 0, 0, 0, 0]])
    assert outlier_loss(flat, "uniform", 7) < outlier_loss(peaked, "uniform", 7)
    other_high = torch.tensor([[0.0] * 7 + [6.0]])
    other_low = torch.tensor([[0.0] * 7 + [-6.0]])
    assert outlier_loss(other_high, "class", 7) < outlier_loss(other_low, "class", 7)


@pytest.mark.parametrize("mixup,cutmix", [(0.4, 0.0), (0.0, 1.0)])
def test_mix_batch_keeps_shape_and_reports_the_share(mixup, cutmix):
    x = torch.arange(4 * 3 * 8 * 8, dtype=torch.float32).reshape(4, 3, 8, 8)
    out, perm, lam = mix_batch(x, np.random.default_rng(1), mixup, cutmix, p=1.0)
    assert out.shape == x.shape and perm is not None and 0.0 <= lam <= 1.0
    if cutmix:  # lam is the share of pixels still from the original image
        same = (out == x).all(1).float().mean(dim=(1, 2))
        moved = perm != torch.arange(4)
        assert torch.allclose(same[moved], torch.full_like(same[moved], lam))
    else:
        assert torch.allclose(out, lam * x + (1 - lam) * x[perm])
    untouched, none, one = mix_batch(x, np.random.default_rng(1), mixup, cutmix, p=0.0)
    assert none is None and one == 1.0 and torch.equal(untouched, x)


def test_extra_other_output_is_dropped_from_class_probabilities():
    cfg = TrainConfig(outlier_mode="class")
    assert output_count(cfg, 7) == 8 and output_count(TrainConfig(), 7) == 7
    p = class_probs(np.array([[0.0] * 7 + [5.0]]), 1.0, 7)
    assert p.shape == (1, 7) and p.sum() < 0.05  # "other" took the mass: abstention sees a low top probability


def test_config_refuses_unknown_choices():
    with pytest.raises(ValueError, match="outlier_mode"):
        TrainConfig(outlier_mode="8th")


def test_ensemble_averages_member_probabilities():
    torch.manual_seed(0)
    members = [build_model(7, "resnet18") for _ in range(2)]
    ens = Ensemble(members).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = torch.stack([torch.softmax(m(x), 1) for m in members]).mean(0)
        assert torch.allclose(torch.softmax(ens(x), 1), want, atol=1e-6)
    assert build_model(7, "resnet18", ensemble_size=3).fc.out_features == 7


def test_nt_xent_rewards_matching_views_and_byol_is_zero_at_agreement():
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    assert nt_xent(z, z + 0.01 * torch.randn(8, 16), 0.2) < nt_xent(z, torch.randn(8, 16), 0.2)
    assert float(byol_loss(z, z)) == pytest.approx(0.0, abs=1e-6)


def test_ema_update_moves_target_towards_online():
    online, target = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = float((target.weight - online.weight).abs().sum())
    ema_update(target, online, 0.5)
    assert float((target.weight - online.weight).abs().sum()) == pytest.approx(before / 2, rel=1e-5)


def test_coverage_at_rejection():
    other = np.linspace(0, 0.5, 11)          # 90 % rejected needs a threshold just above 0.45
    known = np.array([0.3, 0.46, 0.6, 0.9])
    assert coverage_at_rejection(known, other, 0.9) == pytest.approx(0.75)
