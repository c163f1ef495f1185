"""Paletted (colour-table) rasters: an index names a colour, it is not a brightness.

Classifying the indices themselves would feed the model an arbitrary permutation of grey levels (a GIF's or a
paletted GeoTIFF's table is ordered by how often a colour occurs, or at random); the picture is the colours the
table maps them to. Both readers (QGIS's and the image command line's) build a lookup table from their colour
table and expand through it here; a transparent entry is nodata, as an alpha band is.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from . import nodata


def lookup_table(entries: Iterable[tuple[int, tuple[int, ...]]]) -> np.ndarray:
    """An (n + 1, 4) uint8 RGBA table from ``(index, (r, g, b[, a]))`` entries. Indices no entry names, and the
    extra last row that stands for every index past the table's end, are transparent."""
    named = {int(i): tuple(colour) for i, colour in entries if int(i) >= 0}
    table = np.zeros((max(named, default=-1) + 2, 4), np.uint8)
    for i, colour in named.items():
        table[i] = (*colour[:3], colour[3] if len(colour) > 3 else 255)
    return table


def expand(indices: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3, H, W) uint8 colours of an (H, W) index array, and where it is transparent (alpha 0, or an index the
    table does not name)."""
    last = len(table) - 1
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where((idx >= 0) & (idx < last), idx, last)
    rgba = table[idx]
    return np.moveaxis(rgba[..., :3], -1, 0), rgba[..., 3] == 0


def expand_band(indices: np.ndarray, table: np.ndarray, nodata_value: float | None,
                user_ranges: list[tuple[float, float]], detect_collar: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A paletted band as its (3, H, W) colours and their nodata mask, the mask the same picture stored as RGB
    would get: declared nodata indices and transparent entries, else (nothing declared) a black collar."""
    colours, mask = expand(indices, table)
    mask |= nodata.band_nodata(indices, nodata_value, user_ranges, detect_collar=False)
    if detect_collar and nodata_value is None and not user_ranges:
        for channel in colours:
            mask |= nodata.edge_zero_runs(channel)
    return colours, mask
