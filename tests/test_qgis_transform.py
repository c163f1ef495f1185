"""Rectangles between planetary CRSs: real transforms on one body, direct reuse of renamed copies, refusals."""
from __future__ import annotations

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRectangle

from conftest import APOLLO, LOLA, VESTA_DAWN
from planet_terrain_plugin.qgis_io.transform import CrsMismatchError, rect_to_crs, same_surface


def test_same_crs_is_passed_through(raster_layer):
    crs = raster_layer(APOLLO).crs()
    r = QgsRectangle(145, -22, 146, -21)
    assert rect_to_crs(r, crs, crs) == r


def test_moon_geographic_to_moon_lambert_is_really_transformed(raster_layer):
    apollo, lola = raster_layer(APOLLO), raster_layer(LOLA)
    out = rect_to_crs(apollo.extent(), apollo.crs(), lola.crs())
    # LCC centred on the north pole with lon_0 = 20: Apollo 15's frame (~147 E, 21 S) lies millions of metres out
    assert 3.6e6 < out.xMinimum() < out.xMaximum() < 4.3e6 and 1.0e6 < out.yMinimum() < out.yMaximum() < 1.7e6


def test_renamed_copy_of_the_layer_crs_is_used_directly(raster_layer):
    apollo = raster_layer(APOLLO)
    copy = QgsCoordinateReferenceSystem.fromProj(apollo.crs().toProj())  # what a canvas often ends up with
    assert same_surface(copy, apollo.crs())
    r = QgsRectangle(145, -22, 146, -21)
    assert rect_to_crs(r, copy, apollo.crs()).toString(6) == r.toString(6)


def test_moon_to_vesta_is_refused_not_passed_through(raster_layer):
    apollo, vesta = raster_layer(APOLLO), raster_layer(VESTA_DAWN)
    # QGIS's own transform is invalid here and would short-circuit (return the input unchanged)
    assert not QgsCoordinateTransform(apollo.crs(), vesta.crs(), QgsProject.instance().transformContext()).isValid()
    assert not same_surface(apollo.crs(), vesta.crs())
    with pytest.raises(CrsMismatchError, match="cannot place the rectangle.*Equirectangular VESTA"):
        rect_to_crs(apollo.extent(), apollo.crs(), vesta.crs())
