"""Processing algorithm ``planet_terrain:classify_grid``: a raster area cut into cells, one labelled polygon each.

The flow is the house's: cells (``core.grid``) -> pixels per cell (``qgis_io.raster_read``) -> batched
classification (``core.pipeline.prepare_blocks`` on a reader thread, ``decide_prepared`` on a model thread) ->
features streamed into the sink on the algorithm's thread, the three overlapping (``core.pipeline.run_ahead``).
Nothing is held for the whole grid: cells are generated lazily, read and classified ``BATCH_SIZE`` at a time,
written, dropped; GDAL's block cache is bounded for the run to the source
blocks of a row of cells (``raster_read.bounded_block_cache``), so memory does not grow with the area read.

Choices worth knowing:

* The area is snapped outwards to the raster's pixel grid and clipped to the raster, so cells in pixel units
  cover whole source pixels and are read without resampling.
* Cells keep their full size at the far edges (``edge="extend"``); the part beyond the raster is padded as
  nodata, so an edge cell is classified at the same ground scale as the others, or skipped as mostly nodata
  by the model's ``min_valid_fraction`` -- never stretched from a thin sliver.
* Polygons: a cell is kept when more than a millionth of it lies inside the polygons (sharing an edge is not
  enough); the whole cell is classified. Skipped cells are counted by reason (outside the polygons / mostly nodata).
* With only INPUT and OUTPUT, the whole layer is classified with the cell size of
  ``core.grid.suggest_cell_pixels`` (the model's input size in source pixels, bigger when the raster is finer
  than the model's trained ground-sampling range).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from itertools import repeat, takewhile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsCoordinateTransformContext,
                       QgsCsException, QgsFeature, QgsFeatureRequest, QgsFeatureSink, QgsField, QgsFields,
                       QgsGeometry, QgsProcessing, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterEnum, QgsProcessingParameterFeatureSink,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterNumber, QgsRectangle, QgsWkbTypes)
from qgis.PyQt.QtCore import QVariant

from ..core import grid as core_grid
from ..core.contract import ModelContract
from ..core.pipeline import ImageResult, PreparedBatch, decide_prepared, prepare_blocks, run_ahead
from ..core.session import TerrainModel
from ..qgis_io import fields as result_fields
from ..qgis_io import layer_info
from ..qgis_io.classify import MIN_EXTENT_PIXELS, BodyError, check_body
from ..qgis_io.layer_info import CrsInfo, crs_info
from ..qgis_io.raster_read import (ExtentError, RasterSource, bounded_block_cache, raster_source,
                                 read_extent, row_block_bytes)
from ..qgis_io.transform import CrsMismatchError, rect_to_crs, same_surface
from .classification_base import ClassificationAlgorithm
from .guards import FileOutput, optional_threshold, run_grid_model

#: Fields a grid run adds after ``fields.result_fields``: the cell's row (0 = top) and column in its row.
ROW_FIELD, COL_FIELD = result_fields.result_schema.ROW_FIELD, result_fields.result_schema.COL_FIELD
GRID_FIELDS: tuple[tuple[str, QVariant.Type], ...] = result_fields.GRID_FIELDS
CELL_UNITS = ("metres", "pixels")
DEFAULT_BATCH = 16
#: Fewest cells read, preprocessed and written together, whatever the model's batch size: the threads hand
#: work over per chunk, and below ~32 cells that hand-over and the per-call overhead of a read or a write showed
#: in a batch-1 run's speed.
MIN_CHUNK_CELLS = 32
#: Most grid cells one chunk looks at (see ``_ChunkReader``): progress and cancel stay live over nodata.
MAX_CHUNK_VISITS = 512
#: Chunks are queued ahead of the model threads only while the queue holds at most this many cells: with a
#: large BATCH_SIZE (up to 1024 cells, ~110 MB of tensors at 96 px) only the chunks being worked on are held.
MAX_QUEUED_CELLS = 512


def too_many_cells_message(total: int, max_cells: int) -> str:
    """The refusal of an oversized grid; :func:`cells_in_refusal` reads the count back (the panel asks first)."""
    return f"The grid has {total:,} cells, more than MAX_CELLS ({max_cells:,})."


def cells_in_refusal(message: str) -> int | None:
    """The cell count of a :func:`too_many_cells_message`, or None for any other message."""
    import re

    match = re.search(r"The grid has ([\d,]+) cells, more than MAX_CELLS", message)
    return int(match.group(1).replace(",", "")) if match else None


def grid_result_fields(contract: ModelContract) -> QgsFields:
    """``fields.result_fields`` plus :data:`GRID_FIELDS`."""
    fields = result_fields.result_fields(contract)
    for name, kind in GRID_FIELDS:
        fields.append(QgsField(name, kind))
    return fields


class ClassifyGridAlgorithm(ClassificationAlgorithm):
    POLYGONS = "POLYGONS"
    CELL_SIZE, CELL_UNIT, OVERLAP = "CELL_SIZE", "CELL_UNIT", "OVERLAP"
    BATCH_SIZE, MAX_CELLS = "BATCH_SIZE", "MAX_CELLS"
    ON_CANCEL = "ON_CANCEL"
    #: What a cancelled run leaves: the cells classified so far (a valid layer), or nothing at all.
    ON_CANCEL_CHOICES = ("keep the cells classified so far", "write nothing")
    CELLS_TOTAL, CELLS_CLASSIFIED = "CELLS_TOTAL", "CELLS_CLASSIFIED"
    CELLS_OUTSIDE, CELLS_NODATA = "CELLS_OUTSIDE", "CELLS_NODATA"
    CLASS_COUNTS, CLASS_AREAS_M2 = "CLASS_COUNTS", "CLASS_AREAS_M2"
    CELL_SIZE_USED, CELL_UNIT_USED = "CELL_SIZE_USED", "CELL_UNIT_USED"

    def name(self) -> str:
        return "classify_grid"

    def displayName(self) -> str:
        return "Classify raster in a grid"

    def shortHelpString(self) -> str:
        return ("Cuts a Mars, Moon or Vesta raster (or an extent of it, or the parts under polygons) into square "
                "cells and classifies the terrain of every cell: one polygon per cell with the landform label, "
                "its calibrated confidence ('unknown' when unsure), every class probability, and the cell's "
                "row and column.\n"
                "CELL_SIZE in metres on the body's surface (degrees are converted with the body's own radius) or "
                "in source pixels; empty: the model's input size in pixels (read at native resolution). "
                "OVERLAP 0-0.9: fraction shared by neighbouring cells. Cells outside the polygons or mostly "
                "nodata are skipped and counted. Counts and area per class are reported in the log and as "
                "outputs. MAX_CELLS guards against a run far bigger than intended.")

    def createInstance(self) -> "ClassifyGridAlgorithm":
        return ClassifyGridAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.add_raster_parameters()
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.POLYGONS, "Only cells overlapping these polygons", [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.CELL_SIZE, "Cell size (default: model input size "
                                                       "in pixels)", QgsProcessingParameterNumber.Double,
                                                       optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum(self.CELL_UNIT, "Cell size unit", options=list(CELL_UNITS),
                                                     defaultValue=1))
        self.addParameter(QgsProcessingParameterNumber(self.OVERLAP, "Overlap between cells (0-0.9)",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.0,
                                                       minValue=0.0, maxValue=0.9))
        self.addParameter(QgsProcessingParameterNumber(self.BATCH_SIZE, "Cells per model batch",
                                                       QgsProcessingParameterNumber.Integer,
                                                       defaultValue=DEFAULT_BATCH, minValue=1, maxValue=1024))
        self.addParameter(QgsProcessingParameterNumber(self.MAX_CELLS, "Refuse grids with more cells than",
                                                       QgsProcessingParameterNumber.Integer,
                                                       defaultValue=core_grid.LARGE_GRID_CELLS, minValue=1))
        self.addParameter(QgsProcessingParameterEnum(self.ON_CANCEL, "When cancelled",
                                                     options=list(self.ON_CANCEL_CHOICES), defaultValue=0))
        self.add_model_parameters()
        self.addParameter(QgsProcessingParameterFeatureSink(self.OUTPUT, "Terrain classes (grid)",
                                                            QgsProcessing.TypeVectorPolygon))
        for key, title in ((self.CELLS_TOTAL, "Cells in the grid"), (self.CELLS_CLASSIFIED, "Cells classified"),
                           (self.CELLS_OUTSIDE, "Cells skipped: outside the polygons"),
                           (self.CELLS_NODATA, "Cells skipped: mostly nodata"),
                           (self.CELL_SIZE_USED, "Cell size used (in CELL_UNIT_USED)")):
            self.addOutput(QgsProcessingOutputNumber(key, title))
        self.addOutput(QgsProcessingOutputString(self.CELL_UNIT_USED, "Unit of the cell size used"))
        self.addOutput(QgsProcessingOutputString(self.CLASS_COUNTS, "Cells per label (JSON)"))
        self.addOutput(QgsProcessingOutputString(self.CLASS_AREAS_M2, "Area per label in m² (JSON)"))

    # -- parameters -> plain values --------------------------------------------------------------------------
    def _area(self, parameters, context, layer, polygons: list[QgsGeometry] | None) -> QgsRectangle:
        area = QgsRectangle(layer.extent())
        if parameters.get(self.EXTENT) not in (None, ""):
            extent = self.parameterAsExtent(parameters, self.EXTENT, context)
            extent_crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            try:
                extent = rect_to_crs(extent, extent_crs, layer.crs(), context.transformContext())
            except CrsMismatchError as exc:
                raise QgsProcessingException(f"EXTENT: {exc}") from None
            area = area.intersect(extent)
        if polygons is not None:
            box = QgsRectangle()
            box.setMinimal()
            for g in polygons:
                box.combineExtentWith(g.boundingBox())
            area = area.intersect(box) if not box.isEmpty() else QgsRectangle()
        if area.isNull() or area.isEmpty():
            raise QgsProcessingException("The area to classify does not overlap the raster: check EXTENT/POLYGONS "
                                         "and that they are in (or transformable to) the raster's CRS.")
        return snap_to_pixels(area, layer.extent(), layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY())

    def _polygons(self, parameters, context, layer, feedback) -> list[QgsGeometry] | None:
        if parameters.get(self.POLYGONS) in (None, ""):
            return None
        source = self.parameterAsSource(parameters, self.POLYGONS, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.POLYGONS))
        geoms = [f.geometry() for f in source.getFeatures(QgsFeatureRequest().setNoAttributes())
                 if f.hasGeometry() and not f.geometry().isEmpty()]
        if not geoms:
            raise QgsProcessingException("POLYGONS: the layer (or its selection) has no polygon to classify under.")
        try:
            geoms = geometries_to_crs(geoms, source.sourceCrs(), layer.crs(), context.transformContext())
        except CrsMismatchError as exc:
            raise QgsProcessingException(f"POLYGONS: {exc}") from None
        feedback.pushInfo(f"{len(geoms)} polygon(s) restrict the grid")
        return geoms

    def _cell_size(self, parameters, context, model: TerrainModel, info: CrsInfo, source: RasterSource,
                   feedback) -> tuple[core_grid.CellSize, float, str]:
        unit = CELL_UNITS[self.parameterAsEnum(parameters, self.CELL_UNIT, context)]
        px, py = source.pixel_size
        if parameters.get(self.CELL_SIZE) in (None, "") or self.parameterAsDouble(parameters, self.CELL_SIZE,
                                                                                   context) <= 0:
            native = layer_info.gsd_m(info, source.extent, source.columns, source.rows)
            pixels = core_grid.suggest_cell_pixels(model.contract.input_size,
                                                   native if math.isfinite(native) else None,
                                                   model.contract.gsd_range_m)
            feedback.pushInfo(f"Cell size: {pixels} source pixels (derived from the model's input size)")
            return core_grid.cell_size_from_pixels(pixels, px, py), float(pixels), "pixels"
        value = self.parameterAsDouble(parameters, self.CELL_SIZE, context)
        if unit == "pixels":
            return core_grid.cell_size_from_pixels(value, px, py), value, unit
        radius = info.radius_m or (info.body.mean_radius_m if info.body else None)
        if info.degrees and not radius:
            raise QgsProcessingException("CELL_SIZE: metres cannot be converted to degrees: the CRS names no radius "
                                         "or body. Give the size in pixels or choose the body (BODY).")
        try:
            return core_grid.cell_size_from_metres(value, info.degrees, radius, info.unit_to_m), value, unit
        except ValueError as exc:
            raise QgsProcessingException(f"CELL_SIZE: {exc}") from None

    # -- the run -----------------------------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("INPUT: no raster layer could be opened from "
                                         f"{parameters.get(self.INPUT)!r}; give a raster file or layer.")
        output = FileOutput(parameters, self.OUTPUT, context)  # refuses an existing file before any work
        model, layout = run_grid_model(self, parameters, self.MODEL, context, feedback)
        contract = model.contract
        info = crs_info(layer.crs(), self.body_choice(parameters, context))
        try:
            body = check_body(info, contract)
            source = raster_source(layer)
        except (BodyError, ExtentError) as exc:
            raise QgsProcessingException(str(exc)) from None
        threshold = optional_threshold(self, parameters, self.THRESHOLD, context)
        polygons = self._polygons(parameters, context, layer, feedback)
        area = self._area(parameters, context, layer, polygons)
        size, size_value, size_unit = self._cell_size(parameters, context, model, info, source, feedback)
        px, py = source.pixel_size
        if min(size.width / px, size.height / py) < MIN_EXTENT_PIXELS - 1e-6:
            raise QgsProcessingException(
                f"CELL_SIZE: cells of {size.width / px:.3g} x {size.height / py:.3g} source pixels are too small; "
                f"each cell needs at least {MIN_EXTENT_PIXELS} x {MIN_EXTENT_PIXELS} pixels to show terrain (a "
                "smaller one would reach the model as an upsampled blur). Give a larger CELL_SIZE.")
        overlap = self.parameterAsDouble(parameters, self.OVERLAP, context)
        grid = core_grid.Grid(core_grid.Extent(area.xMinimum(), area.yMinimum(), area.xMaximum(), area.yMaximum()),
                              size, overlap, edge="extend")
        total = grid.count
        max_cells = self.parameterAsInt(parameters, self.MAX_CELLS, context)
        feedback.pushInfo(f"Grid: {grid.rows} rows, {total} cells over {area.toString(4)}")
        if total > max_cells:
            raise QgsProcessingException(
                too_many_cells_message(total, max_cells) + " Use bigger cells, a smaller "
                "extent or polygons, or raise MAX_CELLS if you really want this many.")

        fields = grid_result_fields(contract)
        try:
            sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields, QgsWkbTypes.Polygon,
                                                 layer.crs())
        except QgsProcessingException as exc:
            output.discard()
            raise output.created_error(exc) from None
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))

        keep = polygon_predicate(polygons) if polygons is not None else None
        maker = result_fields.FeatureMaker(fields, contract)
        stats = _Stats()
        batch_size = self.parameterAsInt(parameters, self.BATCH_SIZE, context)
        chunk_cells = batch_size * math.ceil(MIN_CHUNK_CELLS / batch_size)  # whole batches of valid cells
        read_chunk = _ChunkReader(iter(grid), keep, source, contract, chunk_cells, MAX_CHUNK_VISITS)
        # Three stages overlap: a reader thread walks the grid and reads and preprocesses the next chunks of
        # cells; model threads run onnxruntime (which releases the GIL) on the chunks before them, in batches of
        # BATCH_SIZE, two chunks queued per thread so that one finishing first starts the next at once; this
        # thread writes the oldest chunk and keeps the counts. A few chunks are in memory (MAX_QUEUED_CELLS),
        # whatever the number of cells. GDAL's block cache would otherwise keep every decoded block of the area
        # (up to 5 % of RAM): it is held to the blocks of two rows of cells (the reader may be a row ahead) while
        # the run reads, and given back its limit after.
        row_bytes = row_block_bytes(source, area.width(), size.height)
        with bounded_block_cache(2 * row_bytes), \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="planet-terrain-reader") as reader, \
                ThreadPoolExecutor(max_workers=layout.workers, thread_name_prefix="planet-terrain-model") as runner:
            roomy = chunk_cells * layout.workers <= MAX_QUEUED_CELLS  # else no chunk queued beyond the running ones
            prepared = takewhile(lambda chunk: chunk is not None,
                                 run_ahead(repeat(None), read_chunk, reader, 2 if roomy else 1))
            decided = run_ahead(prepared, lambda chunk: _decide_chunk(chunk, model, body, threshold, batch_size),
                                runner, depth=(2 if roomy else 1) * layout.workers)
            for chunk, results in decided:
                if feedback.isCanceled():
                    break
                features = self._chunk_features(chunk, results, source, model, info, maker, stats)
                if features and not sink.addFeatures(features, QgsFeatureSink.FastInsert):
                    error = sink.lastError()
                    del sink
                    output.discard()
                    raise QgsProcessingException(
                        f"writing to the output failed ({error or 'no reason given'}); the partial file was "
                        "removed. Check that the destination can be written and that the disk is not full.")
                feedback.setProgress(100.0 * stats.visited / max(total, 1))
            decided.close()  # on cancel: nothing more is submitted; the pools wait for the calls in flight
        if feedback.isCanceled():
            if self.parameterAsEnum(parameters, self.ON_CANCEL, context) == 1:
                del sink  # close the file before removing it
                output.discard()
                raise QgsProcessingException(f"Cancelled after {stats.visited} of {total} cells; nothing was "
                                             "written (ON_CANCEL: write nothing).")
            feedback.reportError(f"Cancelled after {stats.visited} of {total} cells; the output holds the "
                                 f"{stats.classified} classified so far.", False)
        self._report(stats, feedback)
        feedback.setProgress(100)
        return {self.OUTPUT: dest_id, self.CELLS_TOTAL: total, self.CELLS_CLASSIFIED: stats.classified,
                self.CELLS_OUTSIDE: stats.outside, self.CELLS_NODATA: stats.nodata,
                self.CELL_SIZE_USED: size_value, self.CELL_UNIT_USED: size_unit,
                self.CLASS_COUNTS: json.dumps(dict(sorted(stats.counts.items()))),
                self.CLASS_AREAS_M2: json.dumps({k: round(v, 3) for k, v in sorted(stats.areas.items())})}

    def _chunk_features(self, prepared: "_PreparedCells", results: list[ImageResult], source: RasterSource,
                        model: TerrainModel, info: CrsInfo, maker: result_fields.FeatureMaker,
                        stats: "_Stats") -> list[QgsFeature]:
        contract = model.contract
        stats.visited += prepared.visited
        stats.outside += prepared.outside
        stats.nodata += prepared.skipped
        reads = prepared.reads
        features = []
        created = result_fields.utc_now()
        provenances: dict[tuple, result_fields.Provenance] = {}  # one per read geometry: cells of a row share it
        for (cell, (_, _, read_extent_, width, height)), result in zip(reads, results):
            if result.decision is None:
                stats.nodata += 1
                continue
            covered = cell_rect(cell).intersect(source.extent)
            key = (read_extent_.yMinimum(), read_extent_.yMaximum(), read_extent_.width(), width, height)
            provenance = provenances.get(key)
            if provenance is None:
                provenance = provenances[key] = result_fields.Provenance(
                    body=info.body_name, gsd_m=layer_info.gsd_m(info, read_extent_, width, height),
                    source_layer=source.layer_name, model=contract.model_name, model_version=contract.model_version,
                    provider=model.provider, created_utc=created)
            extra = {ROW_FIELD: cell.row, COL_FIELD: cell.col}
            features.append(maker.make(covered, result.decision, provenance, extra))
            stats.add(result.decision.label, _area_m2(covered, info))
        return features

    def _report(self, stats: "_Stats", feedback) -> None:
        feedback.pushInfo(f"Classified {stats.classified} cell(s); skipped {stats.outside} outside the polygons "
                          f"and {stats.nodata} mostly nodata.")
        for label in sorted(stats.counts):
            feedback.pushInfo(f"  {label}: {stats.counts[label]} cell(s), {stats.areas[label] / 1e6:.6g} km²")


def _area_m2(rect: QgsRectangle, info: CrsInfo) -> float:
    """Ground area of a rectangle in the layer CRS; NaN for degrees with no radius (no Earth guess)."""
    radius = info.radius_m or (info.body.mean_radius_m if info.body else None)
    if info.degrees and not radius:
        return float("nan")
    return core_grid.rect_area_m2(rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum(),
                                  info.degrees, radius, info.unit_to_m)


@dataclass(frozen=True)
class _PreparedCells:
    """A chunk of cells read and preprocessed by the reader thread, waiting for the model."""

    reads: list  # (cell, read_cell result) of the cells that had enough valid pixels to read
    batch: PreparedBatch
    visited: int  # grid cells the chunk went through
    outside: int  # of which outside the polygons
    skipped: int  # of which passed over as mostly nodata before preprocessing


class _ChunkReader:
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

    def __call__(self, _unused=None) -> _PreparedCells | None:
        """The next chunk, or None when the grid is done."""
        contract = self._contract
        reads, visited, outside, skipped = [], 0, 0, 0
        for cell in self._cells:
            visited += 1
            if self._keep is not None and not self._keep(cell):
                outside += 1
            else:
                read = read_cell(self._source, cell, contract.input_size, contract.min_valid_fraction)
                if read is None or float((~read[1]).mean()) < contract.min_valid_fraction:
                    skipped += 1
                else:
                    reads.append((cell, read))
            if len(reads) == self._size or visited >= self._max_visits:
                break
        if not visited:
            return None
        batch = prepare_blocks(contract, [r[1][0] for r in reads], [r[1][1] for r in reads])
        return _PreparedCells(reads, batch, visited, outside, skipped)


def _decide_chunk(prepared: _PreparedCells, model: TerrainModel, body: str | None, threshold: float | None,
                  batch_size: int) -> tuple[_PreparedCells, list[ImageResult]]:
    """Run the model on a prepared chunk, ``batch_size`` cells per call (on a model thread); the chunk travels on
    with its decisions."""
    results = decide_prepared(model, prepared.batch, body, threshold, batch_size) if prepared.reads else []
    return prepared, results


class _Stats:
    """Counts of the run: what was visited, skipped and classified, and cells/area per label."""

    def __init__(self) -> None:
        self.visited = self.outside = self.nodata = 0
        self.counts: Counter[str] = Counter()
        self.areas: dict[str, float] = {}

    @property
    def classified(self) -> int:
        return sum(self.counts.values())

    def add(self, label: str, area_m2: float) -> None:
        self.counts[label] += 1
        self.areas[label] = self.areas.get(label, 0.0) + area_m2


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


def geometries_to_crs(geoms: list[QgsGeometry], src: QgsCoordinateReferenceSystem,
                      dst: QgsCoordinateReferenceSystem, context: QgsCoordinateTransformContext) -> list[QgsGeometry]:
    """Polygons in the raster's CRS, with the same planetary rules as ``transform.rect_to_crs``."""
    if not src.isValid() or src == dst:
        return geoms
    attempts = [(src, dst)]
    if same_surface(src, dst):
        attempts.append((QgsCoordinateReferenceSystem.fromProj(src.toProj()),
                         QgsCoordinateReferenceSystem.fromProj(dst.toProj())))
    for a, b in attempts:
        transform = QgsCoordinateTransform(a, b, context)
        if not transform.isValid():
            continue
        try:
            out = []
            for g in geoms:
                copy = QgsGeometry(g)
                copy.transform(transform)
                out.append(copy)
            return out
        except QgsCsException:
            continue
    if same_surface(src, dst) and src.toProj() == dst.toProj():
        return geoms
    raise CrsMismatchError(f"the polygons' CRS '{src.description()}' cannot be transformed to the raster's CRS "
                           f"'{dst.description()}' (different bodies or an unknown datum); reproject them first.")


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
