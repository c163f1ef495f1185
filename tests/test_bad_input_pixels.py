"""Pixel values and types in QGIS: extreme values, an alpha band, paletted rasters and 64-bit integers.

Run through ``planet_terrain:classify_extent`` in the test session's real QGIS on GeoTIFFs written here with
GDAL: extreme and non-finite values give finite probabilities (issue 8), an alpha band masks like nodata, a
paletted raster is classified on its colours (the decision of the plain picture), and an Int64 / UInt64 raster,
which QGIS 3.22's provider reports as an unknown data type, is read (the decision of the same values stored as
Float64; issue 15).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsRasterLayer

from conftest import MARS_EQUI, raster_path
from model_factory import tiny_contract
from planet_terrain_plugin.qgis_io.raster_read import raster_source
from test_bad_input import Recorder, assert_qgis_alive, extent_str, moon_wkt, run, texture, write_tif
from test_bad_input_cli import dune, shipped_model, shuffled_palette, write_paletted_tif  # noqa: F401 -- a fixture
from test_qgis_raster_read import pixel_rect

GEOTRANSFORM_M = (0.0, 0.5, 0.0, 0.0, 0.0, -0.5)  # 0.5 m pixels, as HiRISE's map projections
GEOTRANSFORM_DEG = (145.0, 0.005, 0, -20.0, 0, -0.005)


@pytest.fixture(autouse=True)
def _processing(terrain_processing):
    yield terrain_processing


def mars_wkt() -> str:
    dataset = gdal.Open(str(raster_path(MARS_EQUI)))
    return dataset.GetProjection()


def decision(path: Path, model: Path) -> dict:
    (feature,) = list(run(INPUT=str(path), MODEL=str(model))["OUTPUT"].getFeatures())
    return {name: feature[name] for name in feature.fields().names() if name.startswith("p_") or name == "label"}


def assert_same_decision(a: dict, b: dict, tolerance: float = 1e-3) -> None:
    assert a["label"] == b["label"], (a, b)
    assert max(abs(a[k] - b[k]) for k in a if k.startswith("p_")) < tolerance, (a, b)


def test_a_paletted_geotiff_is_classified_on_its_colours(shipped_model, tmp_path):
    gray = dune()
    plain = write_tif(tmp_path / "plain.tif", [gray], gdal.GDT_Byte, GEOTRANSFORM_M, mars_wkt())
    indices, palette = shuffled_palette(gray)
    paletted = write_paletted_tif(tmp_path / "paletted.tif", indices, palette, GEOTRANSFORM_M, mars_wkt())
    expected = decision(plain, shipped_model)
    assert expected["label"] == "dark dune"
    assert_same_decision(expected, decision(paletted, shipped_model))


def test_a_palette_entry_declared_nodata_is_masked(tiny_model, tmp_path):
    gray = (texture() * 200 + 20).astype(np.uint8)
    indices, palette = shuffled_palette(gray)
    nodata_index = int(indices[0, 0])
    indices[:, :40] = nodata_index  # 62 % of the raster
    path = write_paletted_tif(tmp_path / "paletted.tif", indices, palette, GEOTRANSFORM_DEG, moon_wkt(),
                              nodata_index)
    feedback = Recorder()
    assert run(feedback=feedback, INPUT=str(path), MODEL=str(tiny_model))["OUTPUT"].featureCount() == 0
    assert any("of the pixels are valid data" in e for e in feedback.errors), feedback.errors


@pytest.mark.parametrize("gdal_type, nodata", [(gdal.GDT_Int64, -(2**40)), (gdal.GDT_UInt64, None)],
                         ids=["Int64 with nodata", "UInt64"])
def test_a_64_bit_integer_raster_is_read(tiny_model, tmp_path, gdal_type, nodata):
    values = (texture() * 2**52).astype(np.int64)
    if nodata is not None:
        values[:8] = nodata
    wide = write_tif(tmp_path / "wide.tif", [values], gdal_type, GEOTRANSFORM_DEG, moon_wkt(), nodata)
    as_float = write_tif(tmp_path / "float.tif", [values.astype(np.float64)], gdal.GDT_Float64, GEOTRANSFORM_DEG,
                         moon_wkt(), nodata)
    assert_same_decision(decision(as_float, tiny_model), decision(wide, tiny_model), tolerance=1e-9)


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
    path = write_tif(tmp_path / "extreme.tif", bands, gdal_type, GEOTRANSFORM_DEG, moon_wkt(), nodata)
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
    path = write_tif(tmp_path / "rgba.tif", [t, t[::-1], t[:, ::-1], alpha], gdal.GDT_Byte, GEOTRANSFORM_DEG,
                     moon_wkt(), options=("PHOTOMETRIC=RGB", "ALPHA=YES"))
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

