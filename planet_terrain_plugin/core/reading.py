"""How many pixels a block is read at for an extent: one rule for the QGIS reader and the batch reader.

The core's antialiased resize (``core.preprocess``) makes the model input from whatever block it gets, exactly as
training made it from full-resolution crops, so a block is read at the raster's native resolution, unless the
extent spans more than ``OVERSAMPLE`` x the model input size in pixels: then its longer side is read at that
cap (aspect ratio kept), which bounds memory and time for huge extents while leaving the final antialiased
reduction to the core.
"""
from __future__ import annotations

#: Longest side of a read block, in multiples of the model input size.
OVERSAMPLE = 4


def block_size(width_px: float, height_px: float, input_size: int) -> tuple[int, int]:
    """(width, height) to read for an extent of ``width_px`` x ``height_px`` source pixels."""
    native_w, native_h = max(1, round(width_px)), max(1, round(height_px))
    cap = OVERSAMPLE * input_size
    longest = max(native_w, native_h)
    if longest <= cap:
        return native_w, native_h
    scale = cap / longest
    return max(1, round(native_w * scale)), max(1, round(native_h * scale))
