"""``training.known_direction``: the logistic direction it measures separates what is separable, and only that."""
from __future__ import annotations

import numpy as np

from training.known_direction import fit_direction
from training.landform_gate import fit_pair, pair_score
from training.metrics import auroc, coverage_at_rejection


def test_the_direction_finds_a_separating_axis_among_noise_axes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 40))
    known = np.arange(600) < 100  # imbalanced as the data are: few known, many "other"
    x[known, 7] += 3.0  # the one axis that tells them apart
    score = fit_direction(x, known, axes=40, l2=1e-3)
    fresh = rng.normal(size=(400, 40))
    fresh_known = np.arange(400) < 200
    fresh[fresh_known, 7] += 3.0
    s = score(fresh)
    assert auroc(s[fresh_known], s[~fresh_known]) > 0.95
    shuffled = fit_direction(x, rng.permutation(known), axes=40, l2=1e-3)(fresh)  # labels carry nothing
    assert auroc(shuffled[fresh_known], shuffled[~fresh_known]) < 0.75


def test_the_pair_gate_keeps_what_each_score_alone_would_lose():
    """Known images that only the softmax doubts and "other" images that only the direction doubts: the pair
    (a lower softmax threshold and the direction) keeps the first and rejects the second, and labels exactly
    the images whose two scores pass."""
    rng = np.random.default_rng(1)
    known = np.arange(1000) < 200
    top = np.where(known, rng.uniform(0.3, 1.0, 1000), rng.uniform(0.14, 0.9, 1000))
    direction = np.where(known, rng.normal(2.0, 1.0, 1000), rng.normal(-2.0, 1.0, 1000))
    ts, td, kept = fit_pair(top, direction, known, (0.2, 0.3, 0.5, 0.72))
    softmax_kept = coverage_at_rejection(top[known], top[~known])
    assert ts <= 0.3 and kept > softmax_kept + 0.3
    labelled = pair_score(top, direction, ts) > td
    assert np.array_equal(labelled, (top >= ts) & (direction > td))
    assert 1 - labelled[~known].mean() >= 0.9
    assert labelled[known].mean() == kept
    # where the softmax threshold changes nothing, the higher one is kept
    assert fit_pair(np.full(1000, 0.9), direction, known, (0.2, 0.5))[0] == 0.5
