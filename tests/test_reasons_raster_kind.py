"""Issue 16: a raster that is not an image (elevation, slope, shaded relief, colour-shaded) is refused from what
the file says, with the evidence and what to do, by every entry point; the shared camera images never are.
And a georeferenced image of a body the model does not serve is refused by the image command line with the
reason ``unknown_body``, as QGIS refuses it. Real QGIS, real files (the shared rasters, GeoTIFFs written here)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import Qgis, QgsProject

from batch_helpers import run_batch
from conftest import APOLLO, APOLLO_2, LOLA, MARS_EQUI, MARS_POLAR, VESTA_DAWN, VESTA_DTM, WAC, raster_path
from paths import REPO
from planet_terrain_plugin.core import raster_kind
from planet_terrain_plugin.core.raster_kind import BandFacts, RasterFacts, RasterKind, judge
from planet_terrain_plugin.gui.controller import ClassifyController
from test_bad_input import moon_wkt, refused, run, texture, write_tif

CAMERA_IMAGES = (APOLLO, APOLLO_2, MARS_EQUI, MARS_POLAR, VESTA_DAWN)
#: The shared rasters that hold no image, and the evidence their message must name.
NOT_IMAGES = {
    VESTA_DTM: (RasterKind.ELEVATION, "are radii of the body"),
    WAC: (RasterKind.ELEVATION, "ShapeModelStatistics"),  # WAC GLD100: the Global Lunar DTM, not WAC pixels
    LOLA: (RasterKind.SHADED_RELIEF, "its name holds 'shade'"),
}


@pytest.fixture(autouse=True)
def _processing(terrain_processing):
    yield terrain_processing


# -- the core check on every shared raster, both ways ----------------------------------------------------------
@pytest.mark.parametrize("name", CAMERA_IMAGES)
def test_no_shared_camera_image_is_refused(name):
    verdict = raster_kind.judge_file(str(raster_path(name)))
    assert verdict.is_image, verdict


@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
def test_shared_elevation_and_relief_products_are_not_images(name):
    kind, evidence = NOT_IMAGES[name]
    verdict = raster_kind.judge_file(str(raster_path(name)))
    assert verdict.kind is kind and evidence in verdict.evidence, verdict
    message = verdict.message(name)
    assert message.startswith(f"'{name}' is not an image: ") and evidence in message
    assert "Use an orthoimage or a camera image of the area instead." in message


@pytest.mark.parametrize("band, kind", [
    (BandFacts(unit="metre", data_type="Float32"), RasterKind.ELEVATION),
    (BandFacts(unit="km", data_type="Int16"), RasterKind.ELEVATION),
    (BandFacts(description="Elevation above the areoid", data_type="Float32"), RasterKind.ELEVATION),
    (BandFacts(description="Slope", unit="degrees", data_type="Float32"), RasterKind.SLOPE),
    (BandFacts(description="hillshade", data_type="Byte"), RasterKind.SHADED_RELIEF),
    (BandFacts(data_type="Byte", colours=((0, 0, 130), (0, 200, 60), (240, 230, 0), (255, 255, 255))),
     RasterKind.COLOUR_SHADED),
    (BandFacts(data_type="Byte", colours=tuple((g, g, g) for g in range(256))), RasterKind.IMAGE),  # a grey palette
    (BandFacts(description="I/F", data_type="Float32"), RasterKind.IMAGE),
])
def test_what_a_band_says_decides(band, kind):
    assert judge(RasterFacts("product.tif", (band,))).kind is kind


def test_values_speak_only_for_floating_point_or_scaled_data():
    heights = np.linspace(-4000, 2000, 1000)
    float_band = BandFacts(data_type="Float32")
    assert judge(RasterFacts("x.tif", (float_band,), sample=heights)).kind is RasterKind.ELEVATION
    assert judge(RasterFacts("x.tif", (BandFacts(data_type="Int16"),), sample=heights)).is_image  # DN: no claim
    reflectance = np.linspace(0.0, 0.4, 1000)
    assert judge(RasterFacts("x.tif", (float_band,), sample=reflectance, radius_m=3396190.0)).is_image
    radii = np.linspace(3.39e6, 3.40e6, 1000)
    assert judge(RasterFacts("x.tif", (float_band,), sample=radii, radius_m=3396190.0)).kind is RasterKind.ELEVATION


@pytest.mark.parametrize("name, image", [
    ("mars_dtm.tif", False), ("moon_DEM_v2.tif", False), ("hillshade.tif", False), ("vesta_slope.tif", False),
    ("hidtmgen__ortho__PSP_002118.cub", True),  # 'hidtmgen' holds 'dtm' but is not the word
    ("DTM_ortho_image.tif", True),  # an orthoimage made with a DTM
    ("AS15-M-0295_SML_geo.tif", True),
])
def test_file_name_words_are_the_last_resort(name, image):
    assert judge(RasterFacts(name, (BandFacts(data_type="Byte"),))).is_image is image


# -- every entry point refuses -------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["planet_terrain:classify_extent", "planet_terrain:classify_grid"])
@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
def test_processing_refuses_a_raster_that_is_not_an_image(tiny_model, tmp_path, alg, name):
    out = tmp_path / "out.gpkg"
    msg = refused(rf"INPUT: '{name[:20]}.*' is not an image: .*Use an orthoimage or a camera image",
                  alg=alg, INPUT=str(raster_path(name)), MODEL=str(tiny_model), OUTPUT=str(out))
    assert NOT_IMAGES[name][1] in msg
    assert not out.exists()


@pytest.mark.parametrize("name", CAMERA_IMAGES)
def test_processing_classifies_every_shared_camera_image(tiny_model, name):
    result = run(INPUT=str(raster_path(name)), MODEL=str(tiny_model))
    assert result["LABEL"] or result["NOT_CLASSIFIED"]  # classified, or skipped for its nodata: not refused
    assert "not an image" not in result["NOT_CLASSIFIED"]


def test_an_elevation_geotiff_with_metre_units_is_refused(tiny_model, tmp_path):
    path = write_tif(tmp_path / "heights.tif", [(texture() * 3000 - 1000).astype(np.float32)], gdal.GDT_Float32,
                     (145.0, 0.005, 0, -20.0, 0, -0.005), moon_wkt())
    ds = gdal.Open(str(path), gdal.GA_Update)
    ds.GetRasterBand(1).SetUnitType("metre")
    ds = None
    refused(r"INPUT: 'heights' is not an image: it holds elevation \(band 1's unit is 'metre'\)",
            INPUT=str(path), MODEL=str(tiny_model))


def test_map_tool_rectangle_on_a_dtm_is_refused_with_the_evidence(qgis_iface, qgis_new_project, bar, raster_layer,
                                                                  tiny_model):
    controller = ClassifyController(qgis_iface)
    layer = raster_layer(VESTA_DTM)
    QgsProject.instance().addMapLayer(layer)
    try:
        assert controller.classify_layer_extent(layer, layer.extent(), str(tiny_model)) is None  # never started
        (msg,) = bar.get_messages(Qgis.Critical)
        assert "is not an image: it holds elevation" in msg and "camera image of the area" in msg
    finally:
        QgsProject.instance().removeAllMapLayers()


def classify_cli(*args: str, model) -> tuple[int, list[dict]]:
    proc = subprocess.run([sys.executable, "-m", "planet_terrain_plugin.core", "classify", *args, "--model",
                           str(model)], capture_output=True, text=True, timeout=180, cwd=REPO, check=False)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_image_cli_refuses_with_the_reason_not_an_image(tiny_model):
    status, lines = classify_cli(*(str(raster_path(n)) for n in (VESTA_DTM, WAC, LOLA, VESTA_DAWN, MARS_EQUI)),
                                 model=tiny_model)
    assert status == 1
    for line in lines[:3]:
        assert line["reason"] == "not_an_image" and "is not an image" in line["error"], line
    for line in lines[3:]:
        assert "error" not in line and line["label"], line


def test_batch_command_refuses_before_any_worker_starts(tiny_model, tmp_path):
    done = run_batch("grid", str(raster_path(VESTA_DTM)), "--out", str(tmp_path / "run"), "--model",
                     str(tiny_model), "--workers", "0")
    assert done.returncode == 2
    assert "is not an image: it holds elevation" in done.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


# -- unknown_body ----------------------------------------------------------------------------------------------
def _mercury_wkt() -> str:
    srs = osr.SpatialReference()
    srs.SetGeogCS("Mercury 2000", "D_Mercury_2000", "Mercury_2000_IAU_IAG", 2439700.0, 0.0)
    return srs.ExportToWkt()


def test_image_cli_refuses_an_unknown_body_and_takes_the_override(tiny_model, tmp_path):
    data = (texture() * 200 + 20).astype(np.uint8)
    mercury = write_tif(tmp_path / "mercury.tif", [data], gdal.GDT_Byte, (10.0, 0.001, 0, 5.0, 0, -0.001),
                        _mercury_wkt())
    plain = write_tif(tmp_path / "plain.tif", [data], gdal.GDT_Byte, (0, 1, 0, 0, 0, -1))  # the same, no CRS
    status, (refusal, picture) = classify_cli(str(mercury), str(plain), model=tiny_model)
    assert status == 1
    assert refusal["reason"] == "unknown_body" and "Mercury" in refusal["error"] and "--body" in refusal["error"]
    assert "error" not in picture and picture["body_renormalised"] is False  # a plain picture: every class
    status, (overridden,) = classify_cli(str(mercury), "--body", "Moon", model=tiny_model)
    assert status == 0 and overridden["body_renormalised"] is True  # the user says it is the Moon: Moon classes


def test_image_cli_takes_the_body_from_the_crs_as_qgis_does(tiny_model):
    status, (apollo,) = classify_cli(str(raster_path(APOLLO)), model=tiny_model)
    assert status == 0 and apollo["body_renormalised"] is True  # the Moon: only crater and impact ejecta
    assert apollo["probs"]["dark dune"] == 0.0
