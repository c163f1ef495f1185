"""Issue 8's catalogue of bad input: whatever the user feeds in, QGIS keeps running, the message names the
problem and what to do, and no partial output is left behind.

Every test runs the user-facing path (``processing.run`` of the plugin's algorithms, or the map tool's
controller and its QgsTask) in the test session's real QGIS, on real files: shared rasters, small GeoTIFFs
written here with GDAL in a planetary CRS (the Apollo 15 raster's WKT). This file holds the layers, extents and
grids, and the helpers the other bad-input files share; pixel values are in test_bad_input_pixels.py, broken model
files in test_bad_model_files.py, outputs, Cancel and the provider fallback in test_bad_input_output.py. Rows already
proven elsewhere are listed in docs/bad_input.md with their test names instead of being repeated here.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (Qgis, QgsApplication, QgsProcessingException, QgsProcessingFeedback, QgsProject,
                       QgsRasterLayer, QgsRectangle, QgsVectorLayer)

from conftest import APOLLO, VESTA_DAWN, raster_path, wait_until
from planet_terrain_plugin.core import grid as core_grid
from planet_terrain_plugin.gui.controller import ClassifyController
from planet_terrain_plugin.processing.provider import PROVIDER_ID
from planet_terrain_plugin.qgis_io.classify import MIN_EXTENT_PIXELS
from planet_terrain_plugin.qgis_io.raster_read import ExtentError, raster_source
from planet_terrain_plugin.qgis_io.result_layer import SOURCE_PROPERTY
from test_qgis_raster_read import pixel_rect

EXTENT_ALG = "planet_terrain:classify_extent"
GRID_ALG = "planet_terrain:classify_grid"
XYZ_URI = "type=xyz&url=http://127.0.0.1:9/{z}/{x}/{y}.png&zmax=19&zmin=0"


# -- helpers -------------------------------------------------------------------------------------------------
class Recorder(QgsProcessingFeedback):
    """A real Processing feedback that keeps what the algorithm told the user."""

    def __init__(self) -> None:
        super().__init__()
        self.infos: list[str] = []
        self.errors: list[str] = []

    def pushInfo(self, info):  # noqa: N802 -- QGIS's name
        self.infos.append(info)
        super().pushInfo(info)

    def reportError(self, error, fatalError=False):  # noqa: N802
        self.errors.append(error)
        super().reportError(error, fatalError)


def run(alg: str = EXTENT_ALG, feedback: QgsProcessingFeedback | None = None, **params):
    import processing

    params.setdefault("OUTPUT", "memory:")
    return processing.run(alg, params, feedback=feedback)


def refused(match: str, alg: str = EXTENT_ALG, **params) -> str:
    """Run ``alg`` expecting a QgsProcessingException whose message matches; returns the message."""
    with pytest.raises(QgsProcessingException, match=match) as info:
        run(alg, **params)
    assert_qgis_alive()
    return str(info.value)


def assert_qgis_alive() -> None:
    """The application object is there, answers events, and our provider is still registered."""
    assert QgsApplication.instance() is not None
    QgsApplication.processEvents()
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is not None


def extent_str(rect: QgsRectangle) -> str:
    return f"{rect.xMinimum()!r},{rect.xMaximum()!r},{rect.yMinimum()!r},{rect.yMaximum()!r}"


def moon_wkt() -> str:
    """The Apollo 15 raster's geographic Moon CRS (radius 1737.4 km), for rasters written here."""
    ds = gdal.Open(str(raster_path(APOLLO)))
    return ds.GetProjection()


def write_tif(path: Path, bands: list[np.ndarray], gdal_type: int, geotransform, wkt: str | None = None,
              nodata: float | None = None, options: tuple[str, ...] = ()) -> Path:
    """A real GeoTIFF (GDAL), one array per band."""
    h, w = bands[0].shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, len(bands), gdal_type, list(options))
    ds.SetGeoTransform(geotransform)
    if wkt:
        ds.SetProjection(wkt)
    for i, arr in enumerate(bands, start=1):
        band = ds.GetRasterBand(i)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(arr)
    ds.FlushCache()
    ds = None
    return path


def texture(shape=(64, 64), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


def files(folder: Path) -> set[str]:
    return set(os.listdir(folder))


@pytest.fixture(autouse=True)
def _processing(terrain_processing):
    """The plugin's provider, as the plugin registers it (conftest)."""
    yield terrain_processing


@pytest.fixture
def controller(qgis_iface):
    return ClassifyController(qgis_iface)


@pytest.fixture
def moon_tif(tmp_path):
    """A 64 x 64 px textured byte raster in the Apollo CRS, 0.005° pixels."""
    data = (texture() * 200 + 20).astype(np.uint8)
    return write_tif(tmp_path / "moon.tif", [data], gdal.GDT_Byte, (145.0, 0.005, 0, -20.0, 0, -0.005), moon_wkt())


def run_task(controller: ClassifyController, start):
    done = []
    controller.listeners.append(done.append)
    task = start()
    if task is None:
        controller.listeners.remove(done.append)
        return None
    assert wait_until(lambda: bool(done), 30), "the task did not finish within 30 s"
    controller.listeners.remove(done.append)
    return done[0]


def result_layers(layer_id: str) -> list:
    return [lyr for lyr in QgsProject.instance().mapLayers().values()
            if lyr.customProperty(SOURCE_PROPERTY) == layer_id]


# -- layers: what is selected --------------------------------------------------------------------------------
def test_no_raster_layer_given_to_processing(tiny_model, tmp_path):
    out = tmp_path / "out.gpkg"
    refused(r"INPUT: no raster layer given; choose a raster layer or file", INPUT=None, MODEL=str(tiny_model),
            OUTPUT=str(out))
    assert files(tmp_path) == set()


def test_vector_layer_selected_for_the_map_tool_is_a_warning(qgis_iface, qgis_new_project, controller, bar):
    vector = QgsVectorLayer("Polygon", "a vector layer", "memory")
    QgsProject.instance().addMapLayer(vector)
    qgis_iface.setActiveLayer(vector)
    try:
        assert controller.classify_canvas_rect(QgsRectangle(0, 0, 1, 1)) is None
    finally:
        QgsProject.instance().removeAllMapLayers()
    (msg,) = bar.get_messages(Qgis.Warning)
    assert "Select a raster layer in the Layers panel" in msg
    assert controller.tasks == []
    assert_qgis_alive()


def test_vector_file_given_as_processing_input(tiny_model, tmp_path):
    from osgeo import ogr

    vector = tmp_path / "polygons.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(vector))
    ds.CreateLayer("polygons", geom_type=ogr.wkbPolygon)
    ds = None
    out = tmp_path / "out.gpkg"
    refused(rf"INPUT: '{vector}' is not a raster QGIS can open \(a vector file.*choose a raster layer or file",
            INPUT=str(vector), MODEL=str(tiny_model), OUTPUT=str(out))
    layer = QgsVectorLayer(str(vector), "polygons", "ogr")
    assert layer.isValid()
    refused(r"INPUT: 'polygons' is a vector layer, not a raster; choose the raster layer", GRID_ALG,
            INPUT=layer, MODEL=str(tiny_model), OUTPUT=str(out))
    refused(r"INPUT: the file '.*nowhere.tif' does not exist; check the path", INPUT=str(tmp_path / "nowhere.tif"),
            MODEL=str(tiny_model), OUTPUT=str(out))
    assert files(tmp_path) == {"polygons.gpkg"}


def test_earth_crs_is_refused_with_the_body_override_as_the_way_out(tiny_model, tmp_path):
    earth = write_tif(tmp_path / "earth.tif", [(texture() * 255).astype(np.uint8)], gdal.GDT_Byte,
                      (10.0, 0.01, 0, 50.0, 0, -0.01), _epsg_wkt(4326))
    out = tmp_path / "out.gpkg"
    msg = refused(r"Earth CRS.*choose its body explicitly \(BODY parameter", INPUT=str(earth),
                  MODEL=str(tiny_model), OUTPUT=str(out))
    assert "WGS 84" in msg
    assert not out.exists()


def _epsg_wkt(code: int) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(code)
    return srs.ExportToWkt()


def test_layer_without_crs_is_refused_unless_the_body_is_chosen(tiny_model, tmp_path):
    nocrs = write_tif(tmp_path / "nocrs.tif", [(texture() * 255).astype(np.uint8)], gdal.GDT_Byte,
                      (0, 1, 0, 64, 0, -1))
    assert not QgsRasterLayer(str(nocrs), "nocrs").crs().isValid()
    out = tmp_path / "out.gpkg"
    refused(r"no coordinate reference system.*Set the layer's CRS.*or choose the body", INPUT=str(nocrs),
            MODEL=str(tiny_model), OUTPUT=str(out))
    assert not out.exists()
    # With the body chosen it classifies, and says the ground pixel size is unknown rather than inventing one.
    feedback = Recorder()
    res = run(feedback=feedback, INPUT=str(nocrs), MODEL=str(tiny_model), BODY=2)  # 2 = Moon
    (feat,) = list(res["OUTPUT"].getFeatures())
    assert feat["body"] == "Moon" and math.isnan(feat["gsd_m"])
    assert any("ground pixel size unknown" in i for i in feedback.infos)


def test_web_xyz_layer_is_refused_not_read(tiny_model, qgis_iface, qgis_new_project, controller, bar):
    xyz = QgsRasterLayer(XYZ_URI, "web tiles", "wms")
    assert xyz.isValid() and xyz.providerType() == "wms"
    with pytest.raises(ExtentError, match=r"web map layer \(wms.*not the image data.*Open the original raster"):
        raster_source(xyz)
    QgsProject.instance().addMapLayer(xyz)
    try:
        refused(r"INPUT: 'web tiles' is a web map layer", INPUT=xyz.id(), MODEL=str(tiny_model))
        assert controller.classify_layer_extent(xyz, xyz.extent(), str(tiny_model)) is None
    finally:
        QgsProject.instance().removeAllMapLayers()
    (msg,) = bar.get_messages(Qgis.Critical)
    assert "is a web map layer" in msg and controller.tasks == []


# -- extents --------------------------------------------------------------------------------------------------
@pytest.fixture
def global_moon(tmp_path) -> Path:
    """A global geographic Moon raster, -180..180 x -90..90 at 1° (textured, no nodata)."""
    data = (texture((180, 360), seed=3) * 200 + 20).astype(np.uint8)
    return write_tif(tmp_path / "global_moon.tif", [data], gdal.GDT_Byte, (-180.0, 1.0, 0, 90.0, 0, -1.0),
                     moon_wkt())


@pytest.mark.parametrize("extent, words", [
    ("170,190,-10,10", r"crosses longitude 180°, where this global raster wraps around.*each side of the seam"),
    ("-190,-170,-10,10", r"crosses longitude -180°"),
    ("-10,10,80,100", r"reaches latitude 100°, beyond the north pole.*within ±90° latitude"),
    ("-10,10,-95,-80", r"beyond the south pole"),
])
def test_extent_across_the_antimeridian_or_a_pole_is_refused(global_moon, tiny_model, tmp_path, extent, words):
    out = tmp_path / "out.gpkg"
    refused(words, INPUT=str(global_moon), MODEL=str(tiny_model), EXTENT=extent, OUTPUT=str(out))
    assert not out.exists()


def test_extent_up_to_the_seam_is_still_classified(global_moon, tiny_model):
    res = run(INPUT=str(global_moon), MODEL=str(tiny_model), EXTENT="160,180,60,90")
    assert res["OUTPUT"].featureCount() == 1 and res["LABEL"]


def test_extent_past_the_edge_of_a_regional_raster_is_clipped_with_a_note(tiny_model, raster_layer):
    """Not a seam: beyond the edge of a non-global raster there is no data, so the overlap is classified."""
    layer = raster_layer(APOLLO)
    inside = pixel_rect(layer, 600, 500, 80, 80)
    rect = QgsRectangle(inside.xMinimum(), inside.yMinimum(), layer.extent().xMaximum() + 1, inside.yMaximum())
    feedback = Recorder()
    res = run(feedback=feedback, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), EXTENT=extent_str(rect))
    assert res["OUTPUT"].featureCount() in (0, 1)
    assert "Note: the extent was clipped to the raster's edge" in feedback.infos


@pytest.mark.parametrize("pixels", [1, MIN_EXTENT_PIXELS - 1])
def test_tiny_extent_is_refused_with_the_minimum_size(tiny_model, raster_layer, tmp_path, pixels):
    layer = raster_layer(APOLLO)
    rect = pixel_rect(layer, 650, 600, pixels, pixels)
    out = tmp_path / "out.gpkg"
    refused(rf"covers only {pixels:g} x {pixels:g} pixels.*at least {MIN_EXTENT_PIXELS} x {MIN_EXTENT_PIXELS}.*"
            "Drag a larger rectangle", INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model),
            EXTENT=extent_str(rect), OUTPUT=str(out))
    assert not out.exists()
    ok = run(INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model),
             EXTENT=extent_str(pixel_rect(layer, 650, 600, MIN_EXTENT_PIXELS, MIN_EXTENT_PIXELS)))
    assert ok["OUTPUT"].featureCount() == 1  # the minimum itself is classified


def test_tiny_rectangle_from_the_map_tool_says_so(qgis_iface, qgis_new_project, controller, bar, raster_layer,
                                                  tiny_model):
    layer = raster_layer(APOLLO)
    QgsProject.instance().addMapLayer(layer)
    try:
        task = run_task(controller, lambda: controller.classify_layer_extent(
            layer, pixel_rect(layer, 650, 600, 0.3, 0.3), str(tiny_model)))
        assert task.error is not None
        (msg,) = bar.get_messages(Qgis.Critical)
        assert "narrower than half a pixel" in msg and "drag a larger rectangle" in msg
        assert result_layers(layer.id()) == []
    finally:
        QgsProject.instance().removeAllMapLayers()
    assert_qgis_alive()


def test_all_nodata_extent_writes_nothing_and_says_why(tiny_model, tmp_path):
    nan = np.full((64, 64), np.nan, np.float32)
    path = write_tif(tmp_path / "all_nan.tif", [nan], gdal.GDT_Float32, (145.0, 0.005, 0, -20.0, 0, -0.005),
                     moon_wkt())
    feedback = Recorder()
    res = run(feedback=feedback, INPUT=str(path), MODEL=str(tiny_model))
    assert res["OUTPUT"].featureCount() == 0 and res["LABEL"] == ""
    assert any(e.startswith("Not classified: only 0% of the pixels are valid data") and
               "choose an area inside the image" in e for e in feedback.errors)


# -- grids ----------------------------------------------------------------------------------------------------
def test_grid_over_a_million_cells_is_refused_by_default(tiny_model, tmp_path):
    """The default MAX_CELLS is core.grid.LARGE_GRID_CELLS; the refusal comes before any cell is read."""
    big = write_tif(tmp_path / "big.tif", [np.zeros((2000, 2000), np.uint8)], gdal.GDT_Byte,
                    (0.0, 0.0001, 0, 10.0, 0, -0.0001), moon_wkt(), options=("COMPRESS=DEFLATE",))
    out = tmp_path / "grid.gpkg"
    start = time.monotonic()
    msg = refused(r"The grid has [\d,]+ cells, more than MAX_CELLS \(1,000,000\).*bigger cells",
                  GRID_ALG, INPUT=str(big), MODEL=str(tiny_model), CELL_SIZE=8, CELL_UNIT=1, OVERLAP=0.9,
                  OUTPUT=str(out))
    assert time.monotonic() - start < 30
    assert int(msg.split("The grid has ")[1].split(" cells")[0].replace(",", "")) > core_grid.LARGE_GRID_CELLS
    assert not out.exists()


def test_grid_cell_count_is_known_before_any_cell_is_made():
    """What an interactive caller uses to ask first: O(rows), even for a trillion cells."""
    grid = core_grid.Grid(core_grid.Extent(0, 0, 1e6, 1e6), core_grid.CellSize(1.0, 1.0))
    start = time.monotonic()
    assert grid.count == 10 ** 12 > core_grid.LARGE_GRID_CELLS
    assert time.monotonic() - start < 5


def test_grid_cells_below_the_minimum_size_are_refused(tiny_model, tmp_path):
    out = tmp_path / "grid.gpkg"
    refused(rf"CELL_SIZE: cells of 2 x 2 source pixels are too small.*at least {MIN_EXTENT_PIXELS}",
            GRID_ALG, INPUT=str(raster_path(VESTA_DAWN)), MODEL=str(tiny_model), CELL_SIZE=2, CELL_UNIT=1,
            OUTPUT=str(out))
    assert not out.exists()
