"""The training reader agrees with the contract and feeds the network exactly what the plugin feeds it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from paths import HIRISE_V1, HIRISE_V3

from planet_terrain_plugin.core.contract import HIRISE_LANDFORMS
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.preprocess import preprocess
from training.config import TrainConfig
from training.dataset import DatasetError, GrayCache, class_mapping, parse_name, read_records

REPO = Path(__file__).resolve().parent.parent
V3, V1 = HIRISE_V3, HIRISE_V1
needs_data = pytest.mark.skipif(not (V3.is_dir() and V1.is_dir()), reason="shared HiRISE data not present")


def test_parse_name_handles_augmentations():
    assert parse_name("ESP_011289_1950_RED-0021-r90.jpg") == ("ESP_011289_1950_RED", "0021", "r90")
    assert parse_name("PSP_004673_0935_RED-0007.jpg") == ("PSP_004673_0935_RED", "0007", "")
    assert parse_name("ESP_011289_1950_RED-0021-brt.jpg")[2] == "brt"
    with pytest.raises(DatasetError):
        parse_name("not-a-landmark.png")


def test_classmap_must_match_contract():
    good = {0: "other", **{c.id: c.name for c in HIRISE_LANDFORMS}}
    assert class_mapping("v3", good, Path("x.csv"))[7] == (7, "spider")
    swapped = {**good, 6: "spider", 7: "swiss cheese"}
    with pytest.raises(DatasetError, match="HIRISE_LANDFORMS"):
        class_mapping("v3", swapped, Path("x.csv"))
    with pytest.raises(DatasetError):
        class_mapping("v1", {0: "other", 1: "glacier"}, Path("y.csv"))


@needs_data
def test_v1_edge_is_other_and_labels_map_by_name():
    recs = read_records(V1, "v1")
    edge = [r for r in recs if r.raw_label == "edge"]
    streak = [r for r in recs if r.raw_label == "streak"]
    assert edge and all(r.label == 0 for r in edge)
    assert streak and all(r.label == 3 for r in streak)  # v1 "streak" = contract "slope streak" (id 3)


@needs_data
def test_eval_tensor_equals_plugin_preprocess_on_real_images():
    """Training's deterministic input is the plugin's ``preprocess`` to 1e-6, v3 and v1 alike."""
    contract = TrainConfig(input_size=96).base_contract()
    recs = read_records(V3, "v3")[::400] + read_records(V1, "v1")[::400]
    cache = GrayCache(recs, contract)
    for r in recs:
        block, mask = read_image(r.path)
        want = preprocess(block, contract, mask).tensor
        got = cache.eval_tensor(r)
        assert got.shape == want.shape == (3, 96, 96)
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
