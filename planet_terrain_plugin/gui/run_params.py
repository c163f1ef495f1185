"""The panel's and the map tool's choices as parameters of the Planet Terrain algorithms.

The one place that maps what the user chose (raster, model, threshold, body, the chosen head; for a grid the
cell size, the area and the polygons) to the keys ``classify_extent`` and ``classify_grid`` take, so a click, a
panel run and ``qgis_process`` with the same values are the same run.
"""
from __future__ import annotations

from dataclasses import dataclass

from qgis.core import (QgsProcessingFeatureSourceDefinition, QgsRasterLayer, QgsRectangle, QgsReferencedRectangle,
                       QgsVectorLayer)

from ..processing.classify_grid import CELL_UNITS
from ..processing.guards import HEAD_PARAMETER
from ..qgis_io.layer_info import BODY_CHOICES
from ..qgis_io.model_choice import head_for_model

EXTENT_ALGORITHM = "planet_terrain:classify_extent"
#: Where the panel's runs write: a layer Processing keeps in the run's context, added to the project by the panel.
TEMPORARY_OUTPUT = "TEMPORARY_OUTPUT"


@dataclass(frozen=True)
class RunChoice:
    """What every run is given: the raster, the model file, the threshold (None: the model's) and the body; and
    HEAD, the chosen head when it was taught on that model file (``model_choice.head_for_model``), so results
    carry the head's classes, name and version."""

    layer: QgsRasterLayer
    model_path: str
    threshold: float | None = None
    body: str = "auto"  # one of layer_info.BODY_CHOICES

    def parameters(self) -> dict:
        params = {"INPUT": self.layer.id(), "MODEL": self.model_path, "BODY": BODY_CHOICES.index(self.body),
                  "OUTPUT": TEMPORARY_OUTPUT}
        if self.threshold is not None:
            params["THRESHOLD"] = self.threshold
        head = head_for_model(self.model_path)
        if head:
            params[HEAD_PARAMETER] = head
        return params


@dataclass(frozen=True)
class GridChoice:
    """How a grid is laid: cell size (None: the model's default) in ``unit``; over the whole raster, ``extent``
    or the (selected) features of ``polygons``; ``max_cells`` when the user agreed to a larger grid."""

    cell_size: float | None
    unit: str = "pixels"  # one of classify_grid.CELL_UNITS
    extent: QgsReferencedRectangle | None = None
    polygons: QgsVectorLayer | None = None
    selected_only: bool = False
    max_cells: int | None = None


def extent_parameters(choice: RunChoice, extent: QgsRectangle) -> dict:
    """``classify_extent`` of ``extent``, given in the raster's CRS (the map tool has placed it there)."""
    return dict(choice.parameters(), EXTENT=QgsReferencedRectangle(extent, choice.layer.crs()))


def grid_parameters(choice: RunChoice, grid: GridChoice) -> dict:
    """``classify_grid`` with ``grid``'s cells."""
    params = dict(choice.parameters(), CELL_SIZE=grid.cell_size, CELL_UNIT=CELL_UNITS.index(grid.unit))
    if grid.extent is not None:
        params["EXTENT"] = grid.extent
    if grid.polygons is not None:
        params["POLYGONS"] = QgsProcessingFeatureSourceDefinition(grid.polygons.id(), grid.selected_only)
    if grid.max_cells is not None:
        params["MAX_CELLS"] = grid.max_cells
    return params
