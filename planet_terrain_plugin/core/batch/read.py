"""The pixels of one grid cell, read with rasterio the way ``classify_grid`` reads them through QGIS.

Same rules, so both paths hand the model the same arrays (``processing.classify_grid.read_cell`` and
``qgis_io.raster_read.read_extent``):

* the cell is clipped to the raster; a cell with less than the model's ``min_valid_fraction`` of its area on
  the raster, or less than half a pixel, is not read;
* the clipped part is read at the size ``core.limits.read_block_size`` gives (native, or capped; nearest
  neighbour, as GDAL resamples for QGIS);
* a paletted band is expanded to the colours its table names (``core.palette``);
* nodata per band (declared value, non-finite values, else an undeclared zero collar), or the alpha band /
  dataset mask where there is one (``core.nodata``), computed on the clipped block;
* the part of the cell beyond the raster is padded as nodata, so an edge cell keeps its ground size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from functools import lru_cache

from .. import nodata, palette
from ..grid import Cell
from ..limits import read_block_size
from .source import RasterFacts

#: Window offsets and sizes this close to whole pixels are whole pixels (extents carry float noise).
_SNAP = 1e-6

Box = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax


@dataclass(frozen=True)
class CellPixels:
    """A cell ready for ``core.pipeline.prepare_blocks``, and the geometry its provenance is computed from."""

    data: np.ndarray          # (bands, H, W), the source dtype
    mask: np.ndarray          # (H, W) True where nodata
    read_box: Box             # the extent the pixels cover (the whole cell once padded)
    width: int
    height: int


def _intersect(a: Box, b: Box) -> Box | None:
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[2] > box[0] and box[3] > box[1] else None


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _snap(value: float) -> float:
    nearest = round(value)
    return float(nearest) if abs(value - nearest) < _SNAP else value


def _read_block(src, facts: RasterFacts, box: Box, out_w: int, out_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Image bands and nodata mask of ``box`` (on the raster) resampled to ``out_w`` x ``out_h``."""
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    x0, _, _, y0, _, _ = facts.transform
    px, py = facts.pixel_size
    window = Window(_snap((box[0] - x0) / px), _snap((y0 - box[3]) / py),
                    _snap((box[2] - box[0]) / px), _snap((box[3] - box[1]) / py))
    shape = (out_h, out_w)
    kw = dict(window=window, out_shape=shape, resampling=Resampling.nearest)
    data = src.read(list(facts.bands), window=window, out_shape=(len(facts.bands),) + shape,
                    resampling=Resampling.nearest)
    mask, arrays = np.zeros(shape, bool), []
    for band, value, entries in zip(data, facts.nodata, facts.palettes):
        if entries is not None:  # indices -> the colours they name, as the QGIS reader expands them
            colours, band_mask = palette.expand_band(band, _table(entries), value, [],
                                                     detect_collar=not facts.has_alpha)
            arrays.extend(colours)
            mask |= band_mask
            continue
        mask |= nodata.band_nodata(band, value, [], detect_collar=not facts.has_alpha)
        arrays.append(band)
    data = np.stack(arrays)
    if facts.alpha_band is not None:
        mask |= nodata.alpha_nodata(src.read(facts.alpha_band, **kw))
    elif facts.mask_as_alpha:
        mask |= nodata.alpha_nodata(src.read_masks(facts.bands[0], **kw))
    return data, mask


@lru_cache(maxsize=16)
def _table(entries: tuple) -> np.ndarray:
    return palette.lookup_table(entries)


def read_cell(src, facts: RasterFacts, cell: Cell, input_size: int, min_valid_fraction: float) -> CellPixels | None:
    """The cell's pixels, padded as nodata beyond the raster; None when too little of it lies on the raster."""
    full = (cell.xmin, cell.ymin, cell.xmax, cell.ymax)
    px, py = facts.pixel_size
    got = _intersect(full, facts.extent)
    if got is None or _area(got) < min_valid_fraction * _area(full) * (1 - 1e-9):
        return None
    if got[2] - got[0] < px / 2 or got[3] - got[1] < py / 2:
        return None
    width, height = read_block_size((got[2] - got[0]) / px, (got[3] - got[1]) / py, input_size)
    data, mask = _read_block(src, facts, got, width, height)
    if got == full:
        return CellPixels(data, mask, got, width, height)
    sx, sy = (got[2] - got[0]) / width, (got[3] - got[1]) / height
    full_w = max(width, int(round((full[2] - full[0]) / sx)))
    full_h = max(height, int(round((full[3] - full[1]) / sy)))
    col0 = min(full_w - width, max(0, int(round((got[0] - full[0]) / sx))))
    row0 = min(full_h - height, max(0, int(round((full[3] - got[3]) / sy))))
    padded = np.zeros((data.shape[0], full_h, full_w), data.dtype)
    padded_mask = np.ones((full_h, full_w), bool)
    padded[:, row0:row0 + height, col0:col0 + width] = data
    padded_mask[row0:row0 + height, col0:col0 + width] = mask
    return CellPixels(padded, padded_mask, full, full_w, full_h)
