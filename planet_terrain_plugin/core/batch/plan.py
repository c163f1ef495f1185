"""The cells of a batch run and how they are cut into partitions, one Dask task each.

The grid is ``classify_grid``'s exactly: ``core.grid.Grid`` over the whole raster extent with ``edge="extend"``
and the same default cell size (``core.grid.suggest_cell_pixels``), so both paths classify the same cells.

A partition is a block of grid rows and columns whose pixels start on the raster's tile boundaries as far as
the cell size allows, so a task decodes whole tiles that no other task needs; it is sized to hold about
``cells`` cells and at most ``MAX_PARTITION_PIXELS`` source pixels, so memory per task is bounded whatever the
raster. Grids in metres on a geographic raster have rows of different column counts: their partitions are
bands of whole rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import islice
from typing import Iterator

from .. import grid as core_grid
from ..contract import ModelContract
from ..limits import MIN_EXTENT_PIXELS
from ..bodies import crs_gsd_m as gsd_m
from .source import RasterFacts

#: Cells per partition by default: a few seconds of work per task on one CPU core.
DEFAULT_PARTITION_CELLS = 512
#: Most source pixels one partition covers (bounds what a task reads, for very large cells).
MAX_PARTITION_PIXELS = 64 * 2**20


class PlanError(ValueError):
    """The grid asked for cannot be made; the message says which option to change."""


@dataclass(frozen=True)
class CellChoice:
    """A cell size as the user gave it (or derived): ``value`` in ``unit`` ("metres" or "pixels")."""

    value: float
    unit: str


@dataclass(frozen=True)
class Partition:
    """Rows ``row0 <= r < row1`` and, within each row, columns ``col0 <= c < col1`` of one raster's grid."""

    raster_index: int
    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def key(self) -> str:
        """Stable file-name stem: the same partition gets the same name in every run of the same plan."""
        return f"part-{self.raster_index:04d}-r{self.row0:07d}-c{self.col0:07d}"


def cell_choice(facts: RasterFacts, contract: ModelContract, metres: float | None,
                pixels: float | None) -> CellChoice:
    """The cell size for ``facts``: the user's metres or pixels, else ``classify_grid``'s default."""
    if metres is not None:
        return CellChoice(metres, "metres")
    if pixels is not None:
        return CellChoice(pixels, "pixels")
    xmin, ymin, xmax, ymax = facts.extent
    native = gsd_m(facts.crs, xmax - xmin, ymax - ymin, facts.width, facts.height, (ymin + ymax) / 2)
    return CellChoice(float(core_grid.suggest_cell_pixels(contract.input_size,
                                                          native if math.isfinite(native) else None,
                                                          contract.gsd_range_m)), "pixels")


def cell_size(facts: RasterFacts, choice: CellChoice) -> core_grid.CellSize:
    """``choice`` in the raster's CRS units; :class:`PlanError` when it cannot be converted or is too small."""
    px, py = facts.pixel_size
    try:
        if choice.unit == "pixels":
            size = core_grid.cell_size_from_pixels(choice.value, px, py)
        else:
            radius = facts.crs.ground_radius_m
            if facts.crs.degrees and not radius:
                raise PlanError(f"--cell-size-m: metres cannot be converted to degrees for '{facts.name}': its CRS "
                                "names no radius or body. Give --cell-px, or the body (--body).")
            size = core_grid.cell_size_from_metres(choice.value, facts.crs.degrees, radius, facts.crs.unit_to_m)
    except ValueError as exc:
        raise PlanError(f"cell size: {exc}") from None
    if min(size.width / px, size.height / py) < MIN_EXTENT_PIXELS - 1e-6:
        raise PlanError(f"cells of {size.width / px:.3g} x {size.height / py:.3g} source pixels of '{facts.name}' "
                        f"are too small; each cell needs at least {MIN_EXTENT_PIXELS} x {MIN_EXTENT_PIXELS} pixels "
                        "to show terrain. Give a larger --cell-size-m or --cell-px.")
    return size


def make_grid(facts: RasterFacts, size: core_grid.CellSize, overlap: float) -> core_grid.Grid:
    """``classify_grid``'s grid over the whole raster."""
    if not (0.0 <= overlap <= 0.9):
        raise PlanError(f"--overlap must be between 0 and 0.9, got {overlap}")
    return core_grid.Grid(core_grid.Extent(*facts.extent), size, overlap, edge="extend")


def _span(target_cells: int, stride_px: float, block_px: int, count: int, cap_px: float, total_px: int) -> int:
    """Cells along one axis of a partition: about ``target_cells`` cells, whole tiles where cells allow; all of
    them when one tile spans the raster (strips), so no sliver partition is left at the edge."""
    tiles = max(1, round(target_cells * stride_px / block_px))
    if tiles * block_px >= total_px and count * stride_px <= cap_px:
        return count
    cells = max(1, int(tiles * block_px // stride_px))
    cells = min(cells, max(1, int(cap_px // stride_px)))
    return min(count, cells)


def partitions(index: int, facts: RasterFacts, grid: core_grid.Grid,
               target_cells: int = DEFAULT_PARTITION_CELLS) -> list[Partition]:
    """The partitions of raster ``index``'s grid, in row-major order; together they hold every cell once."""
    px, py = facts.pixel_size
    stride_y = grid.size.height * (1.0 - grid.overlap) / py
    cap = math.sqrt(MAX_PARTITION_PIXELS)
    if grid.size.geographic_metres:  # ragged rows: bands of whole rows
        widest = max(grid.cols_in_row(r) for r in (0, grid.rows // 2, grid.rows - 1))
        rows = max(1, min(grid.rows, target_cells // max(1, widest),
                          int(MAX_PARTITION_PIXELS // max(1.0, facts.width * stride_y))))
        return [Partition(index, r, min(grid.rows, r + rows), 0, 2**31 - 1) for r in range(0, grid.rows, rows)]
    cols_total = grid.cols_in_row(0)
    stride_x = grid.size.width * (1.0 - grid.overlap) / px
    side = max(1, int(math.sqrt(target_cells)))
    block_rows, block_cols = facts.block
    ncols = _span(side, stride_x, block_cols, cols_total, cap, facts.width)
    nrows = _span(max(1, target_cells // ncols), stride_y, block_rows, grid.rows, cap, facts.height)
    return [Partition(index, r, min(grid.rows, r + nrows), c, min(cols_total, c + ncols))
            for r in range(0, grid.rows, nrows) for c in range(0, cols_total, ncols)]


def partition_cells(grid: core_grid.Grid, part: Partition) -> Iterator[core_grid.Cell]:
    """The cells of ``part``, row-major (the order ``classify_grid`` visits them in)."""
    for row in range(part.row0, part.row1):
        yield from islice(grid.row_cells(row), part.col0, part.col1)
