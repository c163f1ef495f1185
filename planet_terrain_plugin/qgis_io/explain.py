"""The QGIS side of "why this label": a result feature's cell read as the model read it, its occlusion map run
as a background task, and the map drawn as a raster layer over the cell.

The cell is the feature's rectangle read through the engine (``engine.read_rectangle``: the grid-of-one-cell
path every classification takes), so the explanation is about the very pixels the model was given. The map
(``core.explain``) runs in a :class:`ExplainTask` (progress in QGIS's task bar, cancellable between batches).

The heatmap raster is written to GDAL's in-memory file system (``/vsimem/``), not to a folder: it is a view of
a computation, not a product, so nothing is written beside the user's files or anywhere on disk, and its memory
is freed when the layer leaves the project (:func:`add_heatmap_layer`). It is georeferenced to the cell's
extent in the raster's CRS; block (0, 0) of the map is the cell's top-left corner.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np
from qgis.core import (QgsColorRampShader, QgsCoordinateReferenceSystem, QgsFeature, QgsProject, QgsRasterLayer,
                       QgsRasterShader, QgsRectangle, QgsSingleBandPseudoColorRenderer, QgsTask)
from qgis.PyQt.QtGui import QColor

from ..core import explain
from ..core.gallery import Gallery, Neighbour
from ..core.session import TerrainModel
from . import engine
from .fields import LABEL_FIELD
from .raster_read import ExtentError, RasterSource

#: The heatmap's colours: a drop of 0 (or a rise) transparent, the largest drop opaque red.
HEAT_RED = "#d7191c"
HEAT_MAX_ALPHA = 210


class ExplainError(ValueError):
    """The cell cannot be explained (off the raster, mostly nodata, ...); the message says what to do."""


@dataclass(frozen=True)
class CellInput:
    """A feature's cell as the model read it: its extent in the raster's CRS and the preprocessed (3, S, S)
    input."""

    extent: QgsRectangle
    crs: QgsCoordinateReferenceSystem
    tensor: np.ndarray


def cell_input(source: RasterSource, feature: QgsFeature, model: TerrainModel) -> CellInput:
    """Read ``feature``'s cell exactly as the classification read it; :class:`ExplainError` when it cannot be."""
    if not feature.hasGeometry():
        raise ExplainError("the selected feature has no geometry; select a cell of the result layer")
    rect = feature.geometry().boundingBox()
    try:
        chunk = engine.read_rectangle(source, rect, model.contract)
    except ExtentError as exc:
        raise ExplainError(f"the cell cannot be read from '{source.layer_name}': {exc}") from None
    if chunk.batch.tensors is None:
        raise ExplainError(f"the cell holds too little valid data of '{source.layer_name}' to explain "
                           f"({chunk.batch.results[0].skipped_reason})")
    return CellInput(rect, QgsCoordinateReferenceSystem(source.crs), chunk.batch.tensors[0])


def nearest_examples(model: TerrainModel, cell: CellInput, gallery: Gallery, k: int = 5) -> list[Neighbour]:
    """The ``k`` training examples of ``gallery`` nearest to the cell's embedding."""
    embedding = explain.embedding_of(model, cell.tensor)
    if embedding is None:
        raise ExplainError("the model has no embedding output, so it cannot be compared with training images; use "
                           "the shipped model (1.2.0 or later)")
    return gallery.nearest(embedding, k)


class ExplainTask(QgsTask):
    """The occlusion map of one cell, in the background; ``on_done(task)`` runs on the main thread after it.

    Then :attr:`occlusion` holds the map, or :attr:`error` says why there is none (``cancelled`` when the user
    stopped it). Whoever starts the task keeps a reference to it until ``on_done``.
    """

    def __init__(self, title: str, model: TerrainModel, cell: CellInput, class_index: int, body: str | None,
                 on_done: Callable[["ExplainTask"], None]) -> None:
        super().__init__(title, QgsTask.CanCancel)
        self.model, self.cell, self.class_index, self.body = model, cell, class_index, body
        self.on_done = on_done
        self.occlusion: explain.Occlusion | None = None
        self.error: str | None = None
        self.cancelled = False
        self.done_percent = 0.0  # kept on the Python side: QGIS deletes the finished task's C++ object

    def _progress(self, percent: float) -> None:
        self.done_percent = percent
        self.setProgress(percent)

    def run(self) -> bool:
        try:
            self.occlusion = explain.occlusion_map(self.model, self.cell.tensor, self.class_index, self.body,
                                                   progress=self._progress, cancelled=self.isCanceled)
        except explain.ExplainCancelled as exc:
            self.cancelled, self.error = True, str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 -- a task must report, never raise into QGIS
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        return True

    def finished(self, result: bool) -> None:  # noqa: ARG002 -- the outcome is in the task's fields
        if self.occlusion is None and self.error is None:  # cancelled before run() started
            self.cancelled, self.error = True, "the explanation was cancelled; no heatmap was made"
        self.on_done(self)


def heatmap_name(feature: QgsFeature) -> str:
    """'why crater (cell 12)': the feature's label and id."""
    return f"why {feature[LABEL_FIELD]} (cell {feature.id()})"


def write_heatmap(drop: np.ndarray, extent: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> str:
    """A one-band Float32 GeoTIFF of ``drop`` on ``extent`` in ``crs``, in GDAL's memory; returns its path."""
    from osgeo import gdal

    rows, cols = drop.shape
    path = f"/vsimem/planet_terrain_why_{uuid.uuid4().hex}.tif"
    ds = gdal.GetDriverByName("GTiff").Create(path, cols, rows, 1, gdal.GDT_Float32)
    ds.SetGeoTransform((extent.xMinimum(), extent.width() / cols, 0.0, extent.yMaximum(), 0.0,
                        -extent.height() / rows))
    ds.SetProjection(crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL))
    ds.GetRasterBand(1).WriteArray(np.asarray(drop, np.float32))
    ds = None  # flushed and closed
    return path


def heatmap_renderer(layer: QgsRasterLayer, top: float) -> QgsSingleBandPseudoColorRenderer:
    """Transparent at no drop, opaque red at ``top``; rises (negative drops) stay transparent."""
    ramp = QgsColorRampShader(0.0, top)
    ramp.setColorRampType(QgsColorRampShader.Interpolated)
    clear, red = QColor(HEAT_RED), QColor(HEAT_RED)
    clear.setAlpha(0)
    red.setAlpha(HEAT_MAX_ALPHA)
    ramp.setColorRampItemList([QgsColorRampShader.ColorRampItem(0.0, clear, "no drop"),
                               QgsColorRampShader.ColorRampItem(top, red, f"-{top:.2f}")])
    ramp.setClip(False)  # beyond the ends: the end colours
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    return QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)


def add_heatmap_layer(occlusion: explain.Occlusion, cell: CellInput, name: str,
                      project: QgsProject | None = None) -> QgsRasterLayer:
    """The occlusion map as a styled raster layer over the cell, added to ``project``; its in-memory file is
    freed when the layer is removed."""
    from osgeo import gdal

    project, crs = project or QgsProject.instance(), cell.crs
    path = write_heatmap(occlusion.drop, cell.extent, crs)
    layer = QgsRasterLayer(path, name, "gdal")
    if not layer.isValid():
        gdal.Unlink(path)
        raise ExplainError(f"QGIS could not open the heatmap it wrote ({layer.error().summary()})")
    layer.setCrs(crs)  # planetary CRSs: the layer's own, exactly, whatever the WKT round trip gives
    top = max(float(np.nanmax(occlusion.drop)), 1e-3)
    layer.setRenderer(heatmap_renderer(layer, top))
    layer_id = layer.id()

    def free(removed_ids) -> None:
        if layer_id in removed_ids:
            gdal.Unlink(path)
            project.layersWillBeRemoved.disconnect(free)

    project.layersWillBeRemoved.connect(free)
    project.addMapLayer(layer)
    return layer
