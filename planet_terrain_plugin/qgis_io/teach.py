"""Teach a head from drawn examples: points or polygons with a label field, on a raster.

A point stands for the cell of the grid's default size centred on it; a polygon (or a line) for its bounding
box. Each example's pixels are read exactly as a grid reads a cell (``engine.read_cell``) and preprocessed as a
classification preprocesses them, so the head learns from what it will later be shown. Examples that cannot be
read (off the raster, mostly nodata) are left out and named in the notes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from qgis.core import QgsCoordinateTransformContext, QgsGeometry, QgsRectangle, QgsVectorLayer, QgsWkbTypes

from ..core import grid as core_grid
from ..core.heads import Head, HeadError, backbone_info, embed_blocks, teach
from ..core.session import TerrainModel
from . import layer_info
from .engine import read_cell
from .raster_read import RasterSource
from .transform import geometries_to_crs

#: Examples read and embedded per model call (progress and cancel are checked between them).
TEACH_BATCH = 32


@dataclass(frozen=True)
class Example:
    """One drawn example, in the raster's CRS."""

    rect: QgsRectangle
    label: str
    feature_id: int


@dataclass
class TeachOutcome:
    head: Head
    used: int
    notes: list[str] = field(default_factory=list)


def default_cell_pixels(source: RasterSource, model: TerrainModel) -> int:
    """The grid's default cell size for this raster and model, in source pixels."""
    info = layer_info.crs_info(source.crs)
    native = layer_info.gsd_m(info, source.extent, source.columns, source.rows)
    return core_grid.suggest_cell_pixels(model.contract.input_size, native if math.isfinite(native) else None,
                                         model.contract.gsd_range_m)


def examples_from_layer(layer: QgsVectorLayer, label_field: str, source: RasterSource, cell_pixels: float,
                        context: QgsCoordinateTransformContext | None = None) -> list[Example]:
    """The layer's features as examples on ``source``; :class:`HeadError` naming a feature without a label."""
    index = layer.fields().indexOf(label_field)
    if index < 0:
        raise HeadError(f"the layer '{layer.name()}' has no field '{label_field}'; choose the field that holds "
                        f"the class names (fields: {', '.join(layer.fields().names())})")
    features = [f for f in layer.getFeatures() if f.hasGeometry()]
    geoms = geometries_to_crs([QgsGeometry(f.geometry()) for f in features], layer.crs(), source.crs, context)
    px, py = source.pixel_size
    out = []
    for feature, geom in zip(features, geoms):
        value = feature.attribute(index)
        label = "" if value is None or (hasattr(value, "isNull") and value.isNull()) else str(value).strip()
        if not label:
            raise HeadError(f"feature {feature.id()} of '{layer.name()}' has no '{label_field}'; give every example "
                            "a class name ('other' for background), or delete it")
        if geom.type() == QgsWkbTypes.PointGeometry:
            p = geom.asPoint() if not geom.isMultipart() else geom.asMultiPoint()[0]
            half_x, half_y = cell_pixels * px / 2, cell_pixels * py / 2
            rect = QgsRectangle(p.x() - half_x, p.y() - half_y, p.x() + half_x, p.y() + half_y)
        else:
            rect = geom.boundingBox()
        out.append(Example(rect, label, feature.id()))
    return out


def embed_examples(source: RasterSource, examples: list[Example], model: TerrainModel,
                   progress: Callable[[float], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> tuple[np.ndarray, list[str]]:
    """One embedding row per example (NaN where it could not be read) and the reason for each ("" when read)."""
    contract = model.contract
    rows: list[np.ndarray] = []
    reasons: list[str] = []
    for start in range(0, len(examples), TEACH_BATCH):
        if cancelled is not None and cancelled():
            raise HeadError("cancelled; no head was written")
        part = examples[start:start + TEACH_BATCH]
        reads = [read_cell(source, core_grid.Cell(0, 0, e.rect.xMinimum(), e.rect.yMinimum(), e.rect.xMaximum(),
                                                  e.rect.yMaximum()), contract.input_size, 0.0) for e in part]
        ok = [i for i, r in enumerate(reads) if r is not None]
        found, why = embed_blocks(model, [reads[i][0] for i in ok], [reads[i][1] for i in ok]) if ok else \
            (np.zeros((0, 0)), [])
        block_rows = {i: (found[j], why[j]) for j, i in enumerate(ok)}
        for i in range(len(part)):
            row, reason = block_rows.get(i, (None, "it lies off the raster"))
            rows.append(row)
            reasons.append(reason)
        if progress is not None:
            progress(100.0 * min(len(examples), start + TEACH_BATCH) / max(1, len(examples)))
    width = max((len(r) for r in rows if r is not None), default=0)
    return np.array([r if r is not None else np.full(width, np.nan) for r in rows]).reshape(len(rows), width), reasons


def teach_from_examples(source: RasterSource, examples: list[Example], model: TerrainModel, name: str,
                        version: str, progress: Callable[[float], None] | None = None,
                        cancelled: Callable[[], bool] | None = None) -> TeachOutcome:
    """Embed the examples and fit a head; the notes name the examples left out and why."""
    backbone = backbone_info(model)
    embeddings, reasons = embed_examples(source, examples, model, progress, cancelled)
    keep = [i for i, r in enumerate(reasons) if not r]
    notes = [f"feature {examples[i].feature_id} ({examples[i].label}) left out: {r}" for i, r in enumerate(reasons)
             if r]
    if not keep:
        raise HeadError("no example could be read from the raster; draw them on the raster's pixels")
    head = teach(embeddings[keep], [examples[i].label for i in keep], name, version, backbone)
    return TeachOutcome(head, len(keep), notes)
