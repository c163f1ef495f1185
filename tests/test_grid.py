"""core.grid: exact tiling (property-based), lazy generation, body-correct metres, real rasters' extents.

The real-raster examples read each extent and CRS through QGIS (QgsRasterLayer), the way the plugin does,
and check that a metre-sized cell really spans that many metres on that body -- the Moon's degrees included.
"""
from __future__ import annotations

import itertools
import math
import time
import tracemalloc

import pytest
from hypothesis import given, settings, strategies as st

from conftest import APOLLO, LOLA, MARS_EQUI, MARS_POLAR, VESTA_DAWN, VESTA_DTM
from planet_terrain_plugin.core.bodies import detect_body, ground_pixel_size_m, semi_major_axis_m
from planet_terrain_plugin.core.grid import (
    LARGE_GRID_CELLS, CellSize, Extent, Grid, cell_size_from_metres, cell_size_from_pixels,
    rect_area_m2, suggest_cell_pixels)

coords = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
sizes = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(scale))


def _area_tolerance(grid: Grid) -> float:
    """Floating-point error of summed cell areas: a few ulps of the coordinates per cell edge."""
    e = grid.extent
    scale = max(1.0, abs(e.xmin), abs(e.xmax), abs(e.ymin), abs(e.ymax))
    return 1e-9 * e.area + 1e-14 * scale * (e.width * grid.rows + e.height * grid.count)


def _assert_rows_tile(grid: Grid) -> None:
    """Rows tile the extent vertically; cells tile each row horizontally: shared edges, outer edges exact."""
    ext = grid.extent
    scale = max(abs(ext.xmin), abs(ext.xmax), abs(ext.ymin), abs(ext.ymax))
    cells = list(grid)
    rows = [list(g) for _, g in itertools.groupby(cells, key=lambda c: c.row)]
    assert [r[0].row for r in rows] == list(range(grid.rows))
    assert rows[0][0].ymax == ext.ymax
    assert rows[-1][0].ymin == ext.ymin
    for upper, lower in zip(rows, rows[1:]):
        assert _close(upper[0].ymin, lower[0].ymax, scale)
    for row in rows:
        assert [c.col for c in row] == list(range(len(row)))
        assert row[0].xmin == ext.xmin and row[-1].xmax == ext.xmax
        for a, b in zip(row, row[1:]):
            assert _close(a.xmax, b.xmin, scale)
        assert all(c.ymin == row[0].ymin and c.ymax == row[0].ymax for c in row)


@settings(max_examples=150, deadline=None)
@given(x0=coords, y0=coords, size_x=sizes, size_y=sizes, nx=st.integers(1, 40), ny=st.integers(1, 40))
def test_exact_multiple_tiles_without_gaps_or_overlaps(x0, y0, size_x, size_y, nx, ny):
    grid = Grid(Extent(x0, y0, x0 + nx * size_x, y0 + ny * size_y), CellSize(size_x, size_y))
    assert grid.rows == ny and grid.cols_in_row(0) == nx
    assert grid.count == nx * ny == sum(1 for _ in grid)
    _assert_rows_tile(grid)
    total = sum(c.area for c in grid)
    assert abs(total - grid.extent.area) <= _area_tolerance(grid)
    for c in grid:  # every cell has the requested size: a multiple needs no clipping
        assert math.isclose(c.width, size_x, rel_tol=1e-6) and math.isclose(c.height, size_y, rel_tol=1e-6)


@settings(max_examples=150, deadline=None)
@given(x0=coords, y0=coords, w=sizes, h=sizes, size_x=sizes, size_y=sizes)
def test_any_extent_is_covered_exactly_when_clipped(x0, y0, w, h, size_x, size_y):
    grid = Grid(Extent(x0, y0, x0 + w, y0 + h), CellSize(size_x, size_y))
    if grid.count > 5000:
        return
    assert grid.count == sum(1 for _ in grid)
    _assert_rows_tile(grid)
    assert abs(sum(c.area for c in grid) - grid.extent.area) <= _area_tolerance(grid)
    for c in grid:  # clipped cells exceed the requested size by at most the sliver tolerance; none is empty
        assert 0 < c.width <= size_x * (1 + 2e-6) and 0 < c.height <= size_y * (1 + 2e-6)


@settings(max_examples=150, deadline=None)
@given(w=sizes, h=sizes, size=sizes, overlap=st.floats(0.0, 0.95), edge=st.sampled_from(["clip", "extend"]))
def test_overlap_strides_and_covers_without_gaps(w, h, size, overlap, edge):
    grid = Grid(Extent(0.0, 0.0, w, h), CellSize(size, size), overlap=overlap, edge=edge)
    if grid.count > 5000:
        return
    cells = list(grid)
    assert len(cells) == grid.count
    stride = size * (1 - overlap)
    row0 = [c for c in cells if c.row == 0]
    for a, b in zip(row0, row0[1:]):
        assert math.isclose(b.xmin - a.xmin, stride, rel_tol=1e-9, abs_tol=1e-12)
        assert b.xmin <= a.xmax + 1e-12  # no gap
        assert a.xmax - b.xmin <= overlap * size + 1e-9 * size  # no more overlap than asked
    assert row0[0].xmin == 0.0 and row0[-1].xmax >= w - 1e-6 * stride
    assert min(c.ymin for c in cells) <= 1e-6 * stride and max(c.ymax for c in cells) == h
    if edge == "extend":  # every cell keeps its requested size; only the far edges overhang
        assert all(math.isclose(c.width, size, rel_tol=1e-9) and math.isclose(c.height, size, rel_tol=1e-9)
                   for c in cells)
    else:
        assert all(c.xmax <= w and c.ymin >= 0.0 for c in cells)
    # never a redundant cell: the one before the last still stops short of the far edge
    if len(row0) > 1:
        assert row0[-2].xmax < w


def test_extent_smaller_than_a_cell_is_one_cell():
    grid = Grid(Extent(0, 0, 3, 2), CellSize(10, 10))
    assert grid.count == 1 and list(grid)[0] == list(grid.cells())[0]
    assert (list(grid)[0].width, list(grid)[0].height) == (3, 2)


def test_count_is_cheap_and_iteration_is_lazy():
    grid = Grid(Extent(0, 0, 1e6, 1e6), CellSize(1, 1))  # 10^12 cells
    start = time.perf_counter()
    assert grid.count == 10 ** 12 > LARGE_GRID_CELLS
    first = list(itertools.islice(grid, 3))
    assert time.perf_counter() - start < 1.0
    assert [(c.row, c.col) for c in first] == [(0, 0), (0, 1), (0, 2)]
    tracemalloc.start()
    consumed = sum(1 for _ in itertools.islice(grid, 200_000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert consumed == 200_000 and peak < 2_000_000  # a list of 200k cells alone would take ~40 MB


def test_predicate_hook_filters_cells():
    grid = Grid(Extent(0, 0, 10, 10), CellSize(1, 1))
    kept = list(grid.cells(lambda c: (c.row + c.col) % 2 == 0))
    assert len(kept) == 50 and all((c.row + c.col) % 2 == 0 for c in kept)


@pytest.mark.parametrize("kwargs", [dict(overlap=1.0), dict(overlap=-0.1), dict(edge="wrap")])
def test_invalid_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        Grid(Extent(0, 0, 1, 1), CellSize(1, 1), **kwargs)


@pytest.mark.parametrize("extent", [(0, 0, 0, 1), (1, 0, 0, 1), (0, 0, float("nan"), 1)])
def test_empty_or_invalid_extents_are_refused(extent):
    with pytest.raises(ValueError):
        Extent(*extent)


def test_geographic_metres_use_per_row_widths_and_the_crs_radius():
    radius = 1_737_400.0
    size = cell_size_from_metres(10_000, geographic=True, radius_m=radius)
    deg = 10_000 / (radius * math.pi / 180)
    assert math.isclose(size.height, deg) and math.isclose(size.width_at(0.0), deg)
    assert math.isclose(size.width_at(60.0), 2 * deg)
    grid = Grid(Extent(0.0, 0.0, 10.0, 80.0), size)
    assert grid.cols_in_row(0) < grid.cols_in_row(grid.rows - 1)  # row 0 is the northern-most: widest cells
    assert grid.count == sum(1 for _ in grid)
    _assert_rows_tile(grid)


def test_geographic_width_is_capped_near_the_pole():
    size = cell_size_from_metres(1000, geographic=True, radius_m=1_737_400.0)
    grid = Grid(Extent(-180.0, 89.99, 180.0, 90.0), size)
    assert grid.cols_in_row(0) == 1 and list(grid.row_cells(0))[0].width == 360.0


def test_projected_metres_respect_the_unit():
    assert cell_size_from_metres(1000, geographic=False).width == 1000
    assert cell_size_from_metres(1000, geographic=False, unit_to_m=1000).width == 1.0
    with pytest.raises(ValueError):
        cell_size_from_metres(1000, geographic=True)  # a geographic CRS without a radius


def test_suggested_cell_size():
    assert suggest_cell_pixels(224) == 224
    assert suggest_cell_pixels(224, native_gsd_m=0.25, gsd_range_m=(1.0, 10.0)) == 896
    assert suggest_cell_pixels(224, native_gsd_m=5.0, gsd_range_m=(1.0, 10.0)) == 224
    assert suggest_cell_pixels(224, native_gsd_m=50.0, gsd_range_m=(1.0, 10.0)) == 224


# -- real rasters, read through QGIS ------------------------------------------------------------------------
REAL = [
    (APOLLO, "Moon", "geographic"),
    (LOLA, "Moon", "lambert"),
    (VESTA_DAWN, "Vesta", "equirectangular"),
    (VESTA_DTM, "Vesta", "equirectangular"),
    (MARS_EQUI, "Mars", "equirectangular"),
    (MARS_POLAR, "Mars", "polar stereographic"),
]


def _raster(raster_layer, name: str):
    """The layer (opened by QGIS, as the plugin does), its extent as a core Extent, its CRS, degrees or not."""
    from qgis.core import QgsUnitTypes

    layer = raster_layer(name)
    e = layer.extent()
    crs = layer.crs()
    # QGIS 3.22 reports isGeographic() False for the Apollo "unnamed ellipse" CRS: go by the map units.
    geographic = crs.mapUnits() == QgsUnitTypes.DistanceDegrees
    return layer, Extent(e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()), crs, geographic


@pytest.mark.parametrize("name, body, kind", REAL)
def test_pixel_cells_match_the_raster_grid(raster_layer, name, body, kind):
    layer, extent, crs, _ = _raster(raster_layer, name)
    assert detect_body(crs.toWkt(), crs.authid()).name == body
    pixels = 16
    grid = Grid(extent, cell_size_from_pixels(pixels, layer.rasterUnitsPerPixelX(),
                                                   layer.rasterUnitsPerPixelY()))
    assert grid.rows == math.ceil(layer.height() / pixels - 1e-9)
    assert grid.cols_in_row(0) == math.ceil(layer.width() / pixels - 1e-9)
    assert grid.count == sum(1 for _ in grid)
    first = next(iter(grid))  # cell (0, 0) is the raster's top-left 16 x 16 pixels
    assert math.isclose(first.xmin, extent.xmin) and math.isclose(first.ymax, extent.ymax)
    assert math.isclose(first.width / layer.rasterUnitsPerPixelX(), pixels, rel_tol=1e-9)
    _assert_rows_tile(grid)


@pytest.mark.parametrize("name, body, kind", REAL)
def test_metre_cells_span_those_metres_on_the_body(raster_layer, name, body, kind):
    layer, extent, crs, geographic = _raster(raster_layer, name)
    wkt = crs.toWkt()
    found = detect_body(wkt, crs.authid())
    radius = semi_major_axis_m(wkt)
    assert geographic == (kind == "geographic")
    # a cell of ~8 raster pixels, in metres on the body
    px_m = ground_pixel_size_m(found, layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY(), geographic,
                               (extent.ymin + extent.ymax) / 2, radius_m=radius)
    metres = 8 * px_m[1]
    grid = Grid(extent, cell_size_from_metres(metres, geographic, radius_m=radius), edge="extend")
    assert grid.count == sum(1 for _ in grid) > 1
    for cell in itertools.islice(grid, 0, None, 7):
        lat = cell.centre[1]
        gx, gy = ground_pixel_size_m(found, cell.width, cell.height, geographic, lat, radius_m=radius)
        assert math.isclose(gy, metres, rel_tol=1e-9)
        width_cap = geographic and cell.width >= extent.width
        if not width_cap:
            assert math.isclose(gx, metres, rel_tol=1e-9), (cell, gx, metres)


def test_moon_degrees_are_lunar_not_terrestrial(raster_layer):
    """20 km cells on the Apollo frame: ~0.66 degrees tall (Earth's radius would give ~0.18)."""
    _, extent, crs, geographic = _raster(raster_layer, APOLLO)
    assert geographic
    size = cell_size_from_metres(20_000, True, radius_m=semi_major_axis_m(crs.toWkt()))
    assert math.isclose(size.height, 0.6595, rel_tol=1e-3)
    grid = Grid(extent, size)
    assert grid.rows == math.ceil(extent.height / size.height)
    lat0 = sum(grid.row_bounds(0)) / 2
    assert grid.row_width(0) == pytest.approx(size.height / math.cos(math.radians(lat0)))
    assert grid.count == sum(grid.cols_in_row(r) for r in range(grid.rows)) == sum(1 for _ in grid)


def test_rect_area_on_a_sphere_and_a_map():
    r = 1_737_400.0
    whole = rect_area_m2(-180, -90, 180, 90, True, radius_m=r)
    assert math.isclose(whole, 4 * math.pi * r ** 2, rel_tol=1e-12)
    north = rect_area_m2(-180, 0, 180, 90, True, radius_m=r)
    assert math.isclose(north, whole / 2, rel_tol=1e-12)
    # a 1-degree square shrinks with cos(latitude)
    eq, high = rect_area_m2(0, 0, 1, 1, True, radius_m=r), rect_area_m2(0, 60, 1, 61, True, radius_m=r)
    assert math.isclose(high / eq, math.cos(math.radians(60.5)), rel_tol=1e-3)
    assert rect_area_m2(0, 0, 2, 3, False, unit_to_m=1000) == 6e6


@settings(max_examples=100, deadline=None)
@given(lon0=st.floats(-180, 170), lat0=st.floats(-89, 80), w=st.floats(0.01, 10), h=st.floats(0.01, 9),
       metres=st.floats(100, 200_000), radius=st.sampled_from([1_737_400.0, 3_396_190.0, 262_700.0]),
       edge=st.sampled_from(["clip", "extend"]))
def test_geographic_grids_count_and_tile_every_row(lon0, lat0, w, h, metres, radius, edge):
    grid = Grid(Extent(lon0, lat0, lon0 + w, min(lat0 + h, 90.0)), cell_size_from_metres(metres, True, radius),
                     edge=edge)
    if grid.count > 5000:
        return
    assert grid.count == sum(1 for _ in grid)
    if edge == "clip":
        _assert_rows_tile(grid)
    for cell in grid:  # each row's cells are as wide as that row's centre latitude asks (or the capped width)
        lat = sum(grid.row_bounds(cell.row)) / 2
        want = min(metres / (radius * math.pi / 180 * max(math.cos(math.radians(lat)), 1e-6)), grid.extent.width)
        if edge == "extend" or cell.col < grid.cols_in_row(cell.row) - 1:
            assert math.isclose(cell.width, want, rel_tol=1e-9)
