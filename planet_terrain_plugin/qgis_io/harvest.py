"""Export reviewed features as training data, in the HiRISE map-proj-v3 layout ``make train`` reads.

Each reviewed cell is read exactly as the model read it (``engine.read_cell``) and written as the 8-bit image
training caches (``core.preprocess.stretched_gray``: luminance, percentile stretch, nodata filled) to
``map-proj-v3/<raster>-<feature id>.jpg``; the reviewed labels go to ``labels-map-proj-v3.txt`` and the class
map to ``landmarks_map-proj-v3_classmap.csv``. The raster's name is the file names' source, so a split by
source image keeps one raster's cells together. ``make train DATA_ROOT=shared:this`` then trains on both.

The training set's classes are the model contract's (``training.dataset`` checks the class map), so a reviewed
label outside them (a new class such as "gully") is left out and named: teach a head for those (``teach_head``).
Every file is new (``core.newfile``); the label list is written last, so its presence means the export is whole.
"""
from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from qgis.core import QgsFeatureRequest, QgsVectorLayer

from ..core import grid as core_grid
from ..core.contract import HIRISE_LANDFORMS, HIRISE_OTHER, UNKNOWN_LABEL, ModelContract
from ..core.newfile import write_new
from ..core.preprocess import stretched_gray
from .engine import read_cell
from .fields import REVIEWED_FIELD, REVIEWED_LABEL_FIELD, is_reviewed
from .raster_read import RasterSource

IMAGE_FOLDER, LABELS_FILE, CLASSMAP_FILE = "map-proj-v3", "labels-map-proj-v3.txt", "landmarks_map-proj-v3_classmap.csv"
#: The v3 class map: dataset id -> name ("other" is id 0); ``training.dataset`` requires exactly this.
CLASS_MAP: dict[int, str] = {c.id: c.name for c in (HIRISE_OTHER,) + HIRISE_LANDFORMS}
JPEG_QUALITY = "95"


class HarvestError(ValueError):
    """Nothing can be exported (no reviewed feature, the folder holds an export already, ...)."""


@dataclass
class HarvestResult:
    folder: str
    images: int
    per_class: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def source_name(layer_name: str) -> str:
    """The raster's name made safe for the ``<source>-<no>.jpg`` pattern (letters, digits and ``_`` only)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", layer_name).strip("_") or "raster"


def dataset_id(label: str) -> int | None:
    """The v3 class id of a reviewed label (``unknown`` and ``other`` are class 0), or None outside the map."""
    if label in (UNKNOWN_LABEL, HIRISE_OTHER.name):
        return HIRISE_OTHER.id
    return next((i for i, name in CLASS_MAP.items() if name == label), None)


def check_folder(folder: str) -> str:
    """The export folder, created when missing; :class:`HarvestError` when it already holds an export."""
    folder = os.path.abspath(folder)
    if not os.path.isdir(os.path.dirname(folder)):
        raise HarvestError(f"the folder '{os.path.dirname(folder)}' does not exist; choose an existing folder")
    taken = [n for n in (LABELS_FILE, CLASSMAP_FILE) if os.path.exists(os.path.join(folder, n))]
    if taken:
        raise HarvestError(f"'{folder}' already holds training data ({taken[0]}), and Planet Terrain never replaces "
                           "a file; choose a new folder for this export")
    os.makedirs(os.path.join(folder, IMAGE_FOLDER), exist_ok=True)
    return folder


def jpeg_bytes(gray8: np.ndarray) -> bytes:
    """An 8-bit grayscale image as JPEG bytes (GDAL, in memory)."""
    from osgeo import gdal

    mem = gdal.GetDriverByName("MEM").Create("", gray8.shape[1], gray8.shape[0], 1, gdal.GDT_Byte)
    mem.GetRasterBand(1).WriteArray(gray8)
    name = f"/vsimem/planet_terrain_{uuid.uuid4().hex}.jpg"
    try:
        gdal.GetDriverByName("JPEG").CreateCopy(name, mem, options=[f"QUALITY={JPEG_QUALITY}"])
        handle = gdal.VSIFOpenL(name, "rb")
        try:
            gdal.VSIFSeekL(handle, 0, 2)
            size = gdal.VSIFTellL(handle)
            gdal.VSIFSeekL(handle, 0, 0)
            return bytes(gdal.VSIFReadL(1, size, handle))
        finally:
            gdal.VSIFCloseL(handle)
    finally:
        gdal.Unlink(name)


def reviewed_rows(layer: QgsVectorLayer) -> list[tuple[int, str, object]]:
    """(feature id, reviewed label, geometry) of the layer's reviewed features."""
    fields = layer.fields()
    if fields.indexOf(REVIEWED_FIELD) < 0:
        raise HarvestError(f"the layer '{layer.name()}' has no review fields; review some cells first (accept or "
                           "correct them in the panel)")
    rows = [(f.id(), str(f[REVIEWED_LABEL_FIELD]), f.geometry()) for f in layer.getFeatures(QgsFeatureRequest())
            if is_reviewed(f[REVIEWED_FIELD]) and f.hasGeometry()]
    if not rows:
        raise HarvestError(f"no feature of '{layer.name()}' is reviewed; accept or correct some cells first")
    return rows


def export_training_data(layer: QgsVectorLayer, source: RasterSource, folder: str, contract: ModelContract,
                         progress: Callable[[float], None] | None = None) -> HarvestResult:
    """Write the reviewed features of ``layer`` (cells of ``source``, in its CRS) as training data in ``folder``."""
    rows = reviewed_rows(layer)
    folder = check_folder(folder)
    stem, lines, result = source_name(source.layer_name), [], HarvestResult(folder, 0)
    for n, (fid, label, geom) in enumerate(rows):
        cid = dataset_id(label)
        rect = geom.boundingBox()
        read = None if cid is None else read_cell(source, core_grid.Cell(0, 0, rect.xMinimum(), rect.yMinimum(),
                                                                         rect.xMaximum(), rect.yMaximum()),
                                                  contract.input_size, contract.min_valid_fraction)
        if cid is None:
            result.notes.append(f"feature {fid} ('{label}') left out: not a class of the training set "
                                f"({', '.join(CLASS_MAP.values())}); teach a head for new classes")
        elif read is None:
            result.notes.append(f"feature {fid} ('{label}') left out: too little of it lies on the raster")
        else:
            gray, _ = stretched_gray(read[0], contract, read[1])
            name = f"{stem}-{fid:04d}.jpg"
            write_new(os.path.join(folder, IMAGE_FOLDER, name), jpeg_bytes(gray))
            lines.append(f"{name} {cid}")
            result.per_class[CLASS_MAP[cid]] = result.per_class.get(CLASS_MAP[cid], 0) + 1
        if progress is not None:
            progress(100.0 * (n + 1) / len(rows))
    if not lines:
        raise HarvestError("none of the reviewed features could be exported: " + "; ".join(result.notes))
    write_new(os.path.join(folder, CLASSMAP_FILE),
              "".join(f"{i},{name}\n" for i, name in CLASS_MAP.items()).encode("utf-8"))
    write_new(os.path.join(folder, LABELS_FILE), ("\n".join(lines) + "\n").encode("utf-8"))
    result.images = len(lines)
    return result

