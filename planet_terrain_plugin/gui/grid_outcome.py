"""What the panel says when a grid run ends: one line with the cells kept, their labels and the scale note, or
why no cell was classified and the cell size to try instead of an empty layer."""
from __future__ import annotations

from qgis.core import QgsRasterLayer, QgsVectorLayer

from ..core.contract import UNKNOWN_LABEL, ModelContract
from ..core.limits import MIN_EXTENT_PIXELS
from ..qgis_io import relabel
from .messages import scale_note
from .result_panel import worst_gsd


def grid_message(layer: QgsVectorLayer, contract: ModelContract, cancelled: bool) -> str:
    """'N cell(s) classified, U unknown; scale note', or what a cancelled run kept."""
    count = layer.featureCount()
    unknown = relabel.label_counts(layer).get(UNKNOWN_LABEL, 0)
    head = (f"Classification cancelled; kept the {count} cell(s) classified so far" if cancelled
            else f"{count} cell(s) classified")
    worst = worst_gsd(layer, contract)
    scale = scale_note(worst[1], contract.gsd_range_m) if worst is not None else ""
    return f"{head}, {unknown} unknown" + (f"; {scale}" if scale else "")


def class_summary(layer: QgsVectorLayer) -> str:
    """'crater: 22, impact ejecta: 6, unknown: 50' (the log's details; the legend shows the same)."""
    return ", ".join(f"{k}: {v}" for k, v in sorted(relabel.label_counts(layer).items()))


def empty_grid_message(results: dict, raster: QgsRasterLayer | None) -> str:
    """Why a grid gave no cell (from the run's counts) and a cell size, in pixels, that gives some."""
    total = int(results.get("CELLS_TOTAL") or 0)
    nodata, outside = int(results.get("CELLS_NODATA") or 0), int(results.get("CELLS_OUTSIDE") or 0)
    size, unit = results.get("CELL_SIZE_USED"), results.get("CELL_UNIT_USED") or ""
    of_size = f" of {size:g} {unit}" if isinstance(size, (int, float)) else ""
    why = f"the grid has {total} cell(s){of_size}: {nodata} mostly nodata or off the raster"
    if outside:
        why += f", {outside} outside the polygons"
    shorter = min(raster.width(), raster.height()) if raster is not None and raster.isValid() else 0
    advice = (f"try a cell size of {max(MIN_EXTENT_PIXELS, shorter // 2)} pixels or less" if shorter
              else "try smaller cells")
    return f"No cell was classified: {why}. No layer was added; {advice}."
