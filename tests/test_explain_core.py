"""Occlusion sensitivity (core/explain.py) with the shipped int8 model on real training images (issue 16 item 5).

No QGIS here: the core runs on numpy and the onnxruntime session. The input is a real HiRISE crater crop read and
preprocessed exactly as training evaluated it.
"""
from __future__ import annotations

import numpy as np
import pytest

from paths import HIRISE_V3
from planet_terrain_plugin.core import explain
from planet_terrain_plugin.core.calibrate import decide
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.models import variant_path
from planet_terrain_plugin.core.preprocess import preprocess
from planet_terrain_plugin.core.session import load_model

CRATER = "ESP_020606_1445_RED-0315.jpg"  # a training-split crater (class 1)


@pytest.fixture(scope="module")
def int8():
    return load_model(str(variant_path("int8")))


@pytest.fixture(scope="module")
def crater_input(int8):
    path = HIRISE_V3 / "map-proj-v3" / CRATER
    if not path.is_file():
        pytest.fail(f"shared image {path} is missing")
    block, mask = read_image(str(path))
    return preprocess(block, int8.contract, mask).tensor


def test_windows_tile_the_input_one_block_each():
    windows = explain.patch_windows(96, 16, 4)
    assert len(windows) == 24 * 24
    r0, r1, c0, c1 = windows[0]
    assert (r0, c0) == (0, 0) and (r1, c1) == (10, 10)  # clipped at the top-left corner
    r0, r1, c0, c1 = windows[24 * 10 + 5]  # block (10, 5): centred on its 4 px block
    assert (r0 + r1) / 2 == 10 * 4 + 2 and (c0 + c1) / 2 == 5 * 4 + 2 and r1 - r0 == 16
    with pytest.raises(ValueError, match="must divide"):
        explain.patch_windows(96, 16, 5)


def test_occlusion_map_of_a_real_crater(int8, crater_input):
    contract = int8.contract
    (decision,) = decide(int8.logits(crater_input[None]), contract)
    index = explain.class_to_explain(contract, decision.label, decision.probs)
    assert contract.class_names[index] == "crater"
    result = explain.occlusion_map(int8, crater_input, index)  # its time: `make bench` (benchmarks/heatmap.py)
    assert result.drop.shape == (24, 24) and result.drop.dtype == np.float32
    assert result.base_probability == pytest.approx(decision.probs[index], abs=1e-5)
    assert np.isfinite(result.drop).all() and result.drop.max() > 0.0


def test_the_same_patch_everywhere_gives_the_all_grey_drop(int8, crater_input):
    """A patch as large as the input greys it all: every block's drop is base - p(grey image)."""
    contract = int8.contract
    result = explain.occlusion_map(int8, crater_input, 0, patch=192, stride=48)
    grey = explain.class_probabilities(int8.run(np.zeros_like(crater_input)[None]), contract, None)[0, 0]
    assert np.allclose(result.drop, result.base_probability - grey, atol=1e-5)


def test_cancel_stops_between_batches(int8, crater_input):
    seen: list[float] = []
    with pytest.raises(explain.ExplainCancelled, match="cancelled"):
        explain.occlusion_map(int8, crater_input, 0, progress=seen.append, cancelled=lambda: bool(seen))
    assert len(seen) == 1 and seen[0] == pytest.approx(100 * explain.BATCH / 24 ** 2)


def test_unknown_explains_the_class_it_came_closest_to(int8):
    contract = int8.contract
    probs = [0.1, 0.05, 0.3, 0.2, 0.0, 0.1, 0.0]
    assert explain.class_to_explain(contract, "unknown", probs) == 2
    assert explain.class_to_explain(contract, "crater", probs) == 0
    assert explain.class_to_explain(contract, "unknown", [float("nan")] * 6 + [0.1]) == 6
