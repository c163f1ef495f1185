"""Body detection from real planetary WKT and GSD on each body (never Earth's constant)."""
from __future__ import annotations

import math

import pytest
from osgeo import gdal

from paths import RASTERS
from planet_terrain_plugin.core.bodies import (
    MARS, MOON, VESTA, body_by_name, detect_body, gsd_m, semi_major_axis_m)

CASES = [
    ("AS15-M-0295_SML_geo.tif", "Moon"),
    ("AS15-M-0296_SML_geo.tif", "Moon"),
    ("Lunar_LRO_LOLA_Shade_MAP2_90.0N20.0_LAMB.tif", "Moon"),
    ("lrowacphomap__WAC_GLD100_V1.0_GLOBAL_with_LOLA_30M_POLE.16bit.reduced.cub", "Moon"),
    ("isis2pds__dawnEqui1.cub", "Vesta"),
    ("demprep__vest64_dtm_specialpixels_downsampled.cub", "Vesta"),
    ("hidtmgen__ortho__PSP_002118_1510_25cm_o_forPDS_cropped.cub", "Mars"),
    ("hidtmgen__ortho__PSP_009404_2635_RED_NLstretch_25cm_o_forPDS_cropped.cub", "Mars"),
]


@pytest.mark.parametrize("name, body", CASES)
def test_detects_body_of_each_shared_raster(name, body):
    ds = gdal.Open(str(RASTERS / name))
    assert detect_body(ds.GetProjection()).name == body


def test_earth_is_recognised_not_mistaken_for_a_planet():
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    assert detect_body(srs.ExportToWkt(), "EPSG:4326").name == "Earth"


def test_iau_codes_and_name_radius_disagreement():
    assert detect_body("", "IAU_2015:49900") is MARS
    assert detect_body("", "IAU_2015:30100") is MOON
    # A datum called Mars on an Earth-sized ellipsoid is not trusted as Mars.
    liar = 'GEOGCRS["Mars",DATUM["D_Mars",ELLIPSOID["Mars",6378137,298.257]]]'
    assert detect_body(liar).name == "Earth"
    assert detect_body('GEOGCRS["x",DATUM["y",ELLIPSOID["z",123,0]]]') is None


def test_apollo_gsd_uses_the_lunar_radius():
    ds = gdal.Open(str(RASTERS / "AS15-M-0295_SML_geo.tif"))
    gt = ds.GetGeoTransform()
    lat = gt[3] + gt[5] * ds.RasterYSize / 2
    radius = semi_major_axis_m(ds.GetProjection())
    assert radius == 1737400
    g = gsd_m(MOON, gt[1], gt[5], True, lat, radius_m=radius)
    per_degree = math.pi * 1737400 / 180
    expected = math.sqrt(abs(gt[1]) * per_degree * math.cos(math.radians(lat)) * abs(gt[5]) * per_degree)
    assert g == pytest.approx(expected)
    assert 150 < g < 180  # ~177 m/px at the equator, less in x at this latitude; Earth's constant would give ~650


def test_projected_gsd_is_the_pixel_size():
    assert gsd_m(VESTA, 162.673, -162.673, False) == pytest.approx(162.673)
    assert gsd_m(MARS, 0.25, -0.25, False) == pytest.approx(0.25)


def test_body_override_by_name():
    assert body_by_name("mars") is MARS
    with pytest.raises(ValueError, match="Mars"):
        body_by_name("Pluto")


def test_an_image_without_pixels_has_no_ground_pixel_size():
    """A web (XYZ) layer reports 0 x 0 pixels; its pixel size is unknown (NaN), never a ZeroDivisionError, which
    killed QGIS when the panel computed the default cell on adding such a layer."""
    from types import SimpleNamespace
    from planet_terrain_plugin.core.bodies import crs_gsd_m
    facts = SimpleNamespace(valid=True, body=MOON, degrees=True, radius_m=None, unit_to_m=1.0)
    assert math.isnan(crs_gsd_m(facts, 10.0, 10.0, 0, 0, 0.0))
    assert math.isnan(crs_gsd_m(facts, 10.0, 10.0, 100, 0, 0.0))
