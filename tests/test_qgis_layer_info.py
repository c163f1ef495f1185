"""Body detection and ground pixel size of every shared raster, through the real QGIS layer and its CRS."""
from __future__ import annotations

import math

import pytest

from conftest import APOLLO, APOLLO_2, LOLA, MARS_EQUI, MARS_POLAR, VESTA_DAWN, VESTA_DTM, WAC
from planet_terrain_plugin.qgis_io import layer_info

MOON_R = 1737400.0


def apollo_expected_gsd(layer) -> float:
    """Independent arithmetic: degrees on the 1,737,400 m sphere, x shrunk by cos(latitude), geometric mean."""
    ext = layer.extent()
    deg_x, deg_y = ext.width() / layer.width(), ext.height() / layer.height()
    m_per_deg = 2 * math.pi * MOON_R / 360.0
    lat = math.radians((ext.yMinimum() + ext.yMaximum()) / 2)
    return math.sqrt(deg_x * m_per_deg * math.cos(lat) * deg_y * m_per_deg)


@pytest.mark.parametrize("name, body, gsd", [
    (LOLA, "Moon", 3870.0),
    (WAC, "Moon", 12800.0),
    (VESTA_DAWN, "Vesta", 162.673),
    (VESTA_DTM, "Vesta", 5000.0),
    (MARS_EQUI, "Mars", 0.25166),
    (MARS_POLAR, "Mars", 0.24712),
])
def test_projected_rasters_body_and_gsd(raster_layer, name, body, gsd):
    layer = raster_layer(name)
    info = layer_info.crs_info(layer.crs())
    assert info.body is not None and info.body.name == body
    assert not info.degrees and info.unit_to_m == 1.0
    got = layer_info.gsd_m(info, layer.extent(), layer.width(), layer.height())
    assert got == pytest.approx(gsd, rel=1e-4)


@pytest.mark.parametrize("name", [APOLLO, APOLLO_2])
def test_apollo_geographic_gsd_uses_the_lunar_radius_not_the_earth(raster_layer, name):
    layer = raster_layer(name)
    # QGIS 3.22 calls this custom GEOGCRS non-geographic; its unit (degrees) is what tells.
    info = layer_info.crs_info(layer.crs())
    assert info.body.name == "Moon" and info.degrees
    assert info.radius_m == MOON_R
    got = layer_info.gsd_m(info, layer.extent(), layer.width(), layer.height())
    assert got == pytest.approx(apollo_expected_gsd(layer), rel=1e-6)
    assert 160 < got < 180  # ~177 m north-south, less east-west at 21 deg S; an Earth radius would give ~640 m


def test_gsd_along_y_is_the_documented_177_m(raster_layer):
    layer = raster_layer(APOLLO)
    info = layer_info.crs_info(layer.crs())
    ext = layer.extent()
    # a one-column-wide strip at the equator of the formula: cos(lat) matters only in x
    one_row_y = ext.height() / layer.height()
    assert one_row_y * math.pi * MOON_R / 180 == pytest.approx(177.5, abs=0.5)
    assert info.radius_m * math.pi / 180 * one_row_y == pytest.approx(177.5, abs=0.5)


def test_body_override_replaces_detection_but_keeps_what_was_detected(raster_layer):
    info = layer_info.crs_info(raster_layer(APOLLO).crs(), "Mars")
    assert info.body.name == "Mars" and info.detected.name == "Moon" and info.overridden
    assert layer_info.crs_info(raster_layer(APOLLO).crs(), "auto").body.name == "Moon"
    with pytest.raises(ValueError, match="unknown body"):
        layer_info.crs_info(raster_layer(APOLLO).crs(), "Pluto")


def test_earth_crs_is_recognised_as_earth(qgis_app):
    from qgis.core import QgsCoordinateReferenceSystem

    info = layer_info.crs_info(QgsCoordinateReferenceSystem("EPSG:4326"))
    assert info.body.name == "Earth" and info.degrees


def test_body_choices_are_auto_plus_the_planetary_bodies():
    assert layer_info.BODY_CHOICES == ("auto", "Mars", "Moon", "Vesta")
