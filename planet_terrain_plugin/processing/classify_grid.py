"""Processing algorithm ``planet_terrain:classify_grid``: a raster area cut into cells, one labelled polygon each.

A thin wrapper: parameters -> a ``core.grid`` grid -> the one engine (``qgis_io.engine.stream``: read,
preprocess, infer, streamed with bounded memory) -> features into the one writer (``outputs.RunOutput``), with
the counts and areas per label reported.

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

import contextlib
import json
import math
from collections import Counter

from qgis.core import (QgsFeature, QgsFeatureRequest, QgsField, QgsFields,
                       QgsGeometry, QgsProcessing, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterEnum, QgsProcessingParameterFeatureSink,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterNumber, QgsRectangle, QgsWkbTypes)

from ..core import grid as core_grid
from ..core.calibrate import INVALID_OUTPUT_NOTE, Reason
from ..core.contract import ModelContract
from ..core.pipeline import ImageResult
from ..core.session import ModelRunError, TerrainModel
from ..qgis_io import engine
from ..qgis_io import fields as result_fields
from ..qgis_io import layer_info
from ..qgis_io.fields import COL_FIELD, GRID_FIELDS, ROW_FIELD
from ..qgis_io.classify import (MIN_EXTENT_PIXELS, BodyError, check_body, check_geographic_extent,
                                check_geographic_raster, check_image)
from ..qgis_io.engine import GridRun
from ..qgis_io.layer_info import CrsInfo, crs_info
from ..qgis_io.raster_read import ExtentError, RasterReadError, RasterSource, raster_source, row_block_bytes
from ..qgis_io.transform import CrsMismatchError, geometries_to_crs, rect_to_crs
from .classification_base import ClassificationAlgorithm
from .grid_plan import GridPlan
from .guards import optional_threshold, run_model
from .outputs import RunOutput

CELL_UNITS = ("metres", "pixels")
DEFAULT_BATCH = 16


def too_many_cells_message(total: int, max_cells: int, exact: bool = True) -> str:
    """The refusal of an oversized grid (the panel counts the cells and asks before it starts). Not ``exact``:
    ``total`` is an upper bound a little above the count (``core.grid.Grid.count_or_bound``), so a run allowed
    that many cells is not refused again."""
    return f"The grid has {'' if exact else 'about '}{total:,} cells, more than MAX_CELLS ({max_cells:,})."


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
    #: Number parameters refused when not finite (``ClassificationAlgorithm.checkParameterValues``).
    FINITE_NUMBERS = ClassificationAlgorithm.FINITE_NUMBERS + (CELL_SIZE, OVERLAP, BATCH_SIZE, MAX_CELLS)
    EMPTY_MEANS = {**ClassificationAlgorithm.EMPTY_MEANS, CELL_SIZE: "empty or 0: the model's input size in pixels"}
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
    def _area(self, parameters, context, source: RasterSource, info: CrsInfo,
              polygons: list[QgsGeometry] | None) -> QgsRectangle:
        area = QgsRectangle(source.extent)
        try:
            check_geographic_raster(source, info)
        except ExtentError as exc:
            raise QgsProcessingException(f"INPUT: {exc}") from None
        if parameters.get(self.EXTENT) not in (None, ""):
            extent = self.parameterAsExtent(parameters, self.EXTENT, context)
            extent_crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            try:
                extent = rect_to_crs(extent, extent_crs, source.crs, context.transformContext())
                extent = check_geographic_extent(source, extent, info)
            except (CrsMismatchError, ExtentError) as exc:
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
        px, py = source.pixel_size
        return engine.snap_to_pixels(area, source.extent, px, py)

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
            ground = (f" = {pixels * native:.4g} m on the ground, read at {pixels * native / model.contract.input_size:.3g}"
                      " m per model pixel" if math.isfinite(native) else "")
            feedback.pushInfo(f"Cell size: {pixels} source pixels{ground} (derived from the model's input size and "
                              "ground-sampling range)")
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

    def plan(self, parameters, context, layer, info: CrsInfo, source: RasterSource, model: TerrainModel,
             feedback) -> GridPlan:
        """The run's cells from the parameters alone (no pixel read): the grid this algorithm runs, and the one
        whose size the panel checks before starting (``grid_plan.count_cells``)."""
        polygons = self._polygons(parameters, context, layer, feedback)
        area = self._area(parameters, context, source, info, polygons)
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
        return GridPlan(grid, area, polygons, size, size_value, size_unit)

    # -- the run -----------------------------------------------------------------------------------------------
    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802 -- QGIS's name
        """Main thread: open the layer and snapshot it (a provider clone), so that the run's thread never creates
        or reads a map layer itself (two grid tasks at once each read their own clone)."""
        self._layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if self._layer is None:
            raise QgsProcessingException("INPUT: no raster layer could be opened from "
                                         f"{parameters.get(self.INPUT)!r}; give a raster file or layer.")
        try:
            self._source = raster_source(self._layer)
            check_image(self._source)
        except ExtentError as exc:
            raise QgsProcessingException(f"INPUT: {exc}") from None
        return True

    def processAlgorithm(self, parameters, context, feedback):
        layer, source = self._layer, self._source
        output = RunOutput(self, parameters, self.OUTPUT, context)  # refuses an existing file before any work
        model = run_model(self, parameters, self.MODEL, context, feedback, grid=True)
        layout = model.layout
        contract = model.contract
        info = crs_info(source.crs, self.body_choice(parameters, context))
        try:
            body = check_body(info, contract)
        except BodyError as exc:
            raise QgsProcessingException(str(exc)) from None
        threshold = optional_threshold(self, parameters, self.THRESHOLD, context)
        plan = self.plan(parameters, context, layer, info, source, model, feedback)
        grid, area, polygons, size = plan.grid, plan.area, plan.polygons, plan.size
        size_value, size_unit = plan.size_value, plan.size_unit
        max_cells = int(self.parameterAsDouble(parameters, self.MAX_CELLS, context))  # may exceed 32 bits
        total, exact = grid.count_or_bound(max_cells)
        feedback.pushInfo(f"Grid: {grid.rows} rows, {'' if exact else 'about '}{total} cells over {area.toString(4)}")
        if total > max_cells:
            raise QgsProcessingException(
                too_many_cells_message(total, max_cells, exact) + " Use bigger cells, a smaller "
                "extent or polygons, or raise MAX_CELLS if you really want this many.")

        keep = engine.polygon_predicate(polygons) if polygons is not None else None
        run = GridRun(grid, keep, source, model, layout, body, threshold,
                       self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                       row_block_bytes(source, area.width(), size.height))
        output.open(grid_result_fields(contract), QgsWkbTypes.Polygon, layer.crs())
        try:
            stats = self._stream(run, output, info, feedback)
            if feedback.isCanceled():
                if self.parameterAsEnum(parameters, self.ON_CANCEL, context) == 1:
                    output.discard()  # what the user chose; a cancel is no failure, so the run ends normally
                    feedback.pushWarning(f"Cancelled after {stats.visited} of {total} cells; nothing was written "
                                         "(ON_CANCEL: write nothing).")
                    self._layer = self._source = None
                    return {self.CELLS_TOTAL: total, self.CELLS_CLASSIFIED: 0}
                feedback.reportError(f"Cancelled after {stats.visited} of {total} cells; the output holds the "
                                     f"{stats.classified} classified so far.", False)
            dest_id = output.finish(contract)
        except RasterReadError as exc:
            output.discard()
            raise QgsProcessingException(f"{self.INPUT}: {exc}. Nothing was written; check that the file (and, "
                                         "for a VRT, each of its source files) is complete and readable, then "
                                         "run again.") from None
        except ModelRunError as exc:
            output.discard()
            raise QgsProcessingException(f"{self.MODEL}: {exc}. Nothing was written.") from None
        except BaseException:
            output.discard()
            raise
        self._report(stats, feedback)
        feedback.setProgress(100)
        self._layer = self._source = None  # release the layer and its clone now, not when Processing drops us
        return {self.OUTPUT: dest_id, self.CELLS_TOTAL: total, self.CELLS_CLASSIFIED: stats.classified,
                self.CELLS_OUTSIDE: stats.outside, self.CELLS_NODATA: stats.nodata,
                self.CELL_SIZE_USED: size_value, self.CELL_UNIT_USED: size_unit,
                self.CLASS_COUNTS: json.dumps(dict(sorted(stats.counts.items()))),
                self.CLASS_AREAS_M2: json.dumps({k: round(v, 3) for k, v in sorted(stats.areas.items())})}

    def _stream(self, run: GridRun, output: RunOutput, info: CrsInfo, feedback) -> "_Stats":
        """Stream ``run`` through the engine into ``output``; stops early (keeping what was written) on cancel."""
        stats = _Stats()
        maker = result_fields.FeatureMaker(grid_result_fields(run.model.contract), run.model.contract)
        total = max(run.grid.count, 1)
        with contextlib.closing(engine.stream(run)) as chunks:
            for chunk, results in chunks:
                if feedback.isCanceled():
                    break
                output.add(self._chunk_features(chunk, results, run.source, run.model, info, maker, stats))
                feedback.setProgress(100.0 * stats.visited / total)
        return stats

    def _chunk_features(self, prepared: engine.ReadChunk, results: list[ImageResult], source: RasterSource,
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
            covered = engine.cell_rect(cell).intersect(source.extent)
            key = (read_extent_.yMinimum(), read_extent_.yMaximum(), read_extent_.width(), width, height)
            provenance = provenances.get(key)
            if provenance is None:
                provenance = provenances[key] = result_fields.Provenance(
                    body=info.body_name, gsd_m=layer_info.gsd_m(info, read_extent_, width, height),
                    source_layer=source.layer_name, model=contract.model_name, model_version=contract.model_version,
                    provider=model.provider, created_utc=created)
            if result.decision.reason is Reason.INVALID_OUTPUT:
                stats.invalid += 1
            extra = {ROW_FIELD: cell.row, COL_FIELD: cell.col}
            features.append(maker.make(covered, result.decision, provenance, extra))
            stats.add(result.decision.label, _area_m2(covered, info))
        return features

    def _report(self, stats: "_Stats", feedback) -> None:
        feedback.pushInfo(f"Classified {stats.classified} cell(s); skipped {stats.outside} outside the polygons "
                          f"and {stats.nodata} mostly nodata.")
        for label in sorted(stats.counts):
            feedback.pushInfo(f"  {label}: {stats.counts[label]} cell(s), {stats.areas[label] / 1e6:.6g} km²")
        if stats.invalid:
            feedback.reportError(f"{stats.invalid} cell(s): {INVALID_OUTPUT_NOTE}", False)


def _area_m2(rect: QgsRectangle, info: CrsInfo) -> float:
    """Ground area of a rectangle in the layer CRS; NaN for degrees with no radius (no Earth guess)."""
    radius = info.radius_m or (info.body.mean_radius_m if info.body else None)
    if info.degrees and not radius:
        return float("nan")
    return core_grid.rect_area_m2(rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum(),
                                  info.degrees, radius, info.unit_to_m)


class _Stats:
    """Counts of the run: what was visited, skipped and classified, and cells/area per label."""

    def __init__(self) -> None:
        self.visited = self.outside = self.nodata = self.invalid = 0
        self.counts: Counter[str] = Counter()
        self.areas: dict[str, float] = {}

    @property
    def classified(self) -> int:
        return sum(self.counts.values())

    def add(self, label: str, area_m2: float) -> None:
        self.counts[label] += 1
        self.areas[label] = self.areas.get(label, 0.0) + area_m2
