"""``training.known_direction``: the logistic direction it measures separates what is separable, and only that."""
from __future__ import annotations

import numpy as np

from training.known_direction import fit_direction
from training.metrics import auroc


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
