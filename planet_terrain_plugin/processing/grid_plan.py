"""The cells of a ``classify_grid`` run, known before it starts: what the panel counts to ask before a huge grid.

``ClassifyGridAlgorithm.plan`` turns the parameters into the grid (area, cell size, polygons) without reading a
pixel or loading a session; the algorithm runs that grid, and :func:`count_cells` gives the panel its size from
the same parameters, so the number the panel asks about is the number the run would refuse.
"""
from __future__ import annotations

from dataclasses import dataclass

from qgis.core import (QgsApplication, QgsGeometry, QgsProcessingContext, QgsProcessingException,
                       QgsProcessingFeedback, QgsProject, QgsRectangle)

from ..core import grid as core_grid
from ..core.session import TerrainModel
from ..qgis_io.layer_info import crs_info
from ..qgis_io.raster_read import ExtentError, raster_source

GRID_ALGORITHM = "planet_terrain:classify_grid"


@dataclass(frozen=True)
class GridPlan:
    """A grid run's cells: the grid over ``area`` (snapped to the raster's pixels, in its CRS), the polygons
    that restrict it (None: all cells), and the cell size as given (``size_value`` in ``size_unit``)."""

    grid: core_grid.Grid
    area: QgsRectangle
    polygons: list[QgsGeometry] | None
    size: core_grid.CellSize
    size_value: float
    size_unit: str


def count_cells(parameters: dict, model: TerrainModel, project: QgsProject | None = None) -> int | None:
    """Cells ``classify_grid`` would lay with ``parameters`` (``model``: the one it runs, whose input size gives
    the default cell size); None when the parameters are refused -- the run then says why, in its own words.
    Past ``core.grid.LARGE_GRID_CELLS`` the number may be an upper bound (``Grid.count_or_bound``), instant
    however large the grid, and never below the count, so a run allowed that many cells is not refused."""
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(GRID_ALGORITHM)
    if algorithm is None:
        return None
    context = QgsProcessingContext()
    context.setProject(project or QgsProject.instance())
    layer = algorithm.parameterAsRasterLayer(parameters, algorithm.INPUT, context)
    if layer is None:
        return None
    try:
        info = crs_info(layer.crs(), algorithm.body_choice(parameters, context))
        plan = algorithm.plan(parameters, context, layer, info, raster_source(layer), model,
                              QgsProcessingFeedback())
    except (QgsProcessingException, ExtentError):
        return None
    return plan.grid.count_or_bound(core_grid.LARGE_GRID_CELLS)[0]
