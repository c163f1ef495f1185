"""The OOD score and abstention reasons in the core: contract fields, sessions with 1-3 outputs, decide().

Real tiny ONNX files (tests/model_factory.py) whose embedding and OOD score come from the exporter's own graph
code (export/embedding.py, export/ood_graph.py), so what is tested here is what a shipped file computes.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from model_factory import THREE_OUTPUTS, TWO_OUTPUTS, tiny_contract, write_model, write_valid_model
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.calibrate import Reason, decide, decide_from_probs
from planet_terrain_plugin.core.contract import KEY_PREFIX, ContractError, ModelContract, read_contract
from planet_terrain_plugin.core.pipeline import classify_blocks
from planet_terrain_plugin.core.session import load_model

OOD_THRESHOLD = 3.0


@pytest.fixture(autouse=True)
def _fresh_sessions():
    session_mod.clear_cache()
    yield
    session_mod.clear_cache()


def _grey(value: float, n: int = 1) -> np.ndarray:
    """Normalised model input of a uniform image of ``value`` (0..1) on every channel."""
    return np.full((n, 3, 32, 32), (value - 0.5) / 0.25, np.float32)


def test_contract_round_trips_outputs_and_ood_threshold(tmp_path):
    path = write_valid_model(tmp_path / "m.onnx", outputs=THREE_OUTPUTS, ood_threshold=OOD_THRESHOLD)
    c = read_contract(str(path))
    assert c.outputs == THREE_OUTPUTS and c.ood_threshold == OOD_THRESHOLD


def test_file_without_output_keys_reads_as_logits_only(tmp_path):
    md = tiny_contract().to_metadata()
    for key in ("outputs", "ood_threshold"):
        md.pop(KEY_PREFIX + key)
    c = read_contract(str(write_model(tmp_path / "old.onnx", md)))
    assert c.outputs == ("logits",) and c.ood_threshold is None
    assert load_model(str(tmp_path / "old.onnx")).run(_grey(0.5)).ood_score is None


@pytest.mark.parametrize("changes, key", [
    (dict(outputs=("logits", "ood_score")), "outputs"),
    (dict(outputs=THREE_OUTPUTS), "ood_threshold"),  # a score without a threshold
    (dict(outputs=TWO_OUTPUTS, ood_threshold=1.0), "ood_threshold"),  # a threshold without a score
    (dict(outputs=THREE_OUTPUTS, ood_threshold=float("nan")), "ood_threshold"),
])
def test_contract_refuses_inconsistent_outputs(changes, key):
    with pytest.raises(ContractError, match=f"'{KEY_PREFIX}{key}'"):
        tiny_contract(**changes)


def test_contract_refuses_non_number_threshold_in_file(tmp_path):
    md = tiny_contract(outputs=THREE_OUTPUTS, ood_threshold=1.0).to_metadata()
    md[KEY_PREFIX + "ood_threshold"] = '"high"'
    with pytest.raises(ContractError, match="ood_threshold' should be a number or null"):
        ModelContract.from_metadata(md, "x.onnx")


@pytest.mark.parametrize("outputs", [("logits",), TWO_OUTPUTS, THREE_OUTPUTS])
def test_session_reads_every_layout(tmp_path, outputs):
    extra = {"ood_threshold": OOD_THRESHOLD} if "ood_score" in outputs else {}
    model = load_model(str(write_valid_model(tmp_path / "m.onnx", outputs=outputs, **extra)))
    out = model.run(_grey(0.9, 3))
    assert out.logits.shape == (3, 7)
    assert (out.embedding is None) == ("embedding" not in outputs)
    if "embedding" in outputs:
        assert out.embedding.shape == (3, 3) and out.embedding.dtype == np.float32
    if "ood_score" in outputs:
        np.testing.assert_allclose(out.ood_score, np.sqrt(3) * 0.4 / 0.25, rtol=1e-5)
    np.testing.assert_array_equal(model.logits(_grey(0.9, 3)), out.logits)


def test_file_with_more_outputs_than_its_contract_is_refused(tmp_path):
    md = tiny_contract().to_metadata()  # says logits only
    path = write_model(tmp_path / "m.onnx", md, outputs=TWO_OUTPUTS)
    with pytest.raises(ContractError, match=r"2 outputs; expected 1 and 1 \(logits\).*make export"):
        load_model(str(path))


def test_fixed_batch_model_pads_every_output(tmp_path):
    path = write_valid_model(tmp_path / "m.onnx", outputs=THREE_OUTPUTS, ood_threshold=OOD_THRESHOLD)
    model = load_model(str(path))
    model.fixed_batch = 2  # as a network exported for batch 2: three images are fed as 2 + (1 + padding)
    out = model.run(_grey(0.5, 3))
    assert out.logits.shape == (3, 7) and out.embedding.shape == (3, 3) and out.ood_score.shape == (3,)


def test_out_of_distribution_abstains_even_when_confident():
    c = tiny_contract(outputs=THREE_OUTPUTS, ood_threshold=OOD_THRESHOLD, threshold=0.3)
    logits = np.array([[10.0, 0, 0, 0, 0, 0, 0]] * 2)
    sure, odd = decide(logits, c, ood_scores=np.array([1.0, 5.0]))
    assert sure.label == "crater" and sure.reason is Reason.NONE and sure.ood_score == 1.0
    assert odd.abstained and odd.label == "unknown" and odd.reason is Reason.OUT_OF_DISTRIBUTION
    assert odd.confidence > 0.99, "the probabilities are kept, only the label is withheld"
    assert odd.as_json(c)["reason"] == "out_of_distribution" and odd.as_json(c)["ood_score"] == 5.0


def test_nan_ood_score_counts_as_unfamiliar_and_no_score_means_no_gate():
    c = tiny_contract(outputs=THREE_OUTPUTS, ood_threshold=OOD_THRESHOLD)
    logits = np.array([[10.0, 0, 0, 0, 0, 0, 0]])
    assert decide(logits, c, ood_scores=np.array([np.nan]))[0].reason is Reason.OUT_OF_DISTRIBUTION
    assert decide(logits, c)[0].label == "crater"
    assert decide(logits, tiny_contract(), ood_scores=np.array([99.0]))[0].label == "crater", \
        "a contract without ood_threshold has no gate"


def test_invalid_output_wins_over_out_of_distribution():
    c = tiny_contract(outputs=THREE_OUTPUTS, ood_threshold=OOD_THRESHOLD)
    (d,) = decide(np.array([[np.nan] * 7]), c, ood_scores=np.array([99.0]))
    assert d.reason is Reason.INVALID_OUTPUT


def test_moon_abstains_without_evidence_for_its_classes():
    """On the Moon only crater and impact ejecta remain: renormalised as before, a row with 5 % crater and 1 %
    ejecta would be 83 % sure of crater. It is divided by at least half their uniform share (1/7) instead, so it
    stays at 35 %, abstains, and a re-label from its stored probabilities agrees at every threshold."""
    c = tiny_contract(threshold=0.5)
    mars_like = np.log(np.array([[0.05, 0.60, 0.20, 0.10, 0.01, 0.02, 0.02]]))
    (d_mars,) = decide(mars_like, c, "Moon")
    assert d_mars.abstained and d_mars.reason is Reason.LOW_CONFIDENCE
    np.testing.assert_allclose(d_mars.probs[0], 0.35) and np.testing.assert_allclose(sum(d_mars.probs), 0.42)
    enough = np.log(np.array([[0.15, 0.168, 0.168, 0.168, 0.01, 0.168, 0.168]]))
    (d_crater,) = decide(enough, c, "Moon")
    assert d_crater.label == "crater" and abs(sum(d_crater.probs) - 1) < 1e-9, "16 % is enough: plain renormalising"
    assert decide(mars_like, c, "Mars")[0].label == "dark dune"
    for t in (0.0, 0.2, 0.3, 0.5, 0.9):
        for logits in (mars_like, enough):
            (fresh,) = decide(logits, c, "Moon", threshold=t)
            (again,) = decide_from_probs(np.array([fresh.probs]), c, t, True)
            assert again == fresh, t


def test_fixed_reasons_survive_a_new_threshold():
    c = tiny_contract()
    probs = np.array([[0.9, 0.1, 0, 0, 0, 0, 0]] * 2)
    a, b = decide_from_probs(probs, c, 0.1, fixed=[Reason.OUT_OF_DISTRIBUTION, Reason.NONE])
    assert a.reason is Reason.OUT_OF_DISTRIBUTION and a.abstained
    assert b.label == "crater"


def test_pipeline_carries_the_ood_score_and_reason(tmp_path):
    """A real raster-like block through preprocessing: a stretched image is mid-grey on average, so the tiny
    model finds it familiar; a contract threshold below its score makes the same image unfamiliar."""
    block = np.add.outer(np.arange(64), np.arange(64)).astype(np.float32)
    for threshold, reason in ((OOD_THRESHOLD, Reason.NONE), (1e-6, Reason.OUT_OF_DISTRIBUTION)):
        session_mod.clear_cache()
        path = write_valid_model(tmp_path / f"m{threshold}.onnx", outputs=THREE_OUTPUTS, ood_threshold=threshold,
                                 threshold=0.0)
        (res,) = classify_blocks(load_model(str(path)), [block])
        assert res.decision.reason is reason and res.decision.ood_score is not None
        assert json.dumps(res.decision.as_json(load_model(str(path)).contract))
