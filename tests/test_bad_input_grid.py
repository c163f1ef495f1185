"""Issue 15's grid, polygon and extent cases: through ``processing.run`` in the test session's real QGIS, on
GeoTIFFs, VRTs and GeoPackages written here with GDAL/OGR in planetary CRSs, with the tiny real ONNX model.

* a metre grid over a huge geographic raster is counted (and refused) at once, and the count is the cells'
  own count (``core.grid``);
* polygons in a CRS QGIS cannot read, or on another body, are refused, never used as they are;
* a geographic raster wider than the globe is refused before any area is reported;
* NaN in a number parameter is named with its valid range;
* an extent in the other longitude convention (-180..180 on a 0..360 raster) is moved by 360° onto the raster.
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from osgeo import gdal, ogr, osr
from qgis.core import QgsProject, QgsRasterLayer

from conftest import APOLLO, raster_path
from planet_terrain_plugin.core import grid as core_grid
from planet_terrain_plugin.core.bodies import MOON
from test_bad_input import (EXTENT_ALG, GRID_ALG, _processing, controller, moon_wkt, refused,  # noqa: F401
                            result_layers, run, run_task, texture, write_tif)

MARS_WKT = ('GEOGCS["GCS_Mars_2000",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",3396190,169.894447223612]],'
            'PRIMEM["Reference_Meridian",0],UNIT["degree",0.0174532925199433]]')


def huge_vrt(path: Path, source: Path, columns: int, rows: int, geotransform, wkt: str) -> Path:
    """A VRT of ``columns`` x ``rows`` pixels (up to GDAL's limit) whose top-left 64 x 64 px are ``source``."""
    path.write_text(
        f'<VRTDataset rasterXSize="{columns}" rasterYSize="{rows}">\n'
        f'  <SRS>{escape(wkt)}</SRS>\n'
        f'  <GeoTransform>{", ".join(repr(float(v)) for v in geotransform)}</GeoTransform>\n'
        '  <VRTRasterBand dataType="Byte" band="1">\n'
        f'    <SimpleSource><SourceFilename relativeToVRT="0">{escape(str(source))}</SourceFilename>'
        '<SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" xSize="64" ySize="64"/>'
        '<DstRect xOff="0" yOff="0" xSize="64" ySize="64"/></SimpleSource>\n'
        '  </VRTRasterBand>\n</VRTDataset>\n')
    return path


@pytest.fixture
def small_tif(tmp_path) -> Path:
    data = (texture() * 200 + 20).astype(np.uint8)
    return write_tif(tmp_path / "small.tif", [data], gdal.GDT_Byte, (0.0, 1.0, 0, 0.0, 0, -1.0), moon_wkt())


def refused_count(message: str) -> int:
    """The cell count a MAX_CELLS refusal names (the product never parses its own messages; a test may)."""
    match = re.search(r"The grid has (?:about )?([\d,]+) cells, more than MAX_CELLS", message)
    assert match is not None, message
    return int(match.group(1).replace(",", ""))


def row_by_row(vrt: Path, metres: float) -> int:
    """The cells of a metre grid over the whole of ``vrt``, counted one row at a time (the definition)."""
    layer = QgsRasterLayer(str(vrt), "vrt")
    e = layer.extent()
    size = core_grid.cell_size_from_metres(metres, True, MOON.mean_radius_m)
    grid = core_grid.Grid(core_grid.Extent(e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()), size, 0.0,
                          edge="extend")
    return sum(grid.cols_in_row(r) for r in range(grid.rows))


# -- item 5: counting a metre grid on degrees ----------------------------------------------------------------------
N = 2**31 - 1  # GDAL's largest raster side


@pytest.mark.parametrize("columns, rows, geotransform, degrees_wide, metres", [
    # 24 M rows of 0.23 m, 2.7 M grid rows of 2 m cells: 199 M cells
    (1000, 24_000_000, (0.0, 7.5e-6, 0, 90.0, 0, -7.5e-6), 1000 * 7.5e-6, 2.0),
    # GDAL's largest raster over the whole Moon, 109 M grid rows of 5 cm cells (20 px): 15 P cells
    (N, N, (-180.0, 360.0 / N, 0, 90.0, 0, -180.0 / N), 360.0, 0.05),
], ids=["24M-rows", "largest"])
def test_metre_grid_on_a_huge_geographic_raster_is_refused_at_once(tiny_model, small_tif, tmp_path, columns, rows,
                                                                    geotransform, degrees_wide, metres):
    vrt = huge_vrt(tmp_path / "huge.vrt", small_tif, columns, rows, geotransform, moon_wkt())
    out = tmp_path / "grid.gpkg"
    start = time.monotonic()
    msg = refused(r"The grid has (about )?[\d,]+ cells, more than MAX_CELLS \(1,000,000\)", GRID_ALG,
                  INPUT=str(vrt), MODEL=str(tiny_model), CELL_SIZE=metres, CELL_UNIT=0, OUTPUT=str(out))
    assert time.monotonic() - start < 5, "the refusal must not walk millions of rows"
    assert not out.exists()
    # about the raster's area on the sphere over a cell's (partial cells at the edges add a little)
    area = math.radians(degrees_wide) * 2 * MOON.mean_radius_m ** 2
    assert 0.99 < refused_count(msg) / (area / metres ** 2) < 1.1


def test_refused_count_is_the_row_by_row_count(tiny_model, small_tif, tmp_path):
    vrt = huge_vrt(tmp_path / "tall.vrt", small_tif, 300, 240_000, (-10.0, 7.5e-4, 0, 90.0, 0, -7.5e-4), moon_wkt())
    msg = refused("more than MAX_CELLS", GRID_ALG, INPUT=str(vrt), MODEL=str(tiny_model), CELL_SIZE=300,
                  CELL_UNIT=0, MAX_CELLS=1000)
    assert refused_count(msg) == row_by_row(vrt, 300)


@settings(max_examples=300, deadline=None)
@given(top=st.floats(-89.0, 95.0), height=st.floats(1e-3, 185.0), left=st.floats(-360.0, 360.0),
       width=st.floats(1e-3, 720.0), metres=st.floats(50.0, 500_000.0), overlap=st.sampled_from([0.0, 0.5, 0.9]),
       edge=st.sampled_from(core_grid.EDGE_POLICIES))
def test_count_is_the_row_by_row_count_and_within_its_bounds(top, height, left, width, metres, overlap, edge):
    size = core_grid.cell_size_from_metres(metres, True, MOON.mean_radius_m)
    grid = core_grid.Grid(core_grid.Extent(left, top - height, left + width, top), size, overlap, edge)
    if grid.rows > 20_000:
        return
    count = sum(grid.cols_in_row(r) for r in range(grid.rows))
    low, high = grid.count_bounds()
    assert grid.count == count and low <= count <= high
    assert grid.count_or_bound(count) == (count, True)


# -- item 12: polygons in a CRS QGIS cannot read, or on another body -----------------------------------------------
def polygons_file(path: Path, srs: osr.SpatialReference, wkt_polygons: list[str]) -> Path:
    """A GeoPackage written by OGR with the polygons in ``srs``."""
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("areas", srs, ogr.wkbPolygon)
    for wkt in wkt_polygons:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        layer.CreateFeature(feature)
    ds = None
    return path


APOLLO_POLYGON = "POLYGON((145 -30,150 -30,150 -20,145 -20,145 -30))"  # over the Apollo 15 frame's coordinates


def srs_of(text: str) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    assert srs.SetFromUserInput(text) == 0
    return srs


@pytest.mark.parametrize("srs, words", [
    ("IAU_2015:49900", r"POLYGONS: QGIS cannot read the polygons' CRS 'Mars \(2015\) - Sphere / Ocentric' \(on "
                       r"Mars\).*raster's CRS 'unnamed ellipse' \(on the Moon\).*reprojected"),
    (MARS_WKT, r"POLYGONS: the polygons' CRS 'GCS_Mars_2000' \(on Mars\).*raster's CRS 'unnamed ellipse' \(on "
               r"the Moon\): they lie on different bodies.*reprojected"),
], ids=["mars-iau2015-unreadable", "mars-readable"])
def test_polygons_on_mars_over_a_moon_raster_are_refused(tiny_model, tmp_path, srs, words):
    gpkg = polygons_file(tmp_path / "mars.gpkg", srs_of(srs), [APOLLO_POLYGON])
    out = tmp_path / "grid.gpkg"
    refused(words, GRID_ALG, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), POLYGONS=str(gpkg),
            CELL_SIZE=64, CELL_UNIT=1, OUTPUT=str(out))
    assert not out.exists()


def test_polygons_in_an_unreadable_moon_crs_are_refused_too(tiny_model, tmp_path):
    """Same body, but QGIS cannot read the CRS: what the numbers mean is unknown, so they are not used."""
    gpkg = polygons_file(tmp_path / "moon.gpkg", srs_of("IAU_2015:30100"), [APOLLO_POLYGON])
    refused(r"POLYGONS: QGIS cannot read the polygons' CRS 'Moon \(2015\) - Sphere / Ocentric' \(on the Moon\)",
            GRID_ALG, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), POLYGONS=str(gpkg), CELL_SIZE=64,
            CELL_UNIT=1)


def test_polygons_in_the_raster_crs_written_by_ogr_still_restrict_the_grid(tiny_model, tmp_path):
    gpkg = polygons_file(tmp_path / "moon.gpkg", srs_of(moon_wkt()), [APOLLO_POLYGON])
    res = run(GRID_ALG, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), POLYGONS=str(gpkg), CELL_SIZE=64,
              CELL_UNIT=1)
    assert res["CELLS_TOTAL"] > 0 and res["CELLS_CLASSIFIED"] > 0


# -- item 13: a geographic raster wider than the globe -------------------------------------------------------------
def test_raster_720_degrees_wide_is_refused_before_any_area_is_reported(tiny_model, tmp_path):
    data = (texture((90, 360), seed=4) * 200 + 20).astype(np.uint8)
    tif = write_tif(tmp_path / "twice.tif", [data], gdal.GDT_Byte, (-360.0, 2.0, 0, 90.0, 0, -2.0), moon_wkt())
    words = r"spans 720° of longitude, more than the whole globe \(360°\).*geotransform.*gdal_edit"
    refused(words, GRID_ALG, INPUT=str(tif), MODEL=str(tiny_model), CELL_SIZE=16, CELL_UNIT=1)
    refused(words, EXTENT_ALG, INPUT=str(tif), MODEL=str(tiny_model))


def test_global_raster_areas_add_up_to_at_most_the_body_surface(tiny_model, tmp_path):
    data = (texture((180, 360), seed=5) * 200 + 20).astype(np.uint8)
    tif = write_tif(tmp_path / "globe.tif", [data], gdal.GDT_Byte, (-180.0, 1.0, 0, 90.0, 0, -1.0), moon_wkt())
    res = run(GRID_ALG, INPUT=str(tif), MODEL=str(tiny_model), CELL_SIZE=30, CELL_UNIT=1)
    surface = 4 * math.pi * 1737400.0 ** 2
    assert sum(json.loads(res["CLASS_AREAS_M2"]).values()) == pytest.approx(surface, rel=1e-9)


# -- item 14: NaN and out-of-range numbers -------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, words", [
    ("CELL_SIZE", float("nan"), r"CELL_SIZE: nan is not a finite number.*at least 0.*empty"),
    ("OVERLAP", float("nan"), r"OVERLAP: nan is not a finite number.*between 0 and 0\.9"),
    ("BATCH_SIZE", float("nan"), r"BATCH_SIZE: nan is not a finite number.*whole number between 1 and 1024"),
    ("MAX_CELLS", float("nan"), r"MAX_CELLS: nan is not a finite number.*whole number of at least 1"),
    ("MAX_CELLS", float("inf"), r"MAX_CELLS: inf is not a finite number.*whole number of at least 1"),
    ("CELL_SIZE", float("inf"), r"CELL_SIZE: inf is not a finite number"),
    ("OVERLAP", "nan", r"OVERLAP: nan is not a finite number"),  # as qgis_process passes it
])
def test_nan_in_a_number_parameter_names_it_and_its_range(tiny_model, tmp_path, name, value, words):
    out = tmp_path / "grid.gpkg"
    params = dict(INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), CELL_SIZE=64, CELL_UNIT=1, OUTPUT=str(out))
    params[name] = value
    msg = refused(words, GRID_ALG, **params)
    assert "Traceback" not in msg and not out.exists()


def test_max_cells_beyond_32_bits_is_honoured(tiny_model):
    """The panel raises MAX_CELLS to the refused count, which can exceed 2**31: it must not wrap to 0."""
    res = run(GRID_ALG, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), CELL_SIZE=256, CELL_UNIT=1,
              MAX_CELLS=10**10)
    assert res["CELLS_TOTAL"] > 0


# -- item 15: longitudes in the other convention -------------------------------------------------------------------
@pytest.fixture
def mars_0_360(tmp_path) -> Path:
    """A global geographic Mars raster with longitudes 0..360 (1° pixels)."""
    data = (texture((180, 360), seed=6) * 200 + 20).astype(np.uint8)
    return write_tif(tmp_path / "mars360.tif", [data], gdal.GDT_Byte, (0.0, 1.0, 0, 90.0, 0, -1.0), MARS_WKT)


def test_extent_west_of_0_is_moved_onto_a_0_360_raster(mars_0_360, tiny_model):
    res = run(EXTENT_ALG, INPUT=str(mars_0_360), MODEL=str(tiny_model), EXTENT="-60,-20,-10,10")
    (feature,) = res["OUTPUT"].getFeatures()
    assert feature.geometry().boundingBox().toString(6) == "300.000000,-10.000000 : 340.000000,10.000000"
    grid = run(GRID_ALG, INPUT=str(mars_0_360), MODEL=str(tiny_model), EXTENT="-60,-20,-10,10", CELL_SIZE=10,
               CELL_UNIT=1)
    boxes = [f.geometry().boundingBox() for f in grid["OUTPUT"].getFeatures()]
    assert grid["CELLS_TOTAL"] == 8 and len(boxes) == 8
    assert min(b.xMinimum() for b in boxes) == 300 and max(b.xMaximum() for b in boxes) == 340


def test_extent_east_of_180_is_moved_onto_a_minus_180_180_raster(tiny_model, tmp_path):
    data = (texture((180, 360), seed=7) * 200 + 20).astype(np.uint8)
    tif = write_tif(tmp_path / "mars180.tif", [data], gdal.GDT_Byte, (-180.0, 1.0, 0, 90.0, 0, -1.0), MARS_WKT)
    res = run(EXTENT_ALG, INPUT=str(tif), MODEL=str(tiny_model), EXTENT="300,340,-10,10")
    (feature,) = res["OUTPUT"].getFeatures()
    assert feature.geometry().boundingBox().toString(6) == "-60.000000,-10.000000 : -20.000000,10.000000"


def test_extent_moved_onto_a_regional_0_360_raster(tiny_model, tmp_path):
    data = (texture((40, 60), seed=8) * 200 + 20).astype(np.uint8)
    tif = write_tif(tmp_path / "regional.tif", [data], gdal.GDT_Byte, (290.0, 1.0, 0, 20.0, 0, -1.0), MARS_WKT)
    res = run(GRID_ALG, INPUT=str(tif), MODEL=str(tiny_model), EXTENT="-60,-20,-10,10", CELL_SIZE=10, CELL_UNIT=1)
    boxes = [f.geometry().boundingBox() for f in res["OUTPUT"].getFeatures()]
    assert res["CELLS_TOTAL"] == 8 and min(b.xMinimum() for b in boxes) == 300


@pytest.mark.parametrize("alg", [EXTENT_ALG, GRID_ALG])
@pytest.mark.parametrize("extent, seam", [("-10,10,-10,10", "0"), ("350,370,-10,10", "360")])
def test_extent_really_across_the_seam_of_a_0_360_raster_is_refused(mars_0_360, tiny_model, alg, extent, seam):
    refused(rf"crosses longitude {seam}°, where this global raster wraps around", alg, INPUT=str(mars_0_360),
            MODEL=str(tiny_model), EXTENT=extent, CELL_SIZE=10, CELL_UNIT=1)


def test_map_tool_rectangle_west_of_0_is_classified_on_a_0_360_raster(qgis_iface, qgis_new_project, controller, bar,
                                                                      mars_0_360, tiny_model):
    from qgis.core import QgsRectangle

    layer = QgsRasterLayer(str(mars_0_360), "mars360")
    QgsProject.instance().addMapLayer(layer)
    try:
        task = run_task(controller, lambda: controller.classify_layer_extent(
            layer, QgsRectangle(-60, -10, -20, 10), str(tiny_model)))
        assert task is not None and task.error is None
        (result,) = result_layers(layer.id())
        (feature,) = result.getFeatures()
        assert feature.geometry().boundingBox().toString(6) == "300.000000,-10.000000 : 340.000000,10.000000"
    finally:
        QgsProject.instance().removeAllMapLayers()
