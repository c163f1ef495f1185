"""The one classification engine of the QGIS side: cells of a raster -> pixels -> model input -> decisions.

Every entry point goes through it: ``classify_grid`` streams a whole grid (:func:`stream`), and a rectangle
(``qgis_io.classify.classify_extent``, behind ``classify_extent``, the map tool and the panel) is a grid of one
cell read and decided by the same stage functions (:func:`read_cell`, ``core.pipeline``). Writing is the
caller's: features go to the one writer (``qgis_io.writer``, via ``processing.outputs``).

How a grid spends the machine: three stages overlap. A reader thread walks the grid, reads cells and
preprocesses them in chunks; model threads run onnxruntime (which releases the GIL) on the chunks before; the
caller's thread writes the oldest chunk. A chunk holds whole batches of *valid* cells (nodata cells are skipped
before preprocessing, so batches stay full across a collar) and ends early after :data:`MAX_CHUNK_VISITS` cells,
so progress and cancel stay live over nodata. GDAL's block cache is held to the blocks of two rows of cells for
the run (``raster_read.bounded_block_cache``), so memory does not grow with the area read.
"""
from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat, takewhile
from typing import Iterator

import numpy as np
from qgis.core import QgsGeometry, QgsRectangle

from ..core import grid as core_grid
from ..core.contract import ModelContract
from ..core.pipeline import ImageResult, PreparedBatch, decide_prepared, prepare_blocks, run_ahead
from ..core.session import ParallelLayout, TerrainModel
from .raster_read import ExtentError, RasterReadError, RasterSource, bounded_block_cache, read_extent

#: Fewest cells read, preprocessed and written together, whatever the model's batch size: the threads hand
#: work over per chunk, and below ~32 cells that hand-over and the per-call overhead of a read or a write showed
#: in a batch-1 run's speed.
MIN_CHUNK_CELLS = 32
#: Most grid cells one chunk looks at (see ``ChunkReader``): progress and cancel stay live over nodata.
MAX_CHUNK_VISITS = 512
#: Chunks are queued ahead of the model threads only while the queue holds at most this many cells: with a
#: large BATCH_SIZE (up to 1024 cells, ~110 MB of tensors at 96 px) only the chunks being worked on are held.
MAX_QUEUED_CELLS = 512


@dataclass(frozen=True)
class GridRun:
    """What a run streams: the cells (and the polygon predicate), where their pixels come from, the model and
    how it runs, and the decision's body and threshold."""

    grid: core_grid.Grid
    keep: core_grid.CellPredicate | None
    source: RasterSource
    model: TerrainModel
    layout: ParallelLayout
    body: str | None
    threshold: float | None
    batch_size: int
    row_bytes: int  # decoded source blocks one row of cells touches


@dataclass(frozen=True)
class ReadChunk:
    """A chunk of cells read and preprocessed by the reader thread, waiting for the model."""

    reads: list  # (cell, read_cell result) of the cells that had enough valid pixels to read
    batch: PreparedBatch
    visited: int  # grid cells the chunk went through
    outside: int  # of which outside the polygons
    skipped: int  # of which passed over as mostly nodata before preprocessing


class ChunkReader:
    """Reads the grid's cells into chunks of ``size`` cells that have enough valid pixels to classify.

    Called on the reader thread, one call per chunk, in order; each call goes on through the cell iterator
    where the last one stopped. Counting valid cells rather than grid cells keeps every onnxruntime batch full
    across a nodata collar (the Apollo frames' collar is a third of the image), and a chunk also ends after
    ``max_visits`` cells so that a long stretch of nodata (or of cells outside the polygons) still reports
    progress and can be cancelled. ``keep``: the polygon predicate, or None.
    """

    def __init__(self, cells: Iterator[core_grid.Cell], keep: core_grid.CellPredicate | None,
                 source: RasterSource, contract: ModelContract, size: int, max_visits: int) -> None:
        self._cells, self._keep = cells, keep
        self._source, self._contract = source, contract
        self._size, self._max_visits = size, max_visits

    def __call__(self, _unused=None) -> ReadChunk | None:
        """The next chunk, or None when the grid is done."""
        contract = self._contract
        reads, visited, outside, skipped = [], 0, 0, 0
        for cell in self._cells:
            visited += 1
            if self._keep is not None and not self._keep(cell):
                outside += 1
            else:
                try:
                    read = read_cell(self._source, cell, contract.input_size, contract.min_valid_fraction)
                except RasterReadError as exc:
                    raise RasterReadError(f"'{self._source.layer_name}' could not be read at the cell in row "
                                          f"{cell.row}, column {cell.col} ({exc})") from None
                if read is None or float((~read[1]).mean()) < contract.min_valid_fraction:
                    skipped += 1
                else:
                    reads.append((cell, read))
            if len(reads) == self._size or visited >= self._max_visits:
                break
        if not visited:
            return None
        batch = prepare_blocks(contract, [r[1][0] for r in reads], [r[1][1] for r in reads])
        return ReadChunk(reads, batch, visited, outside, skipped)


def read_rectangle(source: RasterSource, rect: QgsRectangle, contract: ModelContract) -> ReadChunk:
    """A rectangle on the raster as a grid of one cell, read and preprocessed as the grid reads its cells; a
    mostly-nodata rectangle is kept (its result carries the reason) for the caller to report."""
    cell = core_grid.Cell(0, 0, rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
    read = read_cell(source, cell, contract.input_size, 0.0)
    batch = prepare_blocks(contract, [read[0]], [read[1]])
    return ReadChunk([(cell, read)], batch, 1, 0, 0)


def decide_chunk(prepared: ReadChunk, model: TerrainModel, body: str | None, threshold: float | None,
                  batch_size: int) -> tuple[ReadChunk, list[ImageResult]]:
    """Run the model on a prepared chunk, ``batch_size`` cells per call (on a model thread); the chunk travels on
    with its decisions."""
    results = decide_prepared(model, prepared.batch, body, threshold, batch_size) if prepared.reads else []
    return prepared, results


def stream(run: GridRun) -> Iterator[tuple[ReadChunk, list[ImageResult]]]:
    """Each chunk of ``run``'s cells with its decisions, in grid order (see the module docstring).

    Use it as ``with contextlib.closing(stream(run)) as chunks:``: leaving the loop early (cancel, an error
    while writing) then submits nothing more, and the pools wait only for the calls in flight. A read that
    fails raises :class:`~.raster_read.RasterReadError` naming the cell.
    """
    contract, batch_size, workers = run.model.contract, run.batch_size, run.layout.workers
    chunk_cells = batch_size * math.ceil(MIN_CHUNK_CELLS / batch_size)  # whole batches of valid cells
    read_chunk = ChunkReader(iter(run.grid), run.keep, run.source, contract, chunk_cells, MAX_CHUNK_VISITS)
    with bounded_block_cache(2 * run.row_bytes), \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="planet-terrain-reader") as reader, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="planet-terrain-model") as runner:
        roomy = chunk_cells * workers <= MAX_QUEUED_CELLS  # else no chunk queued beyond the running ones
        prepared = takewhile(lambda chunk: chunk is not None,
                             run_ahead(repeat(None), read_chunk, reader, 2 if roomy else 1))
        decided = run_ahead(prepared, lambda chunk: decide_chunk(chunk, run.model, run.body, run.threshold,
                                                                 batch_size),
                            runner, depth=(2 if roomy else 1) * workers)
        with contextlib.closing(decided):
            yield from decided


# -- geometry helpers ----------------------------------------------------------------------------------------
def cell_rect(cell: core_grid.Cell) -> QgsRectangle:
    return QgsRectangle(cell.xmin, cell.ymin, cell.xmax, cell.ymax)


def snap_to_pixels(area: QgsRectangle, raster: QgsRectangle, px: float, py: float) -> QgsRectangle:
    """``area`` grown outwards to whole pixels of the raster grid, then clipped to the raster."""
    eps = 1e-9
    x0 = raster.xMinimum() + math.floor((area.xMinimum() - raster.xMinimum()) / px + eps) * px
    x1 = raster.xMinimum() + math.ceil((area.xMaximum() - raster.xMinimum()) / px - eps) * px
    y1 = raster.yMaximum() - math.floor((raster.yMaximum() - area.yMaximum()) / py + eps) * py
    y0 = raster.yMaximum() - math.ceil((raster.yMaximum() - area.yMinimum()) / py - eps) * py
    return QgsRectangle(x0, y0, x1, y1).intersect(raster)


#: Share of a cell that must lie inside the polygons for the cell to count as overlapping them: more than
#: floating-point noise, so a cell that merely shares an edge with a polygon (computed from other numbers)
#: is left out.
MIN_OVERLAP_SHARE = 1e-6


def polygon_predicate(polygons: list[QgsGeometry]):
    """A ``core.grid`` cell predicate: the cell overlaps the interior of one of ``polygons``."""
    union = QgsGeometry.unaryUnion(polygons)
    engine = QgsGeometry.createGeometryEngine(union.constGet())
    engine.prepareGeometry()

    def keep(cell: core_grid.Cell) -> bool:
        rect = QgsGeometry.fromRect(cell_rect(cell))
        if not engine.intersects(rect.constGet()):  # prepared: fast rejection of most cells
            return False
        if engine.contains(rect.constGet()):
            return True
        inside = engine.intersection(rect.constGet())
        return inside is not None and inside.area() > MIN_OVERLAP_SHARE * cell.area

    return keep


def read_cell(source: RasterSource, cell: core_grid.Cell, input_size: int, min_valid_fraction: float):
    """Pixels of a full cell: the part on the raster, padded as nodata where the cell overhangs the raster.

    Returns ``(data, nodata_mask, read_extent, width, height)`` or None when too little of the cell lies on
    the raster to reach ``min_valid_fraction`` (not worth reading).
    """
    full = cell_rect(cell)
    on_raster = full.intersect(source.extent)
    if on_raster.isEmpty() or on_raster.area() < min_valid_fraction * full.area() * (1 - 1e-9):
        return None
    try:
        block = read_extent(source, full, input_size)
    except RasterReadError:
        raise
    except ExtentError:
        return None
    data, mask, got = block.data, block.nodata_mask, block.extent
    if got == full:
        return data, mask, got, block.width, block.height
    sx, sy = got.width() / block.width, got.height() / block.height
    width = max(block.width, int(round(full.width() / sx)))
    height = max(block.height, int(round(full.height() / sy)))
    col0 = min(width - block.width, max(0, int(round((got.xMinimum() - full.xMinimum()) / sx))))
    row0 = min(height - block.height, max(0, int(round((full.yMaximum() - got.yMaximum()) / sy))))
    padded = np.zeros((data.shape[0], height, width), data.dtype)
    padded_mask = np.ones((height, width), bool)
    padded[:, row0:row0 + block.height, col0:col0 + block.width] = data
    padded_mask[row0:row0 + block.height, col0:col0 + block.width] = mask
    return padded, padded_mask, full, width, height
