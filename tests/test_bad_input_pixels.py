"""Issue 15's pixel types in QGIS: paletted rasters and 64-bit integers.

Run through ``planet_terrain:classify_extent`` in the test session's real QGIS on GeoTIFFs written here with
GDAL: a paletted raster is classified on its colours (the decision of the plain picture), and an Int64 / UInt64
raster, which QGIS 3.22's provider reports as an unknown data type, is read (the decision of the same values
stored as Float64).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from conftest import MARS_EQUI, raster_path
from test_bad_input import Recorder, moon_wkt, run, texture, write_tif
from test_bad_input_cli import dune, shipped_model, shuffled_palette, write_paletted_tif  # noqa: F401 -- a fixture

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
