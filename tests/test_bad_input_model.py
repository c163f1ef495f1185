"""Issue 15, items 7, 8 and 17: rasters of other bodies, non-finite model output, broken contract numbers, and a
folder given as the model.

The user-facing paths run for real: ``processing.run`` of ``classify_extent`` and ``classify_grid``, the map
tool's controller and its QgsTask, the image command line, ``core.session.load_model``; on real files: a HiRISE
dark-dune crop written as a GeoTIFF in the CRS of another body, the shared Mars and Moon rasters, and real ONNX
files (tests/model_factory.py's tiny network, with NaN or infinite biases, or with broken contract numbers).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from osgeo import gdal, osr
from qgis.core import Qgis, QgsProject, QgsRasterLayer

from conftest import APOLLO, MARS_EQUI, raster_path, wait_until
from model_factory import build_tiny_model, tiny_contract, tiny_weights, write_model
from paths import HIRISE_V3
from planet_terrain_plugin.core import bodies, calibrate
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.bodies import detect_body
from planet_terrain_plugin.core.calibrate import decide
from planet_terrain_plugin.core.contract import KEY_PREFIX, ContractError, read_contract
from planet_terrain_plugin.core.pipeline import classify_blocks
from planet_terrain_plugin.gui.controller import ClassifyController
from planet_terrain_plugin.qgis_io.layer_info import BODY_CHOICES
from test_bad_input import EXTENT_ALG, GRID_ALG, Recorder, refused, run

#: A HiRISE crop of dark dunes (class 2 in labels-map-proj-v3.txt), 227 x 227 px.
DARK_DUNE = HIRISE_V3 / "map-proj-v3" / "ESP_018720_2655_RED-0140.jpg"
SERVED = "Mars, Moon, Vesta"


@pytest.fixture(autouse=True)
def _processing(terrain_processing):
    yield terrain_processing


# -- item 7: rasters of other bodies ----------------------------------------------------------------------------
def _iau_wkt(code: str) -> str:
    srs = osr.SpatialReference()
    assert srs.SetFromUserInput(code) == 0, f"PROJ does not know {code}"
    return srs.ExportToWkt(["FORMAT=WKT2_2019"])


def _isis_wkt(body: str, radius: float, projected: bool) -> str:
    """The WKT1 ISIS3 and GDAL's PDS drivers write (as the shared Mars and Vesta cubes carry)."""
    geog = (f'GEOGCS["GCS_{body}",DATUM["D_{body}",SPHEROID["{body}_localRadius",{radius},0]],'
            'PRIMEM["Reference_Meridian",0],UNIT["degree",0.0174532925199433]]')
    if not projected:
        return geog
    return (f'PROJCS["Equirectangular {body}",{geog},PROJECTION["Equirectangular"],'
            'PARAMETER["standard_parallel_1",0],PARAMETER["central_meridian",0],PARAMETER["false_easting",0],'
            'PARAMETER["false_northing",0],UNIT["metre",1]]')


UNNAMED_MERCURY = 'GEOGCS["unnamed ellipse",DATUM["unknown",SPHEROID["unnamed",2439700,0]],PRIMEM["Greenwich",0],' \
                  'UNIT["degree",0.0174532925199433]]'

#: (case id, WKT maker, body named in the message or None, geographic)
OTHER_BODIES = [
    ("Mercury IAU geographic", lambda: _iau_wkt("IAU_2015:19900"), "Mercury", True),
    ("Titan IAU equirectangular", lambda: _iau_wkt("IAU_2015:60610"), "Titan", False),
    ("Europa ISIS geographic", lambda: _isis_wkt("Europa", 1560800, False), "Europa", True),
    ("Ceres ISIS equirectangular", lambda: _isis_wkt("Ceres", 470000, True), "Ceres", False),
    ("Enceladus IAU, radius within Vesta's range", lambda: _iau_wkt("IAU_2015:60200"), "Enceladus", True),
    ("Pallas ISIS, radius within Vesta's range", lambda: _isis_wkt("Pallas", 256000, True), "Pallas", False),
    ("unnamed, Mercury's radius", lambda: UNNAMED_MERCURY, None, True),
]


def _dune_tif(path: Path, wkt: str, geographic: bool) -> Path:
    """The dark-dune crop as a GeoTIFF in ``wkt`` (0.25 m pixels, or their angle on a ~2,000 km body)."""
    data = gdal.Open(str(DARK_DUNE)).ReadAsArray()
    gt = (10.0, 7e-6, 0, 5.0, 0, -7e-6) if geographic else (1000.0, 0.25, 0, 2000.0, 0, -0.25)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[1], data.shape[0], 1, gdal.GDT_Byte)
    ds.SetGeoTransform(gt)
    ds.SetProjection(wkt)
    ds.GetRasterBand(1).WriteArray(data)
    ds = None
    return path


@pytest.fixture(params=OTHER_BODIES, ids=[c[0] for c in OTHER_BODIES])
def other_body(request, tmp_path):
    case, make_wkt, name, geographic = request.param
    return _dune_tif(tmp_path / "dune.tif", make_wkt(), geographic), name


def _unknown_body_words(name: str | None) -> str:
    found = rf"is for {name}\b" if name else r"names no body.*radius \(2,439\.7 km\) fits none"
    return rf"{found}.*this model knows terrain on {SERVED} only.*choose its body explicitly \(BODY parameter"


def test_core_names_the_other_body_and_detects_none_of_ours(other_body):
    path, name = other_body
    wkt = QgsRasterLayer(str(path), "dune").crs().toWkt(3)  # WKT2_2019, as layer_info reads it
    assert detect_body(wkt) is None
    assert bodies.named_body(wkt) == name


def test_raster_of_another_body_is_refused_by_both_algorithms(other_body, tiny_model, tmp_path):
    path, name = other_body
    out = tmp_path / "out.gpkg"
    words = _unknown_body_words(name)
    msg = refused(words, INPUT=str(path), MODEL=str(tiny_model), OUTPUT=str(out))
    assert "dark dune" not in msg
    refused(words, GRID_ALG, INPUT=str(path), MODEL=str(tiny_model), CELL_SIZE=32, CELL_UNIT=1, OUTPUT=str(out))
    assert not out.exists()
    # the way out: the user says which body the raster shows
    res = run(INPUT=str(path), MODEL=str(tiny_model), BODY=BODY_CHOICES.index("Mars"))
    (feature,) = res["OUTPUT"].getFeatures()
    assert feature["body"] == "Mars"


def test_map_tool_refuses_a_raster_of_another_body(qgis_iface, qgis_new_project, bar, tiny_model, tmp_path):
    path = _dune_tif(tmp_path / "titan.tif", _iau_wkt("IAU_2015:60610"), False)
    layer = QgsRasterLayer(str(path), "titan")
    QgsProject.instance().addMapLayer(layer)
    controller = ClassifyController(qgis_iface)
    done = []
    controller.listeners.append(done.append)
    try:
        assert controller.classify_layer_extent(layer, layer.extent(), str(tiny_model)) is not None
        assert wait_until(lambda: bool(done), 30)
        (msg,) = bar.get_messages(Qgis.Critical)
        assert "Classification failed: the layer's CRS" in msg
        assert "is for Titan" in msg and f"terrain on {SERVED} only" in msg
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_a_name_of_ours_on_a_foreign_radius_is_refused_saying_so(qgis_app):
    from qgis.core import QgsCoordinateReferenceSystem

    from planet_terrain_plugin.qgis_io.classify import BodyError, check_body
    from planet_terrain_plugin.qgis_io.layer_info import crs_info

    small_mars = QgsCoordinateReferenceSystem.fromWkt(
        'GEOGCS["GCS_Mars",DATUM["D_Mars",SPHEROID["Mars",1000,0]],PRIMEM["Greenwich",0],'
        'UNIT["degree",0.0174532925199433]]')
    with pytest.raises(BodyError, match=r"names Mars, but its radius \(1\.0 km\) or authority code is another "
                                        rf"body's; this model knows terrain on {SERVED} only"):
        check_body(crs_info(small_mars), tiny_contract())


def test_the_shared_rasters_and_earth_keep_their_bodies():
    """Regression guard for the detection change: our bodies are still found by name, code or radius."""
    assert detect_body(_iau_wkt("IAU_2015:49900")).name == "Mars"
    assert detect_body(_iau_wkt("IAU_2015:30110")).name == "Moon"
    assert detect_body(_isis_wkt("Vesta", 262700, True)).name == "Vesta"
    assert detect_body(_isis_wkt("LOLA", 1737400, False)).name == "Moon"  # an instrument's name is not a body
    assert detect_body(gdal.Open(str(raster_path(APOLLO))).GetProjection()).name == "Moon"  # unnamed, lunar radius
    assert bodies.named_body(gdal.Open(str(raster_path(APOLLO))).GetProjection()) is None
    assert bodies.named_body(gdal.Open(str(raster_path(MARS_EQUI))).GetProjection()) == "Mars"
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    assert detect_body(srs.ExportToWkt(), "EPSG:4326").name == "Earth"


# -- item 8: non-finite model output ----------------------------------------------------------------------------
def _write_bias_model(path: Path, bias_values: list[float]) -> Path:
    """The tiny network with its bias replaced (NaN or infinite logits), carrying a valid contract."""
    contract = tiny_contract()
    model = build_tiny_model()
    _, bias = tiny_weights(contract.num_classes)
    bias[: len(bias_values)] = bias_values
    (init,) = [i for i in model.graph.initializer if i.name == "B"]
    init.CopyFrom(numpy_helper.from_array(bias.astype(np.float32), "B"))
    for k, v in contract.to_metadata().items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


BAD_OUTPUTS = {"NaN": [math.nan] * 7, "+Inf in one class": [math.inf], "-Inf in one class": [0.0, -math.inf]}


@pytest.fixture(params=list(BAD_OUTPUTS), scope="module")
def bad_output_model(request, tmp_path_factory):
    session_mod.clear_cache()
    return _write_bias_model(tmp_path_factory.mktemp("nan") / "bad_output.onnx", BAD_OUTPUTS[request.param])


def _assert_invalid(feature_or_decision) -> None:
    get = (lambda k: getattr(feature_or_decision, k)) if not hasattr(feature_or_decision, "attribute") else \
        feature_or_decision.attribute
    assert get("label") == "unknown" and get("class_id") == 0 and bool(get("abstained")) is True
    confidence = get("confidence")
    assert confidence is None or math.isfinite(float(confidence))


@pytest.mark.parametrize("raster, cell_px", [(MARS_EQUI, 25), (APOLLO, 200)])
def test_non_finite_output_abstains_in_processing(bad_output_model, raster, cell_px):
    feedback = Recorder()
    res = run(feedback=feedback, INPUT=str(raster_path(raster)), MODEL=str(bad_output_model))
    assert res["LABEL"] == "unknown"
    assert f"Note: {calibrate.INVALID_OUTPUT_NOTE}" in feedback.infos  # said, not only stored
    assert res["CONFIDENCE"] is None or math.isfinite(res["CONFIDENCE"])
    (feature,) = res["OUTPUT"].getFeatures()
    _assert_invalid(feature)
    grid_feedback = Recorder()
    grid = run(GRID_ALG, feedback=grid_feedback, INPUT=str(raster_path(raster)), MODEL=str(bad_output_model),
               CELL_SIZE=cell_px, CELL_UNIT=1)
    assert f"{grid['CELLS_CLASSIFIED']} cell(s): {calibrate.INVALID_OUTPUT_NOTE}" in grid_feedback.errors
    features = list(grid["OUTPUT"].getFeatures())
    assert features and grid["CELLS_CLASSIFIED"] == len(features)
    for f in features:
        _assert_invalid(f)


def test_non_finite_output_abstains_through_the_core(bad_output_model):
    model = session_mod.load_model(str(bad_output_model))
    block = gdal.Open(str(DARK_DUNE)).ReadAsArray()
    for body in ("Mars", "Moon", None):
        (result,) = classify_blocks(model, [block], body=body)
        d = result.decision
        _assert_invalid(d)
        assert d.reason is calibrate.Reason.INVALID_OUTPUT and d.reason == "invalid_output"
        record = d.as_json(model.contract)
        json.dumps(record, allow_nan=False)  # valid JSON: no NaN anywhere
        assert record["reason"] == "invalid_output" and record["label"] == "unknown"


def test_reason_is_empty_for_a_label_and_low_confidence_below_the_threshold():
    contract = tiny_contract()
    logits = np.array([[5.0, 0, 0, 0, 0, 0, 0], [0.1, 0, 0, 0, 0, 0, 0]])
    sure, unsure = decide(logits, contract, "Mars", threshold=0.5)
    assert (sure.label, sure.reason, sure.abstained) == ("crater", calibrate.Reason.NONE, False)
    assert (unsure.label, unsure.reason, unsure.abstained) == ("unknown", calibrate.Reason.LOW_CONFIDENCE, True)
    assert sure.as_json(contract)["reason"] == "" and unsure.as_json(contract)["reason"] == "low_confidence"
    (nan,) = decide(np.full((1, 7), np.nan), contract, "Moon", threshold=0.0)  # even at threshold 0
    assert (nan.label, nan.reason) == ("unknown", calibrate.Reason.INVALID_OUTPUT)


# -- item 8: contract numbers -----------------------------------------------------------------------------------
BROKEN_NUMBERS = [
    ("mean", "[NaN, 0.5, 0.5]", "finite"),
    ("mean", "[0.5, Infinity, 0.5]", "finite"),
    ("std", "[0.25, NaN, 0.25]", "finite"),
    ("std", "[0.25, Infinity, 0.25]", "finite"),
    ("std", "[0.25, 0, 0.25]", "> 0"),
    ("temperature", "1e-300", r"between 0\.001 and 1000"),
    ("temperature", "Infinity", r"between 0\.001 and 1000"),
    ("temperature", "NaN", r"between 0\.001 and 1000"),
    ("threshold", "NaN", r"in \[0, 1\]"),
    ("gsd_range_m", "[0.25, Infinity]", "finite"),
]


def _broken_number_model(folder: Path, key: str, value: str) -> Path:
    md = tiny_contract().to_metadata()
    md[KEY_PREFIX + key] = value
    return write_model(folder / f"{key}_{value.strip('[]').replace(', ', '_')}.onnx", md)


@pytest.mark.parametrize("key, value, words", BROKEN_NUMBERS)
def test_non_finite_contract_numbers_are_refused(tmp_path, key, value, words):
    session_mod.clear_cache()
    path = _broken_number_model(tmp_path, key, value)
    pattern = rf"Model '{path}': key '{KEY_PREFIX}{key}' .*{words}.* Re-export the model with `make export`\."
    with pytest.raises(ContractError, match=pattern):
        session_mod.load_model(str(path))
    refused(f"MODEL: {pattern}", INPUT=str(raster_path(APOLLO)), MODEL=str(path))
    refused(f"MODEL: {pattern}", GRID_ALG, INPUT=str(raster_path(MARS_EQUI)), MODEL=str(path))


# -- item 17: a folder as the model -----------------------------------------------------------------------------
@pytest.mark.parametrize("contents, words", [
    ((), r"is a folder, not a model file; an \.onnx file inside it is expected, and it holds none\."),
    (("b.onnx", "a.onnx", "notes.txt"), r"is a folder, not a model file; an \.onnx file inside it is expected: "
                                        r"it holds a\.onnx, b\.onnx\."),
])
def test_a_folder_given_as_the_model_says_so(tmp_path, tiny_model, contents, words):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in contents:
        (folder / name).write_bytes(tiny_model.read_bytes() if name.endswith(".onnx") else b"x")
    pattern = rf"Model '{folder}': {words} Give the path of the \.onnx file itself\."
    with pytest.raises(ContractError, match=pattern):
        read_contract(str(folder))
    with pytest.raises(ContractError, match=pattern):
        session_mod.load_model(str(folder))
    msg = refused(f"MODEL: {pattern}", INPUT=str(raster_path(APOLLO)), MODEL=str(folder))
    assert "does not exist" not in msg
    refused(f"MODEL: {pattern}", GRID_ALG, INPUT=str(raster_path(APOLLO)), MODEL=str(folder))
    proc = subprocess.run([sys.executable, "-m", "planet_terrain_plugin.core", "classify", str(DARK_DUNE),
                           "--model", str(folder)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: Model '{folder}': is a folder, not a model file")
