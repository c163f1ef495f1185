"""The batch command's partitions: together they hold every cell of ``classify_grid``'s grid exactly once, start
on the raster's tiles where the cell size allows, and stay bounded in cells and pixels."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from planet_terrain_plugin.core import grid as core_grid
from planet_terrain_plugin.core.batch.crs import CrsFacts
from planet_terrain_plugin.core.batch.plan import MAX_PARTITION_PIXELS, make_grid, partition_cells, partitions
from planet_terrain_plugin.core.batch.source import RasterFacts
from planet_terrain_plugin.core.bodies import MOON
from planet_terrain_plugin.core.limits import MIN_EXTENT_PIXELS


def _facts(width: int, height: int, block: tuple[int, int], geographic: bool = False) -> RasterFacts:
    crs = CrsFacts("WKT", "Moon", MOON, False, geographic, MOON.mean_radius_m, 1.0)
    px = 0.001 if geographic else 5.0
    return RasterFacts("/x.tif", "x", width, height, (100.0, px, 0.0, 40.0 if geographic else 9000.0, 0.0, -px),
                       block, (1,), (None,), (None,), None, False, crs)


def _all_cells(grid: core_grid.Grid) -> list[tuple[int, int]]:
    return [(c.row, c.col) for c in grid]


@settings(max_examples=40, deadline=None)
@given(width=st.integers(50, 2000), height=st.integers(50, 2000), cell=st.integers(MIN_EXTENT_PIXELS, 300),
       block=st.sampled_from([(1, 5000), (6, 1315), (128, 128), (512, 512), (256, 1024)]),
       overlap=st.sampled_from([0.0, 0.25, 0.5]), target=st.integers(1, 5000))
def test_partitions_hold_every_cell_exactly_once(width, height, cell, block, overlap, target):
    facts = _facts(width, height, block)
    grid = make_grid(facts, core_grid.cell_size_from_pixels(cell, *facts.pixel_size), overlap)
    parts = partitions(0, facts, grid, target)
    cells = [(c.row, c.col) for p in parts for c in partition_cells(grid, p)]
    assert sorted(cells) == _all_cells(grid) and len(set(cells)) == len(cells)
    assert len({p.key for p in parts}) == len(parts)


def test_partitions_start_on_tiles_when_cells_divide_them():
    facts = _facts(10240, 10240, (512, 512))
    grid = make_grid(facts, core_grid.cell_size_from_pixels(64, *facts.pixel_size), 0.0)
    parts = partitions(0, facts, grid, 512)
    assert {(p.row0 * 64) % 512 for p in parts} == {0} and {(p.col0 * 64) % 512 for p in parts} == {0}
    assert max((p.row1 - p.row0) * (p.col1 - p.col0) for p in parts) <= 2 * 512  # about the target


def test_a_strip_tiled_raster_is_cut_in_bands_of_whole_rows():
    facts = _facts(1315, 1213, (6, 1315))  # the Apollo frames: one tile is a strip across the whole raster
    grid = make_grid(facts, core_grid.cell_size_from_pixels(32, *facts.pixel_size), 0.0)
    parts = partitions(0, facts, grid, 256)
    assert {(p.col0, p.col1) for p in parts} == {(0, grid.cols_in_row(0))}


def test_huge_cells_keep_a_partition_within_the_pixel_bound():
    facts = _facts(200_000, 200_000, (512, 512))
    grid = make_grid(facts, core_grid.cell_size_from_pixels(4000, *facts.pixel_size), 0.0)
    for p in partitions(0, facts, grid, 1024):
        assert (p.row1 - p.row0) * (p.col1 - p.col0) * 4000 ** 2 <= max(MAX_PARTITION_PIXELS, 4000 ** 2)


def test_ragged_geographic_rows_are_partitioned_in_whole_rows():
    facts = _facts(4000, 8000, (512, 512), geographic=True)  # 40 N to 48 S: widths grow towards the pole
    size = core_grid.cell_size_from_metres(500.0, True, MOON.mean_radius_m)
    grid = make_grid(facts, size, 0.0)
    parts = partitions(0, facts, grid, 300)
    cells = [(c.row, c.col) for p in parts for c in partition_cells(grid, p)]
    assert sorted(cells) == _all_cells(grid) and len(parts) > 1

