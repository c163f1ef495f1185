"""Issue 16: every result carries why it is `unknown` (`reason`) and the OOD score, and re-labelling at another
threshold never turns an out-of-distribution cell into a landform (it did: the slider read only the stored
probabilities). Real QGIS, real ONNX files (tiny models with an OOD output, tests/model_factory.py)."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import NULL

from model_factory import write_valid_model
from planet_terrain_plugin.core.calibrate import Reason
from planet_terrain_plugin.core.contract import read_contract
from planet_terrain_plugin.qgis_io.relabel import relabel_layer
from test_bad_input import moon_wkt, texture, write_tif

GRID_ALG = "planet_terrain:classify_grid"
#: 0.00005° pixels, 1.5 m on the Moon: inside the model's ground-sampling range, so the reasons are the model's
#: own (on coarser pixels an abstention is ``out_of_scale``: tests/test_scale_first_class.py).
IN_RANGE = (145.0, 0.00005, 0, -20.0, 0, -0.00005)


@pytest.fixture(autouse=True)
def _processing(terrain_processing):
    yield terrain_processing


def run_grid(**params):
    import processing

    return processing.run(GRID_ALG, dict(params, CELL_SIZE=16, CELL_UNIT=1, OUTPUT="memory:"))["OUTPUT"]


def test_reason_field_says_why_and_survives_relabelling(tmp_path):
    data = (texture((64, 64)) * 200 + 20).astype(np.uint8)
    raster = write_tif(tmp_path / "moon.tif", [data], gdal.GDT_Byte, IN_RANGE, moon_wkt())
    plain = write_valid_model(tmp_path / "plain.onnx")
    layer = run_grid(INPUT=str(raster), MODEL=str(plain), THRESHOLD=0.0)
    assert {f["reason"] for f in layer.getFeatures()} == {""}
    assert all(f.attribute("ood_score") in (None, NULL) for f in layer.getFeatures())  # no OOD output: NULL
    relabel_layer(layer, read_contract(str(plain)), 1.0)  # everything below threshold 1
    assert {f["reason"] for f in layer.getFeatures()} == {Reason.LOW_CONFIDENCE.value}
    assert {f["label"] for f in layer.getFeatures()} == {"unknown"}
    relabel_layer(layer, read_contract(str(plain)), 0.0)
    assert {f["reason"] for f in layer.getFeatures()} == {""}


def test_out_of_distribution_cells_stay_unknown_at_any_threshold(tmp_path):
    data = (texture((64, 64)) * 200 + 20).astype(np.uint8)
    raster = write_tif(tmp_path / "moon.tif", [data], gdal.GDT_Byte, IN_RANGE, moon_wkt())
    ood = write_valid_model(tmp_path / "ood.onnx", outputs=("logits", "embedding", "ood_score"), ood_threshold=-1.0)
    layer = run_grid(INPUT=str(raster), MODEL=str(ood), THRESHOLD=0.0)
    features = list(layer.getFeatures())
    assert {f["reason"] for f in features} == {Reason.OUT_OF_DISTRIBUTION.value}
    assert all(f.attribute("ood_score") not in (None, NULL) for f in features)
    for threshold in (0.0, 0.5, 1.0):
        relabel_layer(layer, read_contract(str(ood)), threshold)
        assert {(f["label"], f["reason"]) for f in layer.getFeatures()} == {
            ("unknown", Reason.OUT_OF_DISTRIBUTION.value)}
