"""The mirror view inside the model file (``export.mirror_views``): on the tiny network and on the shipped file."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.common import set_contract
from export.mirror_views import VIEWS_KEY, add_mirror_view
from export.ood_graph import GaussianStats, add_ood_score
from model_factory import TINY_OOD_STATS, build_tiny_model, tiny_contract
from planet_terrain_plugin.core.contract import EMBEDDING, read_contract
from planet_terrain_plugin.core.models import default_model_path


def _run(model: onnx.ModelProto | str, x: np.ndarray) -> dict[str, np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    src = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))


def _left_right_image(n: int = 4) -> np.ndarray:
    """Images whose left half is brighter than the right, so one view differs from its mirror image."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (n, 3, 32, 32)).astype(np.float32)
    x[..., :16] += 1.5
    return x


def _tiny_with_stage_ood() -> onnx.ModelProto:
    """The tiny network with an OOD score on an intermediate value (the pooled input, as layer3 in ResNet)."""
    stats = GaussianStats("pooled", **TINY_OOD_STATS)
    return add_ood_score(build_tiny_model(), stats)


@pytest.mark.parametrize("opset", [17, 18])
def test_logits_and_embedding_are_the_mean_of_the_views_and_ood_reads_the_first(opset):
    x = _left_right_image()
    one = build_tiny_model(opset=opset) if opset == 18 else _tiny_with_stage_ood()
    before, mirrored = _run(one, x), _run(one, x[..., ::-1].copy())
    two = _run(add_mirror_view(onnx.load_from_string(one.SerializeToString())), x)
    np.testing.assert_allclose(two["logits"], (before["logits"] + mirrored["logits"]) / 2, rtol=1e-5, atol=1e-6)
    if opset == 17:
        np.testing.assert_allclose(two["embedding"], (before["embedding"] + mirrored["embedding"]) / 2, atol=1e-6)
        np.testing.assert_array_equal(two["ood_score"], before["ood_score"])
    assert two["logits"].shape == before["logits"].shape


def test_a_second_view_or_an_embedding_fed_ood_score_is_refused():
    two = add_mirror_view(build_tiny_model())
    with pytest.raises(ValueError, match="already averages a mirror view"):
        add_mirror_view(two)
    ood_on_embedding = add_ood_score(build_tiny_model(), GaussianStats(EMBEDDING, **TINY_OOD_STATS))
    with pytest.raises(ValueError, match="reads the embedding"):
        add_mirror_view(ood_on_embedding)


def test_the_shipped_model_answers_an_image_and_its_mirror_alike():
    """The shipped file averages the mirror view: its logits cannot tell an image from its mirror image (up to
    fp16 rounding), while its out-of-distribution score, read from the first view, can."""
    path = str(default_model_path())
    assert read_contract(path).metrics[VIEWS_KEY] == 2
    x = np.random.default_rng(3).normal(0, 1, (3, 3, 96, 96)).astype(np.float32)
    x[..., :48] += 1.0
    a, b = _run(path, x), _run(path, x[..., ::-1].copy())
    np.testing.assert_allclose(a["logits"], b["logits"], atol=2e-2)
    assert np.abs(a["ood_score"] - b["ood_score"]).max() > 1e-3


def test_make_ood_refuses_a_two_view_file(tmp_path):
    """The OOD score is fitted on one view (its layers' batch is the images'); on a two-view file it would pool
    twice as many rows as images, so ``make ood`` says which order works instead."""
    from training import ood

    path = tmp_path / "two.onnx"
    onnx.save(add_mirror_view(build_tiny_model()), str(path))
    with pytest.raises(SystemExit, match="make ood.*then add the view"):
        ood.main(["--model", str(path), "--out", str(tmp_path / "out")])


def test_make_mirror_views_wants_the_ood_score_first(tmp_path):
    """The views go in after ``make ood`` (which fits on one view): a file without the score is refused."""
    from export.ship_views import build

    path = tmp_path / "one.onnx"
    onnx.save(set_contract(build_tiny_model(), tiny_contract()), str(path))
    with pytest.raises(ValueError, match="run `make ood` on it first"):
        build(path, tmp_path / "out", "9.9.9", None, tmp_path)
    assert not (tmp_path / "out").exists()
