"""Issue 8's catalogue of bad input: whatever the user feeds in, QGIS keeps running, the message names the
problem and what to do, and no partial output is left behind.

Every test runs the user-facing path (``processing.run`` of the plugin's algorithms, or the map tool's
controller and its QgsTask) in the test session's real QGIS, on real files: shared rasters, small GeoTIFFs
written here with GDAL in a planetary CRS (the Apollo 15 raster's WKT), and real ONNX files with broken
contracts. Rows already proven elsewhere are listed in docs/bad_input.md with their test names instead of
being repeated here.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (Qgis, QgsApplication, QgsProcessingException, QgsProcessingFeedback, QgsProject,
                       QgsRasterLayer, QgsRectangle, QgsVectorLayer)

from conftest import APOLLO, VESTA_DAWN, as_unprivileged_user, raster_path, run_in_fresh_qgis, wait_until
from model_factory import broken_metadata, tiny_contract, write_model, write_valid_model
from paths import REPO
from planet_terrain_plugin.core import grid as core_grid
from planet_terrain_plugin.core import session as session_mod
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


# -- pixel values -----------------------------------------------------------------------------------------------
def _extreme(kind: str) -> tuple[list[np.ndarray], int, float | None]:
    rng = np.random.default_rng(7)
    t = texture(seed=5)
    if kind == "uint16 0 and 65535":
        a = (t * 65535).astype(np.uint16)
        a[::7, ::5] = 0
        a[::9, ::4] = 65535
        return [a], gdal.GDT_UInt16, None
    if kind == "int16 extremes with nodata -32768":
        a = (t * 60000 - 30000).astype(np.int16)
        a[:10] = -32768
        a[::11, ::3] = 32767
        return [a], gdal.GDT_Int16, -32768.0
    if kind == "float32 ±3.4e38, NaN and ±Inf":
        a = t.astype(np.float32)
        a[rng.random(a.shape) < 0.1] = np.nan
        a[rng.random(a.shape) < 0.05] = np.inf
        a[rng.random(a.shape) < 0.05] = -np.inf
        a[0, :] = np.finfo(np.float32).max
        a[1, :] = -np.finfo(np.float32).max
        return [a], gdal.GDT_Float32, None
    if kind == "float64 ±1e308 and tiny values":
        a = t * 1e-300
        a[::5, ::5] = 1e308
        a[::6, ::7] = -1e308
        return [a], gdal.GDT_Float64, None
    if kind == "float32 declared nodata -3.4e38":
        a = t.astype(np.float32)
        a[:20] = -3.4028234663852886e38
        return [a], gdal.GDT_Float32, -3.4028234663852886e38
    raise ValueError(kind)


@pytest.mark.parametrize("kind", [
    "uint16 0 and 65535", "int16 extremes with nodata -32768", "float32 ±3.4e38, NaN and ±Inf",
    "float64 ±1e308 and tiny values",
    "float32 declared nodata -3.4e38"])
def test_extreme_values_give_finite_probabilities(tiny_model, tmp_path, kind):
    bands, gdal_type, nodata = _extreme(kind)
    path = write_tif(tmp_path / "extreme.tif", bands, gdal_type, (145.0, 0.005, 0, -20.0, 0, -0.005), moon_wkt(),
                     nodata)
    res = run(INPUT=str(path), MODEL=str(tiny_model))
    (feat,) = list(res["OUTPUT"].getFeatures())
    probs = [feat[name] for name in feat.fields().names() if name.startswith("p_")]
    assert len(probs) == 7 and all(math.isfinite(p) and 0 <= p <= 1 for p in probs)
    assert math.isfinite(feat["confidence"]) and abs(sum(probs) - 1) < 1e-4
    assert feat["label"] == res["LABEL"]
    # The model saw an image, not garbage: no NaN arose on the way (a silent NaN -> uint8 cast gives zeros).
    from planet_terrain_plugin.core.preprocess import stretched_gray
    from planet_terrain_plugin.qgis_io.raster_read import read_extent

    layer = QgsRasterLayer(str(path), "extreme")
    block = read_extent(raster_source(layer), layer.extent(), 32)
    with np.errstate(invalid="raise"):
        gray, fraction = stretched_gray(block.data, tiny_contract(), block.nodata_mask)
    assert 0 < fraction <= 1 and gray.min() < 64 and gray.max() > 192
    assert_qgis_alive()


def test_rgba_raster_uses_the_alpha_band_as_a_mask(tiny_model, tmp_path):
    t = (texture(seed=9) * 200 + 20).astype(np.uint8)
    alpha = np.full(t.shape, 255, np.uint8)
    alpha[:, :40] = 0  # 62% transparent
    path = write_tif(tmp_path / "rgba.tif", [t, t[::-1], t[:, ::-1], alpha], gdal.GDT_Byte,
                     (145.0, 0.005, 0, -20.0, 0, -0.005), moon_wkt(), options=("PHOTOMETRIC=RGB", "ALPHA=YES"))
    layer = QgsRasterLayer(str(path), "rgba")
    source = raster_source(layer)
    assert [b.number for b in source.image_bands] == [1, 2, 3] and source.alpha_band.number == 4
    feedback = Recorder()
    res = run(feedback=feedback, INPUT=str(path), MODEL=str(tiny_model))
    assert res["OUTPUT"].featureCount() == 0
    assert any("only 38% of the pixels are valid data" in e for e in feedback.errors)
    visible = pixel_rect(layer, 40, 0, 24, 64)
    (feat,) = list(run(INPUT=str(path), MODEL=str(tiny_model), EXTENT=extent_str(visible))["OUTPUT"].getFeatures())
    assert 0 < feat["confidence"] <= 1


# -- model files --------------------------------------------------------------------------------------------------
def _bad_model(folder: Path, kind: str) -> Path:
    path = folder / f"{kind}.onnx"
    if kind == "missing":
        return path
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        good = write_valid_model(folder / "good.onnx").read_bytes()
        path.write_bytes(good[: len(good) // 2])
    elif kind == "not ONNX":
        path.write_text("<html>404 Not Found</html>")
    elif kind == "no contract":
        write_model(path, broken_metadata("no_contract"))
    elif kind == "newer schema":
        write_model(path, broken_metadata("newer_schema"))
    elif kind == "wrong input shape":
        write_model(path, tiny_contract(input_size=64).to_metadata(), input_size=32)
    elif kind == "classes disagree":
        write_model(path, tiny_contract().to_metadata(), num_classes=5)
    return path


@pytest.mark.parametrize("kind, words", [
    ("missing", r"does not exist\. Check the path or install a model"),
    ("empty", r"is an empty file\. Re-download or re-export the model"),
    ("truncated", r"is not a readable ONNX model.*truncated or not ONNX; re-export or re-install it"),
    ("not ONNX", r"is not a readable ONNX model.*re-export or re-install it"),
    ("no contract", r"carries no Planet Terrain contract.*make export"),
    ("newer schema", r"schema_version' is 999, newer than this plugin understands.*Update the Planet Terrain"),
    ("wrong input shape", r"input_size' says 64, but the network input is"),
    ("classes disagree", r"classes' lists 7 classes, but the network outputs"),
])
def test_bad_model_file_is_named_with_the_problem(tmp_path, kind, words):
    session_mod.clear_cache()
    model = _bad_model(tmp_path, kind)
    before = files(tmp_path)
    out = tmp_path / "out.gpkg"
    msg = refused(rf"MODEL: Model '{model}': .*{words}", INPUT=str(raster_path(APOLLO)), MODEL=str(model),
                  OUTPUT=str(out))
    assert "Traceback" not in msg
    assert files(tmp_path) == before


# -- outputs ----------------------------------------------------------------------------------------------------
def test_existing_output_file_is_never_replaced(tiny_model, tmp_path):
    out = tmp_path / "classes.gpkg"
    run(INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), OUTPUT=str(out))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    for alg, extra in ((EXTENT_ALG, {}), (GRID_ALG, {"CELL_SIZE": 400, "CELL_UNIT": 1})):
        refused(rf"OUTPUT: '{out}' already exists, and Planet Terrain never replaces a file.*Choose another file",
                alg, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), OUTPUT=str(out), **extra)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    assert files(tmp_path) == {"classes.gpkg"}


def test_read_only_output_folder_names_the_folder(tiny_model):
    base = Path(tempfile.mkdtemp(prefix="planet-terrain-ro-", dir="/tmp"))  # /tmp: reachable by any user
    os.chmod(base, 0o755)
    model = base / "tiny.onnx"
    shutil.copy(tiny_model, model)
    os.chmod(model, 0o644)
    folder = base / "locked"
    folder.mkdir()
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        with as_unprivileged_user(), pytest.raises(QgsProcessingException) as info:
            run(INPUT=str(raster_path(APOLLO)), MODEL=str(model), OUTPUT=str(folder / "classes.gpkg"))
    finally:
        os.chmod(folder, stat.S_IRWXU)
    try:
        msg = str(info.value)
        assert msg.startswith("OUTPUT: ")
        assert f"cannot write to the folder '{folder}' (Permission denied); it is read-only or you lack " \
               "permission: choose another folder" in msg
        assert files(folder) == set()
        assert_qgis_alive()
    finally:
        shutil.rmtree(base)


def test_full_disk_leaves_no_partial_file(tiny_model, tmp_path):
    """A real file-size limit (RLIMIT_FSIZE, any user can set it) on a real QGIS in a child process: GDAL's
    writes fail as on a full disk. Both the classification output and an export report it and leave nothing."""
    out_dir = tmp_path / "full"
    out_dir.mkdir()
    before = """
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    """
    body = f"""
        params = {{'INPUT': {str(raster_path(APOLLO))!r}, 'MODEL': {str(tiny_model)!r}}}
        layer = processing.run('planet_terrain:classify_extent', dict(params, OUTPUT='memory:'))['OUTPUT']
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))  # 20 kB: the disk is "full"
        try:
            processing.run('planet_terrain:classify_extent', dict(params, OUTPUT={str(out_dir / 'classes.gpkg')!r}))
            print('NO ERROR')
        except QgsProcessingException as exc:
            print('CLASSIFY', exc)
        from planet_terrain_plugin.qgis_io.export import ExportError, export_layer
        try:
            export_layer(layer, {str(out_dir / 'export.gpkg')!r})
            print('NO ERROR')
        except ExportError as exc:
            print('EXPORT', exc)
        print('FILES', sorted(os.listdir({str(out_dir)!r})))
        print('ALIVE', QgsApplication.instance() is not None)
        del layer
    """
    proc = run_in_fresh_qgis(body, tmp_path / "profile", before)
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in proc.stdout.splitlines() if " " in line}
    assert "NO ERROR" not in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert lines.get("CLASSIFY", "").startswith("OUTPUT: "), proc.stdout + proc.stderr[-2000:]
    assert "nothing was written" in lines["CLASSIFY"] and "the disk is not full" in lines["CLASSIFY"]
    assert "nothing was written. Check that the disk is not full" in lines.get("EXPORT", ""), proc.stdout
    assert lines["FILES"] == "[]" and lines["ALIVE"] == "True"
    assert files(out_dir) == set()


# -- cancel -----------------------------------------------------------------------------------------------------
class CancelAt(Recorder):
    """Presses Cancel when the algorithm reaches a stage: a progress value, or a message it pushes."""

    def __init__(self, progress: float | None = None, info_prefix: str | None = None) -> None:
        super().__init__()
        self.info_prefix = info_prefix
        if progress is not None:
            self.progressChanged.connect(lambda p: self.cancel() if p >= progress else None)

    def pushInfo(self, info):  # noqa: N802
        super().pushInfo(info)
        if self.info_prefix and info.startswith(self.info_prefix):
            self.cancel()


@pytest.mark.parametrize("stage, feedback_args, words", [
    ("read", {"progress": 10}, "cancelled while reading the pixels; nothing was classified"),
    ("inference", {"progress": 50}, "cancelled during inference; nothing was written"),
    ("write", {"progress": 90}, "cancelled while writing; nothing was written"),
    ("write, after the sink exists", {"info_prefix": "Note:"}, "cancelled while writing; nothing was written"),
])
def test_cancel_at_each_stage_leaves_no_output(tiny_model, tmp_path, stage, feedback_args, words):
    """A cancel is no failure (no exception, so no "Task failed" in QGIS's task bar): no OUTPUT, and why."""
    out = tmp_path / "classes.gpkg"
    feedback = CancelAt(**feedback_args)
    result = run(feedback=feedback, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), OUTPUT=str(out))
    assert "OUTPUT" not in result and result["LABEL"] == "" and result["NOT_CLASSIFIED"] == words
    assert feedback.isCanceled()
    if stage.startswith("write, after"):  # the output file existed when Cancel came: it was removed
        assert any(i.startswith("Note:") for i in feedback.infos)
    assert files(tmp_path) == set()
    assert_qgis_alive()


def test_task_cancelled_during_the_read_reports_cancelled(qgis_iface, qgis_new_project, controller, bar,
                                                          raster_layer, tiny_model, monkeypatch):
    """Cancel pressed the moment the worker starts reading (deterministic: from the worker's own progress call;
    a queued progressChanged slot would run too late, after the task had finished)."""
    from planet_terrain_plugin.gui.task import RunFeedback
    from qgis.core import QgsProcessingFeedback

    def progress_then_cancel(self, value):
        QgsProcessingFeedback.setProgress(self, value)
        if value >= 10:
            self.cancel()

    monkeypatch.setattr(RunFeedback, "setProgress", progress_then_cancel, raising=False)
    layer = raster_layer(APOLLO)
    QgsProject.instance().addMapLayer(layer)
    try:
        task = run_task(controller, lambda: controller.classify_layer_extent(
            layer, pixel_rect(layer, 600, 500, 80, 80), str(tiny_model)))
        assert task.succeeded is False and task.error is None  # a cancel is not an error
        assert bar.get_messages(Qgis.Info)[-1] == "Planet Terrain:Classification cancelled."
        assert result_layers(layer.id()) == []
    finally:
        QgsProject.instance().removeAllMapLayers()


# -- execution provider ---------------------------------------------------------------------------------------------
def test_gpu_provider_that_fails_falls_back_and_the_user_is_told(tmp_path, monkeypatch, qgis_iface,
                                                                 qgis_new_project, controller, bar, raster_layer):
    """onnxruntime is real; only its list of providers claims a CUDA this machine lacks (as a broken CUDA
    install does): the session starts on CPU, and the log, the outputs and the map-tool message say so."""
    session_mod.clear_cache()
    model = write_valid_model(tmp_path / "fallback.onnx")
    ort = session_mod.import_onnxruntime()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    try:
        feedback = Recorder()
        res = run(feedback=feedback, INPUT=str(raster_path(APOLLO)), MODEL=str(model))
        (feat,) = list(res["OUTPUT"].getFeatures())
        assert res["EXECUTION_PROVIDER"] == feat["provider"] == "CPUExecutionProvider"
        (note,) = [i for i in feedback.infos if i.startswith("Model ")]
        assert "CPUExecutionProvider (fallback)" in note and "CUDAExecutionProvider" in note
        layer = raster_layer(APOLLO)
        QgsProject.instance().addMapLayer(layer)
        task = run_task(controller, lambda: controller.classify_layer_extent(
            layer, pixel_rect(layer, 600, 500, 80, 80), str(model)))
        assert task.error is None, task.error
        (msg,) = bar.get_messages(Qgis.Success)
        assert "CPU (the preferred provider did not start: see the log)" in msg  # the names are in the log
    finally:
        QgsProject.instance().removeAllMapLayers()
        session_mod.clear_cache()


# -- model files are data, never code -----------------------------------------------------------------------------
PLUGIN = REPO / "planet_terrain_plugin"


def test_python_looking_contract_values_are_only_strings_or_refused(tmp_path):
    """The contract is parsed with json.loads alone: code in a value is a string, or invalid JSON."""
    from planet_terrain_plugin.core.contract import KEY_PREFIX, ContractError, read_contract

    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    md = tiny_contract().to_metadata()
    md[KEY_PREFIX + "model_name"] = json_dumps(payload)       # valid JSON: a harmless string
    md[KEY_PREFIX + "metrics"] = json_dumps({"__reduce__": ["os.system", [f"touch {marker}"]]})  # just a dict
    path = write_model(tmp_path / "code_as_string.onnx", md)
    contract = read_contract(str(path))
    assert contract.model_name == payload
    assert contract.metrics == {"__reduce__": ["os.system", [f"touch {marker}"]]}
    for key in ("temperature", "threshold", "mean"):  # the same payload where a number or list belongs
        bad = dict(tiny_contract().to_metadata())
        bad[KEY_PREFIX + key] = payload
        with pytest.raises(ContractError, match=rf"planet_terrain\.{key}' is not valid JSON"):
            read_contract(str(write_model(tmp_path / f"code_in_{key}.onnx", bad)))
    pickled = dict(tiny_contract().to_metadata())
    pickled[KEY_PREFIX + "metrics"] = "cos\nsystem\n(S'touch " + str(marker) + "'\ntR."  # a pickle program
    with pytest.raises(ContractError, match="not valid JSON"):
        read_contract(str(write_model(tmp_path / "pickled.onnx", pickled)))
    assert not marker.exists()


def json_dumps(value) -> str:
    import json

    return json.dumps(value)


def test_model_with_a_custom_python_op_is_refused_not_run(tmp_path):
    """A real ONNX file whose graph calls a custom op (onnxruntime-extensions' PyOp, which would run Python)
    and whose contract is otherwise valid: the plugin registers no custom-op library, so the file is refused."""
    import onnx
    from onnx import TensorProto, helper

    from planet_terrain_plugin.core.contract import ContractError, read_contract

    marker = tmp_path / "pwned"
    graph = helper.make_graph(
        [helper.make_node("PyOp", ["input"], ["logits"], domain="ai.onnx.contrib",
                          code=f"__import__('os').system('touch {marker}')")],
        "evil", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.contrib", 1)])
    model.ir_version = 8
    for k, v in tiny_contract().to_metadata().items():
        model.metadata_props.add(key=k, value=v)
    path = tmp_path / "custom_op.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ContractError, match="is not a readable ONNX model"):
        read_contract(str(path))
    refused(r"MODEL: Model .*custom_op.onnx.*not a readable ONNX model", INPUT=str(raster_path(APOLLO)),
            MODEL=str(path))
    assert not marker.exists()


def _python_sources(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]


def test_the_plugin_never_evaluates_code_or_unpickles():
    import re

    forbidden = re.compile(r"(?<![\w.])(eval|exec|compile|__import__)\s*\(|\bpickle\b|\bmarshal\b|\bshell\s*=\s*True|"
                           r"\bos\.system\b|\bos\.popen\b|\byaml\.load\b|register_custom_ops_library|"
                           r"allow_pickle\s*=\s*True")
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in _python_sources(PLUGIN)
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if forbidden.search(line)]
    assert hits == []
    assert len(_python_sources(PLUGIN)) > 20  # the scan saw the plugin


def test_training_and_export_load_checkpoints_as_weights_only():
    import re

    calls = []
    for folder in ("training", "export", "benchmarks", "scripts"):
        for p in _python_sources(REPO / folder) if (REPO / folder).is_dir() else []:
            text = p.read_text(encoding="utf-8")
            for m in re.finditer(r"torch\.load\(([^()]*(?:\([^()]*\)[^()]*)*)\)", text):
                calls.append((f"{p.relative_to(REPO)}", m.group(1)))
            assert not re.search(r"\bpickle\.loads?\(|allow_pickle\s*=\s*True", text), p
    assert calls, "no torch.load found: the scan is broken"
    unsafe = [(f, args) for f, args in calls if not re.search(r"weights_only\s*=\s*True", args)]
    assert unsafe == [], "checkpoints must be loaded with weights_only=True (tensors and plain data, never code)"
