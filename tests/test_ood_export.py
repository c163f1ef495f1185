"""Graph surgery: the embedding output and the in-graph OOD score, on tiny fp32/fp16 models and the shipped file."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.embedding import add_embedding_output, penultimate
from export.ood_graph import GaussianStats, add_ood_score, fit_gaussian, stage_output
from export.quantize import to_fp16
from model_factory import build_tiny_model
from paths import HIRISE_V3
from planet_terrain_plugin.core.contract import EMBEDDING, read_contract
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.models import default_model_path
from planet_terrain_plugin.core.preprocess import preprocess


def _run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))


def _logits_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same file with every output but the first removed (onnxruntime then drops the unused nodes)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[1:]
    return m


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 1, (5, 3, 32, 32)).astype(np.float32)


def test_fp32_embedding_is_the_final_layers_input(x):
    model = add_embedding_output(build_tiny_model())
    out = _run(model, x)
    assert [o.name for o in model.graph.output] == ["logits", "embedding"]
    np.testing.assert_allclose(out["embedding"], x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["logits"], _run(build_tiny_model(), x)["logits"])
    assert add_embedding_output(model) is model and len(model.graph.output) == 2, "idempotent"


def test_fp16_surgery_keeps_logits_bit_identical(tmp_path, x):
    """In an fp16 graph the embedding is cast to float32 without making onnxruntime round the shared value."""
    onnx.save(build_tiny_model(), str(tmp_path / "fp32.onnx"))
    fp16 = onnx.load(str(to_fp16(tmp_path / "fp32.onnx", tmp_path / "fp16.onnx")))
    before = _run(fp16, x)["logits"]
    out = _run(add_embedding_output(fp16), x)
    np.testing.assert_array_equal(out["logits"], before)
    assert out["embedding"].dtype == np.float32 and out["embedding"].shape == (5, 3)


def test_no_linear_layer_is_refused():
    model = build_tiny_model()
    model.graph.node[-1].op_type = "Add"  # logits no longer come from Gemm/MatMul
    model.graph.node[-1].ClearField("attribute")
    with pytest.raises(ValueError, match="does not come from a Gemm/MatMul"):
        penultimate(model)


def test_ood_graph_matches_numpy_and_refuses_a_second_score(x):
    feats = np.random.default_rng(1).normal(0, 1, (50, 3))
    stats = fit_gaussian(feats, 2, EMBEDDING)
    model = add_ood_score(build_tiny_model(), stats)
    out = _run(model, x)
    np.testing.assert_allclose(out["ood_score"], stats.distance(out["embedding"]), rtol=1e-5)
    np.testing.assert_allclose(stats.distance(feats).mean(), np.sqrt(2), rtol=0.2), "whitened: ~sqrt(k)"
    with pytest.raises(ValueError, match="already has an 'ood_score'"):
        add_ood_score(model, stats)


def test_opset_18_graph_gets_axes_as_input(x):
    model = add_ood_score(build_tiny_model(opset=18), GaussianStats(EMBEDDING, np.zeros(3), np.eye(3)))
    np.testing.assert_allclose(_run(model, x)["ood_score"], np.linalg.norm(x.mean(axis=(2, 3)), axis=1), rtol=1e-5)


def test_unknown_stage_is_named():
    with pytest.raises(ValueError, match="no stage 'layer9'"):
        stage_output(build_tiny_model(), "layer9")


def test_shipped_model_outputs_and_logits_parity():
    """The shipped file: logits, embedding, ood_score as its contract says; its logits are those of the same
    graph without the added outputs, bit for bit, on real HiRISE images through the plugin's preprocessing."""
    path = default_model_path()
    contract = read_contract(str(path))
    model = onnx.load(str(path))
    assert tuple(o.name for o in model.graph.output) == contract.outputs == ("logits", "embedding", "ood_score")
    assert contract.ood_threshold is not None
    images = sorted((HIRISE_V3 / "map-proj-v3").glob("*.jpg"))[:6]
    x = np.stack([preprocess(read_image(str(p))[0], contract).tensor for p in images]).astype(np.float32)
    out = _run(model, x)
    np.testing.assert_array_equal(out["logits"], _run(_logits_only(model), x)["logits"])
    assert out["embedding"].shape == (6, 2048) and out["ood_score"].shape == (6,)
    assert np.isfinite(out["ood_score"]).all()
