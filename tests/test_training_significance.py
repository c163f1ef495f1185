"""The bootstrap over test source images: groups stay whole, identical runs differ by exactly zero, and a run
that is better on every source is called better while a coin flip is not."""
from __future__ import annotations

import numpy as np
import pytest

from training.significance import SplitPredictions, compare, interval, markdown, source_draws


def _run(rng, correct_share: float, n_sources: int = 12, per_source: int = 30) -> SplitPredictions:
    sources = np.repeat([f"S{k:02d}" for k in range(n_sources)], per_source)
    labels = np.tile(np.arange(per_source) % 4 - 1, n_sources)  # -1: the "other" pool
    probs = rng.dirichlet(np.ones(3), len(labels)) * 0.5
    known = labels >= 0
    right = known & (rng.random(len(labels)) < correct_share)
    probs[right, labels[right]] += 0.5  # right and confident on the known images it gets
    return SplitPredictions(probs, labels, sources)


def test_draws_take_whole_source_images():
    sources = np.array(["a", "a", "b", "c", "c", "c"])
    for rows in source_draws(sources, 20, seed=1):
        drawn = sources[rows]
        for name in set(drawn):  # a source drawn k times contributes all its images k times
            assert list(drawn).count(name) % list(sources).count(name) == 0
        assert len(set(drawn)) <= 3


def test_paired_intervals_separate_a_better_run_from_noise():
    rng = np.random.default_rng(0)
    weak, strong = _run(rng, 0.4), _run(rng, 0.95)
    strong = SplitPredictions(strong.probs, weak.labels, weak.sources)  # one split for all
    twin = SplitPredictions(weak.probs.copy(), weak.labels, weak.sources)
    rows = {r["run"]: r for r in compare({"weak": weak, "strong": strong, "twin": twin}, "weak", n_draws=300)}
    assert rows["strong"]["macro_f1_delta_ci"][0] > 0, "better on every source: the interval is above zero"
    assert rows["twin"]["macro_f1_delta_ci"] == (0.0, 0.0) and rows["twin"]["macro_f1_delta"] == 0.0
    lo, hi = rows["weak"]["macro_f1_ci"]
    assert lo < rows["weak"]["macro_f1"] < hi
    table = markdown(list(rows.values()), "weak")
    assert "| strong |" in table and "▲" in table and "12 test source images" in table


def test_runs_of_other_splits_are_refused():
    rng = np.random.default_rng(0)
    a, b = _run(rng, 0.5), _run(rng, 0.5, n_sources=10)
    with pytest.raises(ValueError, match="one split"):
        compare({"a": a, "b": b}, "a", n_draws=10)


def test_interval_ignores_undefined_draws():
    assert interval([np.nan, 1.0, 2.0, 3.0]) == pytest.approx((1.05, 2.95))
