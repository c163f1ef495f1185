"""Cells over an extent: the rectangles a grid run classifies, in the layer's own CRS.

Pure geometry (no Qt, no QGIS) so the map tool, the Processing algorithm, benchmarks and tests share one
definition of "the grid". QGIS-specific work (reading the extent, testing cells against polygons) stays in
QGIS code and reaches in through the ``predicate`` hook.

Conventions, chosen so that grid cells line up with raster rows and columns:

* rows start at the top of the extent (``ymax``) and go down; row 0 is the northern-most row, like a raster;
* columns start at the left (``xmin``) and go right;
* ``stride = size * (1 - overlap)``; with ``overlap == 0`` neighbouring cells share edges exactly;
* a row or column is added while the previous cell stops short of the far edge, so the cells always cover the
  whole extent (no gaps). The last cell of a row/column either stops at the extent edge (``edge="clip"``: the
  union of the cells is exactly the extent) or keeps its full size and overhangs it (``edge="extend"``: every
  cell has the requested ground size; the overhang reads as nodata, so a mostly-outside cell is skipped by the
  classifier's valid-fraction rule instead of being a thin sliver stretched to the model's input size).

Geographic CRSs (degrees): a cell of ``m`` metres is ``m / (R * pi / 180)`` degrees tall everywhere, and
``m / (R * pi / 180 * cos(lat))`` degrees wide, where R is the CRS's own radius (never Earth's). We choose
**per-row widths, at each row's centre latitude**: every cell then spans about ``m`` metres on the ground at
its own latitude, which is what the model was trained on (fixed ground sampling). A single width taken at the
extent's centre latitude would make cells far from it wider or narrower on the ground (5 % across one Apollo
frame, unbounded towards a pole). The price: column boundaries do not line up between rows and rows can have
different column counts, so ``col`` indexes a cell within its row only. Near a pole the width is capped at the
extent's width (one cell per row).

Counting never generates cells: rows of equal column count are counted together (about the square root of
the cell count in steps), and :meth:`Grid.count_or_bound` bounds a huge grid in closed form, so callers can
refuse, or ask the user before, a run of more than :data:`LARGE_GRID_CELLS` cells at once; generation is a
lazy iterator, so memory does not grow with the cell count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

#: Above this many cells, interactive callers should ask the user before starting a run.
LARGE_GRID_CELLS = 1_000_000
#: Edge policies for the last row/column; see the module docstring.
EDGE_POLICIES = ("clip", "extend")
#: Fraction of a stride below which a leftover strip gets no row/column of its own: extents read from rasters
#: carry floating-point noise (65536.001 - 65536 is 0.00100000000383), which must not add a sliver row when
#: the extent is meant as an exact multiple. In "clip" mode the last cell absorbs the leftover (at most a
#: millionth of a cell); in "extend" mode the grid may stop that much short of the edge.
_REL_EPS = 1e-6
#: Smallest cosine used for widths (about 0.00006 degrees from a pole).
_MIN_COS = 1e-6
#: Rows an exact count of a metre grid on degrees may look at before :meth:`Grid.count_or_bound` settles for
#: its closed-form bounds (each look costs microseconds: this keeps a refusal well under a second).
EXACT_COUNT_STEPS = 100_000

#: A hook for the QGIS side: return False to skip a cell (outside the user's polygons, for instance).
CellPredicate = Callable[["Cell"], bool]


class _Rectangle:
    """Width, height and area of anything with xmin/ymin/xmax/ymax (an extent, a cell)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    @property
    def area(self) -> float:
        return self.width * self.height


@dataclass(frozen=True)
class Extent(_Rectangle):
    """An axis-aligned rectangle in layer CRS units (x = easting or longitude, y = northing or latitude)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    def __post_init__(self) -> None:
        values = (self.xmin, self.ymin, self.xmax, self.ymax)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"extent has non-finite coordinates: {values}")
        if not (self.xmax > self.xmin and self.ymax > self.ymin):
            raise ValueError(f"extent is empty or inverted: {values}")


@dataclass(frozen=True)
class Cell(_Rectangle):
    """One grid cell: its row (0 = top) and column (0 = left, within its row) and its rectangle."""

    row: int
    col: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.xmin + self.xmax) / 2.0, (self.ymin + self.ymax) / 2.0


@dataclass(frozen=True)
class CellSize:
    """A cell's size in CRS units: a fixed height and a width that may depend on latitude (geographic CRSs).

    ``width`` is the width at the equator (or everywhere when ``geographic_metres`` is False); use
    :meth:`width_at` rather than reading it directly.
    """

    width: float
    height: float
    #: True when the size was given in metres on a geographic CRS: the width then grows as 1 / cos(latitude).
    geographic_metres: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.width) and math.isfinite(self.height) and self.width > 0 and self.height > 0):
            raise ValueError(f"cell size must be positive and finite, got {self.width} x {self.height}")

    def width_at(self, lat_deg: float) -> float:
        """Cell width in CRS units for a row centred at ``lat_deg`` (ignored unless geographic metres)."""
        if not self.geographic_metres:
            return self.width
        coslat = math.cos(math.radians(min(max(lat_deg, -90.0), 90.0)))
        return self.width / max(coslat, _MIN_COS)


def cell_size_from_pixels(pixels: float, pixel_size_x: float, pixel_size_y: float) -> CellSize:
    """A cell ``pixels`` source pixels on a side: the size the raster is read at without resampling."""
    if not (pixels > 0):
        raise ValueError(f"cell size in pixels must be positive, got {pixels}")
    return CellSize(pixels * abs(pixel_size_x), pixels * abs(pixel_size_y))


def cell_size_from_metres(metres: float, geographic: bool, radius_m: float | None = None,
                          unit_to_m: float = 1.0) -> CellSize:
    """A cell ``metres`` on a side on the body's surface, in the CRS's units.

    Projected CRSs: ``metres / unit_to_m`` (the projection's scale distortion within one extent is ignored, as
    in ``bodies.ground_pixel_size_m``). Geographic CRSs need ``radius_m``, the CRS's own sphere/ellipsoid
    radius (``bodies.semi_major_axis_m``), so that a lunar degree is ~30.3 km and not Earth's ~111 km.
    """
    if not (metres > 0 and math.isfinite(metres)):
        raise ValueError(f"cell size in metres must be positive, got {metres}")
    if geographic:
        if not radius_m or radius_m <= 0:
            raise ValueError("a geographic CRS needs the body's radius to convert metres to degrees")
        degrees = metres / (radius_m * math.pi / 180.0)
        return CellSize(degrees, degrees, geographic_metres=True)
    if not (unit_to_m > 0):
        raise ValueError(f"unit_to_m must be positive, got {unit_to_m}")
    return CellSize(metres / unit_to_m, metres / unit_to_m)


def suggest_cell_pixels(input_size: int, native_gsd_m: float | None = None,
                        gsd_range_m: tuple[float, float] | None = None) -> int:
    """Default cell size in source pixels for a model with ``input_size`` inputs.

    One source pixel per model pixel (``input_size``) reads each cell at native resolution, so nothing is
    invented by upsampling and little detail is thrown away. When the raster is finer than the model's
    trained ground-sampling range, the cell grows so that, once resized to ``input_size``, one model pixel
    covers at least the range's minimum (a 0.25 m HiRISE image for a model trained at 1 m: 4x bigger cells).
    A raster coarser than the range cannot be helped by the grid (upsampling adds no detail): native size.
    """
    if input_size < 1:
        raise ValueError(f"input size must be at least 1, got {input_size}")
    if native_gsd_m and gsd_range_m and native_gsd_m > 0:
        lo = gsd_range_m[0]
        if native_gsd_m < lo:
            return int(math.ceil(input_size * lo / native_gsd_m - 1e-9))
    return int(input_size)


def _count_along(length: float, size: float, stride: float) -> int:
    """Cells needed to cover ``length`` with cells of ``size`` every ``stride`` (no gap at the far end)."""
    return 1 + max(0, int(math.ceil((length - size) / stride - _REL_EPS)))


class Grid:
    """Cells over ``extent`` of ``size`` with ``overlap``; count first (cheap), then iterate lazily."""

    def __init__(self, extent: Extent, size: CellSize, overlap: float = 0.0, edge: str = "clip") -> None:
        if not (0.0 <= overlap < 1.0):
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if edge not in EDGE_POLICIES:
            raise ValueError(f"edge must be one of {EDGE_POLICIES}, got {edge!r}")
        self.extent, self.size, self.overlap, self.edge = extent, size, overlap, edge
        self._stride_y = size.height * (1.0 - overlap)
        self.rows = _count_along(extent.height, size.height, self._stride_y)

    # -- rows ----------------------------------------------------------------------------------------------
    def row_bounds(self, row: int) -> tuple[float, float]:
        """(ymin, ymax) of ``row``; the top edge of row 0 is the extent's top."""
        if not (0 <= row < self.rows):
            raise IndexError(row)
        top = self.extent.ymax - row * self._stride_y
        bottom = top - self.size.height
        if self.edge == "clip" and (row == self.rows - 1 or bottom < self.extent.ymin):
            bottom = self.extent.ymin
        return bottom, top

    def row_width(self, row: int) -> float:
        """Cell width in this row, taken at the row's centre latitude; capped at the extent width."""
        ymin, ymax = self.row_bounds(row)
        return min(self.size.width_at((ymin + ymax) / 2.0), self.extent.width) \
            if self.size.geographic_metres else self.size.width

    def cols_in_row(self, row: int) -> int:
        width = self.row_width(row)
        return _count_along(self.extent.width, width, width * (1.0 - self.overlap))

    @property
    def count(self) -> int:
        """Total number of cells, without generating any cell (see :meth:`_count_by_runs` for the cost)."""
        if not self.size.geographic_metres:
            return self.rows * self.cols_in_row(0)
        return self._count_by_runs()

    def count_or_bound(self, limit: int) -> tuple[int, bool]:
        """``(count, True)``; or ``(upper bound, False)`` for a grid surely larger than ``limit`` whose exact count
        would take long (more than :data:`EXACT_COUNT_STEPS` rows to look at): a refusal is then instant."""
        if self.size.geographic_metres and min(self.rows, 2 * self._widest_row()) > EXACT_COUNT_STEPS:
            low, high = self.count_bounds()
            if low > limit:
                return high, False
        return self.count, True

    def count_bounds(self) -> tuple[int, int]:
        """Lower and upper bounds of :attr:`count` in closed form (O(1)); exact for cells in fixed units."""
        if not self.size.geographic_metres:
            return self.count, self.count
        return _geographic_count_bounds(self)

    def _first_southern_row(self) -> int:
        """The first row whose centre lies south of the equator, or the last row; row centres go south
        monotonically (but for the last row's, which its clipped edge may move), so a bisection finds it."""
        lo, hi = 0, self.rows - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if sum(self.row_bounds(mid)) / 2.0 < 0.0:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _widest_row(self) -> int:
        """Most columns in a row: in the row nearest the equator."""
        south = self._first_southern_row()
        return max(self.cols_in_row(r) for r in (south - 1, south) if 0 <= r < self.rows)

    def _count_by_runs(self) -> int:
        """Sum of the column counts of all rows, a run of equal counts at a time.

        A row's column count depends only on its centre latitude and shrinks as the latitude moves away from
        the equator; row centres go south monotonically, so the counts rise over the northern rows and fall over
        the southern ones. Within each of those two stretches, the rows with the count of the stretch's first
        row form a run, found by galloping: a run of n rows costs about 2 log2(n) evaluations, and the whole
        count costs about the number of distinct counts, not of rows: at most about the square root of twice the
        cell count (the cosine is concave, so the rows average at least about half the widest row's count).
        The last row is counted on its own: its clipped bottom edge moves its centre ("clip" edge policy).
        """
        last, south = self.rows - 1, self._first_southern_row()
        return (_sum_monotone(self.cols_in_row, 0, south) + _sum_monotone(self.cols_in_row, south, last)
                + self.cols_in_row(last))

    # -- cells ---------------------------------------------------------------------------------------------
    def row_cells(self, row: int) -> Iterator[Cell]:
        ymin, ymax = self.row_bounds(row)
        width = self.row_width(row)
        stride = width * (1.0 - self.overlap)
        ncols = _count_along(self.extent.width, width, stride)
        x0, x1 = self.extent.xmin, self.extent.xmax
        for col in range(ncols):
            left = x0 + col * stride
            right = left + width
            if self.edge == "clip" and (col == ncols - 1 or right > x1):
                right = x1
            yield Cell(row, col, left, ymin, right, ymax)

    def __iter__(self) -> Iterator[Cell]:
        for row in range(self.rows):
            yield from self.row_cells(row)

    def cells(self, predicate: CellPredicate | None = None) -> Iterator[Cell]:
        """Cells in row-major order, keeping only those ``predicate`` accepts (all when None)."""
        if predicate is None:
            return iter(self)
        return (c for c in self if predicate(c))

    def __len__(self) -> int:
        return self.count


def _sum_monotone(value: Callable[[int], int], start: int, stop: int) -> int:
    """Sum of ``value(i)`` for ``start <= i < stop``, where ``value`` is monotone over that range: each run of
    equal values is measured by galloping from its first index (exponential, then binary search)."""
    total, i = 0, start
    while i < stop:
        v, step, last = value(i), 1, i  # last: an index known to have the value v
        while last + step < stop and value(last + step) == v:
            last, step = last + step, step * 2
        hi = min(last + step, stop)  # first index known (or assumed, at stop) to differ
        while hi - last > 1:
            mid = (last + hi) // 2
            if value(mid) == v:
                last = mid
            else:
                hi = mid
        total += v * (last - i + 1)
        i = last + 1
    return total


def _cos_sum(first_deg: float, step_deg: float, n: int) -> float:
    """``sum(cos(first - k * step) for k in range(n))`` in degrees, in closed form."""
    if n <= 0:
        return 0.0
    half = math.radians(step_deg) / 2.0
    middle = math.radians(first_deg - (n - 1) * step_deg / 2.0)
    return math.sin(n * half) / math.sin(half) * math.cos(middle)


def _geographic_count_bounds(grid: Grid) -> tuple[int, int]:
    """Bounds of a metre grid's count on degrees, from the sum of the row centres' cosines.

    A row centred at latitude phi, with cells ``w0 / cos(phi)`` wide (w0 at the equator) over an extent W wide
    and strides ``s`` of a cell, has between ``1 + (W cos(phi) / w0 - 1) / s - eps`` and
    ``2 + W (cos(phi) + _MIN_COS) / (w0 s)`` columns (see :func:`_count_along`; capped widths give one
    column, within both). Row centres are evenly spaced, so the sum of their cosines has a closed form. The
    last row's centre moves when its bottom edge is clipped: it is allowed anything from one column to the
    widest possible row. Margins cover rounding.
    """
    extent, size = grid.extent, grid.size
    w0, width, s = size.width, extent.width, 1.0 - grid.overlap
    stride, first = grid._stride_y, extent.ymax - size.height / 2.0
    rows = grid.rows - 1  # rows with evenly spaced centres; the last one is bounded separately
    # rows whose centre lies within +-90 degrees (the others are clamped to a pole: cosine 0)
    north = max(0, min(rows, math.ceil((first - 90.0) / stride)))
    south = max(north, min(rows, math.floor((first + 90.0) / stride) + 1))
    cosines = max(0.0, _cos_sum(first - north * stride, stride, south - north))
    low = rows * (1.0 - (1.0 / s) - _REL_EPS) + width * cosines / (w0 * s) + 1
    high = 2.0 * rows + width * (cosines + rows * _MIN_COS) / (w0 * s) + 2.0 + width / (w0 * s)
    return max(grid.rows, math.floor(low * (1.0 - 1e-9)) - 2), math.ceil(high * (1.0 + 1e-9)) + 2


def rect_area_m2(xmin: float, ymin: float, xmax: float, ymax: float, geographic: bool,
                 radius_m: float | None = None, unit_to_m: float = 1.0) -> float:
    """Surface area of a CRS rectangle in square metres on the body.

    Geographic: the exact area of a lat/lon quadrangle on a sphere of ``radius_m``,
    ``R^2 * dlon * (sin(lat2) - sin(lat1))``. Projected: map area times ``unit_to_m^2`` (the projection's
    area distortion is not corrected, as for cell sizes).
    """
    if geographic:
        if not radius_m:
            raise ValueError("a geographic area needs the body's radius")
        lat1, lat2 = (math.radians(min(max(v, -90.0), 90.0)) for v in (ymin, ymax))
        return radius_m ** 2 * math.radians(xmax - xmin) * (math.sin(lat2) - math.sin(lat1))
    return (xmax - xmin) * (ymax - ymin) * unit_to_m ** 2
