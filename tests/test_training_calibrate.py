"""Temperature fitting, threshold choice and the metrics they are judged by, on synthetic data with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from planet_terrain_plugin.core.calibrate import softmax
from training.calibrate import fit_temperature, threshold_for_rejection
from training.metrics import abstention, auroc, macro_f1, reliability, risk_coverage


def test_fit_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 7))
    p = softmax(logits, 2.5)  # labels drawn from softmax(logits / 2.5): the NLL optimum is T = 2.5
    y = np.array([rng.choice(7, p=row) for row in p])
    assert fit_temperature(logits, y) == pytest.approx(2.5, rel=0.08)


def test_threshold_rejects_the_target_share():
    top = np.random.default_rng(1).uniform(0.14, 1.0, 1000)
    thr = threshold_for_rejection(top, 0.9)
    assert np.mean(top < thr) >= 0.9 and np.mean(top < thr) <= 0.901
    assert threshold_for_rejection(np.zeros(0), 0.9) == 0.0


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(2)
    pos, neg = rng.normal(1, 1, 60).round(1), rng.normal(0, 1, 50).round(1)
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(pos, neg) == pytest.approx(pairs)


def test_metrics_on_a_perfect_and_a_useless_classifier():
    y = np.array([0, 1, 2, 2, 3])
    assert macro_f1(y, y, 7) == 1.0  # absent classes do not count
    probs = np.eye(7)[y] * 0.9 + 0.1 / 7
    assert reliability(probs, y)["ece"] == pytest.approx(abs(1.0 - probs.max(1).mean()))
    rc = risk_coverage(probs, y)
    assert rc["risk"][-1] == 0.0 and rc["coverage"][-1] == 1.0
    a = abstention(probs, y, np.full((4, 7), 1 / 7), threshold=0.5)
    assert a["other_rejected"] == 1.0 and a["known_coverage"] == 1.0 and a["accuracy_on_accepted"] == 1.0
