"""Which pixels of a block are not data: declared nodata, alpha/mask bands and undeclared zero collars.

Pure numpy (no Qt): shared by the QGIS reader and the image command line.

Planetary rasters flag missing data three ways, and all three occur in the shared test rasters:

* a declared nodata value (ISIS3 cubes: the NULL special pixel, e.g. -32768 for 16-bit);
* a GDAL mask that QGIS exposes as an extra *Alpha* band (ISIS3 cubes: every special pixel, LRS/HRS included,
  is 0 there, which catches the special pixels the nodata value alone misses);
* nothing at all: the Apollo 15 GeoTIFFs surround the rotated frame with a collar of exact zeros but declare
  no nodata value. Such a collar is recognised as runs of exact zeros that touch the edge of the block, row-
  or column-wise, and only in bands that declare no nodata. Interior black pixels (deep shadow) are kept.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np


def equals_value(data: np.ndarray, value: float) -> np.ndarray:
    """Pixels equal to a nodata ``value``, compared in the block's own dtype (float32 -3.4e38 included)."""
    if np.isnan(value):
        return np.isnan(data) if data.dtype.kind == "f" else np.zeros(data.shape, bool)
    if data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        if not (info.min <= value <= info.max) or value != int(value):
            return np.zeros(data.shape, bool)
    return data == np.asarray(value).astype(data.dtype)


def in_ranges(data: np.ndarray, ranges: Iterable[tuple[float, float]]) -> np.ndarray:
    """Pixels inside any closed ``(low, high)`` range: QGIS's user-defined "additional no data values"."""
    mask = np.zeros(data.shape, bool)
    for low, high in ranges:
        mask |= (data >= low) & (data <= high)
    return mask


def edge_zero_runs(data: np.ndarray) -> np.ndarray:
    """Exact zeros connected to the block's edge along their row or column (an undeclared fill collar).

    Vectorised with cumulative products: a pixel belongs to a run from the left edge when it and every pixel
    to its left are zero; the same from the right, top and bottom.
    """
    zero = (data == 0).astype(np.uint8)
    if not zero.any():
        return np.zeros(data.shape, bool)
    if zero.all():  # a block wholly inside a collar (a third of a grid over an Apollo frame)
        return np.ones(data.shape, bool)
    runs = np.cumprod(zero, axis=1) | np.cumprod(zero[:, ::-1], axis=1)[:, ::-1]
    runs |= np.cumprod(zero, axis=0) | np.cumprod(zero[::-1, :], axis=0)[::-1, :]
    return runs.astype(bool)


def band_nodata(data: np.ndarray, nodata_value: float | None, user_ranges: list[tuple[float, float]],
                detect_collar: bool = True) -> np.ndarray:
    """Nodata mask of one band: declared value, user ranges, non-finite values, else a zero collar."""
    mask = ~np.isfinite(data) if data.dtype.kind == "f" else np.zeros(data.shape, bool)
    declared = nodata_value is not None or bool(user_ranges)
    if nodata_value is not None:
        mask |= equals_value(data, nodata_value)
    if user_ranges:
        mask |= in_ranges(data, user_ranges)
    if not declared and detect_collar:
        mask |= edge_zero_runs(data)
    return mask


def alpha_nodata(alpha: np.ndarray) -> np.ndarray:
    """Fully transparent pixels of an alpha / GDAL mask band are nodata."""
    return alpha == 0
