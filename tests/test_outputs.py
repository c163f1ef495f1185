"""Issue 15, items 1-3, 6 and 11: what the classification algorithms write, and what they never touch.

Every case runs the real algorithm (``processing.run`` or a ``QgsProcessingAlgRunnerTask``, as the panel and
``qgis_process`` do) in the test session's QGIS, on real rasters and real ONNX files, and checks the user's
files byte for byte afterwards.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from osgeo import gdal, ogr
from qgis.core import (QgsApplication, QgsProcessingAlgRunnerTask, QgsProcessingContext, QgsProcessingException,
                       QgsProcessingFeedback, QgsProject, QgsVectorLayer)

from conftest import APOLLO, raster_path, wait_until
from crs_equivalence import equivalent_crs
from model_factory import TEST_INPUT_SIZE, tiny_contract, tiny_weights, write_valid_model
from planet_terrain_plugin.qgis_io import export
from test_bad_input import moon_wkt, texture, write_tif

EXTENT_ALG = "planet_terrain:classify_extent"
GRID_ALG = "planet_terrain:classify_grid"
#: A 4 x 4 grid of 16-px cells over the 64 px test raster.
GRID_PARAMS = {"CELL_SIZE": 16, "CELL_UNIT": 1}


@pytest.fixture(autouse=True)
def _processing(terrain_processing):
    yield terrain_processing


@pytest.fixture
def moon_tif(tmp_path):
    """A 64 x 64 px textured byte raster in the Apollo CRS."""
    data = (texture() * 200 + 20).astype(np.uint8)
    return write_tif(tmp_path / "moon.tif", [data], gdal.GDT_Byte, (145.0, 0.005, 0, -20.0, 0, -0.005), moon_wkt())


def run(alg: str, **params):
    import processing

    return processing.run(alg, params)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_gpkg(path: Path, features: int = 100) -> Path:
    """A user's own GeoPackage with ``features`` points in one layer."""
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("field_work", geom_type=ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("note", ogr.OFTString))
    for i in range(features):
        f = ogr.Feature(layer.GetLayerDefn())
        f.SetField("note", f"site {i}")
        f.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({i} {i})"))
        layer.CreateFeature(f)
    ds = None
    return path


# -- item 1: the path QGIS would write, not the one typed ----------------------------------------------------
@pytest.mark.parametrize("alg", [EXTENT_ALG, GRID_ALG])
def test_output_without_extension_never_replaces_the_gpkg_it_names(tmp_path, moon_tif, tiny_model, alg):
    mine = user_gpkg(tmp_path / "field_work.gpkg")
    before = digest(mine)
    with pytest.raises(QgsProcessingException, match="already exists"):
        run(alg, INPUT=str(moon_tif), MODEL=str(tiny_model), OUTPUT=str(tmp_path / "field_work"), **(
            GRID_PARAMS if alg == GRID_ALG else {}))
    assert digest(mine) == before
    assert sorted(os.listdir(tmp_path)) == ["field_work.gpkg", "moon.tif"]


@pytest.mark.parametrize("name", ["x.xyz", "x.gpkg|layername=result", "x.gpkg|layername=field_work"])
def test_odd_output_names_never_touch_an_existing_file(tmp_path, moon_tif, tiny_model, name):
    for existing in ("x.xyz.gpkg", "x.gpkg"):
        user_gpkg(tmp_path / existing)
    before = {p.name: digest(p) for p in tmp_path.iterdir()}
    with pytest.raises(QgsProcessingException) as info:
        run(GRID_ALG, INPUT=str(moon_tif), MODEL=str(tiny_model), OUTPUT=str(tmp_path / name), **GRID_PARAMS)
    assert {p.name: digest(p) for p in tmp_path.iterdir()} == before
    assert "OUTPUT" in str(info.value)


def test_shapefile_output_never_replaces_a_lone_dbf_or_prj(tmp_path, moon_tif, tiny_model):
    (tmp_path / "survey.dbf").write_bytes(b"the user's attribute table")
    (tmp_path / "survey.prj").write_text("the user's projection")
    before = {p.name: digest(p) for p in tmp_path.iterdir()}
    with pytest.raises(QgsProcessingException, match="survey.dbf' already exists"):
        run(GRID_ALG, INPUT=str(moon_tif), MODEL=str(tiny_model), OUTPUT=str(tmp_path / "survey.shp"),
            **GRID_PARAMS)
    assert {p.name: digest(p) for p in tmp_path.iterdir()} == before


def test_output_without_extension_becomes_a_geopackage(tmp_path, moon_tif, tiny_model):
    result = run(GRID_ALG, INPUT=str(moon_tif), MODEL=str(tiny_model), OUTPUT=str(tmp_path / "cells"),
                 **GRID_PARAMS)
    assert result["OUTPUT"] == str(tmp_path / "cells.gpkg")
    assert QgsVectorLayer(result["OUTPUT"], "cells", "ogr").featureCount() == 16


# -- item 2: two runs, one output ----------------------------------------------------------------------------
def test_two_runs_to_one_output_keep_the_winners_file(tmp_path, tiny_model):
    data = (texture((384, 384)) * 200 + 20).astype(np.uint8)  # 576 cells: both runs are under way at once
    moon_tif = write_tif(tmp_path / "moon.tif", [data], gdal.GDT_Byte, (145.0, 0.005, 0, -20.0, 0, -0.005),
                         moon_wkt())
    out = tmp_path / "race.gpkg"
    alg = QgsApplication.processingRegistry().algorithmById(GRID_ALG)
    tasks, feedbacks, outcomes = [], [], []
    for _ in range(2):
        context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
        context.setProject(QgsProject.instance())
        params = {"INPUT": str(moon_tif), "MODEL": str(tiny_model), "OUTPUT": str(out), **GRID_PARAMS}
        task = QgsProcessingAlgRunnerTask(alg, params, context, feedback)
        task.executed.connect(lambda ok, results: outcomes.append((ok, results)))
        tasks.append((task, context))
        feedbacks.append(feedback)
    for task, _ in tasks:
        QgsApplication.taskManager().addTask(task)
    assert wait_until(lambda: len(outcomes) == 2, 60)
    assert sorted(ok for ok, _ in outcomes) == [False, True]
    layer = QgsVectorLayer(str(out), "race", "ogr")
    assert layer.isValid() and layer.featureCount() == 576
    assert sorted(os.listdir(tmp_path)) == ["moon.tif", "race.gpkg"]


# -- item 3: errors after the output would exist -------------------------------------------------------------
def test_nan_threshold_is_refused_and_leaves_nothing(tmp_path, moon_tif, tiny_model):
    for alg in (EXTENT_ALG, GRID_ALG):
        with pytest.raises(QgsProcessingException, match="THRESHOLD"):
            run(alg, INPUT=str(moon_tif), MODEL=str(tiny_model), THRESHOLD=float("nan"),
                OUTPUT=str(tmp_path / "out.gpkg"), **(GRID_PARAMS if alg == GRID_ALG else {}))
    assert sorted(os.listdir(tmp_path)) == ["moon.tif"]


def _tiny_graph(batch, input_type=TensorProto.FLOAT) -> onnx.ModelProto:
    """The model factory's network with a fixed batch size and/or another input type."""
    w, b = tiny_weights(7)
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "W", "B"], ["logits"])]
    if input_type != TensorProto.FLOAT:
        nodes.insert(0, helper.make_node("Cast", ["input"], ["x"], to=TensorProto.FLOAT))
    else:
        nodes.insert(0, helper.make_node("Identity", ["input"], ["x"]))
    s = TEST_INPUT_SIZE
    graph = helper.make_graph(nodes, "odd", [helper.make_tensor_value_info("input", input_type, [batch, 3, s, s])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 7])],
                              [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in tiny_contract().to_metadata().items():
        model.metadata_props.add(key=k, value=v)
    return model


def test_a_model_with_a_fixed_batch_of_one_classifies_a_grid(tmp_path, moon_tif):
    path = tmp_path / "batch1.onnx"
    onnx.save(_tiny_graph(1), str(path))
    result = run(GRID_ALG, INPUT=str(moon_tif), MODEL=str(path), OUTPUT=str(tmp_path / "out.gpkg"),
                 BATCH_SIZE=16, **GRID_PARAMS)
    assert result["CELLS_CLASSIFIED"] == 16


def test_a_model_with_a_uint8_input_is_refused_with_a_message(tmp_path, moon_tif):
    path = tmp_path / "uint8.onnx"
    onnx.save(_tiny_graph("N", TensorProto.UINT8), str(path))
    for alg in (EXTENT_ALG, GRID_ALG):
        with pytest.raises(QgsProcessingException, match="MODEL: .*float"):
            run(alg, INPUT=str(moon_tif), MODEL=str(path), OUTPUT=str(tmp_path / "out.gpkg"),
                **(GRID_PARAMS if alg == GRID_ALG else {}))
    assert sorted(os.listdir(tmp_path)) == ["moon.tif", "uint8.onnx"]


# -- item 6: a read that fails is an error, not nodata --------------------------------------------------------
def _vrt_over(tmp_path: Path, source: Path) -> Path:
    vrt = tmp_path / "mosaic.vrt"
    gdal.BuildVRT(str(vrt), [str(source)]).FlushCache()
    return vrt


def test_grid_over_a_vrt_whose_source_is_missing_fails_and_says_so(tmp_path, moon_tif, tiny_model):
    vrt = _vrt_over(tmp_path, moon_tif)
    moon_tif.rename(tmp_path / "moved.tif")
    with pytest.raises(QgsProcessingException, match="could not be read"):
        run(GRID_ALG, INPUT=str(vrt), MODEL=str(tiny_model), OUTPUT=str(tmp_path / "out.gpkg"), **GRID_PARAMS)
    assert not (tmp_path / "out.gpkg").exists()


def test_grid_over_a_truncated_raster_fails_and_says_so(tmp_path, tiny_model):
    data = (texture((512, 512)) * 200 + 20).astype(np.uint8)
    tif = write_tif(tmp_path / "cut.tif", [data], gdal.GDT_Byte, (145.0, 0.005, 0, -20.0, 0, -0.005), moon_wkt(),
                    options=("TILED=YES", "COMPRESS=DEFLATE"))
    size = tif.stat().st_size
    with open(tif, "r+b") as f:  # the tile index sits at the start: the tiles after the cut are gone
        f.truncate(size // 2)
    with pytest.raises(QgsProcessingException, match="could not be read"):
        run(GRID_ALG, INPUT=str(tif), MODEL=str(tiny_model), OUTPUT=str(tmp_path / "out.gpkg"), **GRID_PARAMS)
    assert not (tmp_path / "out.gpkg").exists()


# -- item 11: every format keeps the raster's CRS, or is refused ----------------------------------------------
@pytest.mark.parametrize("ext", [".gpkg", ".geojson", ".fgb", ".shp", ".csv"])
@pytest.mark.parametrize("alg", [EXTENT_ALG, GRID_ALG])
def test_classify_outputs_reload_with_the_rasters_crs(tmp_path, tiny_model, alg, ext):
    raster = raster_path(APOLLO)
    out = tmp_path / f"classes{ext}"
    params = {"CELL_SIZE": 20000, "CELL_UNIT": 0} if alg == GRID_ALG else {}
    result = run(alg, INPUT=str(raster), MODEL=str(tiny_model), OUTPUT=str(out), **params)
    assert result["OUTPUT"] == str(out)
    layer = export.load_export(str(out))
    assert layer.isValid() and layer.featureCount() > 0
    raster_crs = QgsProject.instance().crs().__class__(gdal.Open(str(raster)).GetProjection())
    assert equivalent_crs(raster_crs, layer.crs(), layer.extent()), layer.crs().toWkt()
    assert all(not f.geometry().isNull() for f in layer.getFeatures())
    if ext == ".gpkg":
        styles = QgsVectorLayer(str(out), "s", "ogr").listStylesInDatabase()
        assert styles[0] >= 1, "the GeoPackage carries no style"


@pytest.mark.parametrize("alg", [EXTENT_ALG, GRID_ALG])
def test_kml_output_is_refused_for_the_moon(tmp_path, tiny_model, alg):
    params = {"CELL_SIZE": 20000, "CELL_UNIT": 0} if alg == GRID_ALG else {}
    with pytest.raises(QgsProcessingException, match="KML"):
        run(alg, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), OUTPUT=str(tmp_path / "c.kml"), **params)
    assert os.listdir(tmp_path) == []


def test_memory_and_temporary_outputs_still_work(moon_tif, tiny_model):
    for out in ("memory:", "TEMPORARY_OUTPUT"):
        result = run(GRID_ALG, INPUT=str(moon_tif), MODEL=str(tiny_model), OUTPUT=out, **GRID_PARAMS)
        layer = result["OUTPUT"]
        layer = layer if isinstance(layer, QgsVectorLayer) else QgsProcessingContext().getMapLayer(layer) or \
            QgsVectorLayer(layer)
        assert result["CELLS_CLASSIFIED"] == 16
        assert math.isfinite(result["CELL_SIZE_USED"])
