"""Temperature, body-aware renormalisation and abstention."""
from __future__ import annotations

import numpy as np
import pytest

from model_factory import tiny_contract
from planet_terrain_plugin.core.calibrate import decide, decide_from_probs, restrict_to_body, softmax


def test_softmax_temperature_flattens_and_is_stable():
    logits = np.array([[1000.0, 0.0, -1000.0]])
    p = softmax(logits)
    assert np.isfinite(p).all() and p[0, 0] == pytest.approx(1.0)
    sharp, flat = softmax(np.array([[2.0, 0.0]]), 1.0), softmax(np.array([[2.0, 0.0]]), 4.0)
    assert sharp[0, 0] == pytest.approx(1 / (1 + np.exp(-2)))
    assert flat[0, 0] == pytest.approx(1 / (1 + np.exp(-0.5)))


def test_abstains_below_threshold_and_labels_above():
    c = tiny_contract(threshold=0.5, temperature=1.0)
    logits = np.log(np.array([[0.6, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05],
                              [0.3, 0.25, 0.15, 0.1, 0.1, 0.05, 0.05]]))
    sure, unsure = decide(logits, c)
    assert (sure.label, sure.class_id, sure.abstained) == ("crater", 1, False)
    assert sure.confidence == pytest.approx(0.6)
    assert (unsure.label, unsure.class_id, unsure.abstained) == ("unknown", 0, True)
    assert unsure.probs[0] == pytest.approx(0.3) and sum(unsure.probs) == pytest.approx(1.0)


def test_threshold_override_per_run():
    c = tiny_contract(threshold=0.9)
    logits = np.log(np.array([[0.6, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05]]))
    assert decide(logits, c)[0].abstained
    assert not decide(logits, c, threshold=0.5)[0].abstained
    with pytest.raises(ValueError, match="between 0 and 1"):
        decide(logits, c, threshold=1.5)


def test_moon_drops_martian_landforms_and_renormalises():
    c = tiny_contract(threshold=0.0)
    probs = np.array([[0.2, 0.5, 0.1, 0.1, 0.1, 0.0, 0.0]])  # dark dune on top: impossible on the Moon
    out, changed = restrict_to_body(probs, c, "Moon")
    assert changed
    np.testing.assert_allclose(out, [[2 / 3, 0, 0, 0, 1 / 3, 0, 0]])
    (d,) = decide_from_probs(out, c, 0.0, changed)
    assert d.label == "crater" and d.body_renormalised
    same, unchanged = restrict_to_body(probs, c, "Mars")
    assert not unchanged and same is probs


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        decide(np.zeros((2, 5)), tiny_contract())
