"""How small and how large a picture the pipeline reads, shared by QGIS's reader and the image command line.

Both limits follow from how the model input is made: the block read is resized (antialiased) to the contract's
``input_size``.
"""
from __future__ import annotations

#: Fewest source pixels an image (an extent, a grid cell, an image file) must span along its shorter side to be
#: classified. A block of a handful of pixels would reach the network as an upsampled blur of a few grey values,
#: and whatever it answered would describe the interpolation, not terrain. 8 px is already a 12x magnification
#: for the shipped model (96 px input): anything smaller is refused with a message instead of being given a
#: confident-looking label.
MIN_EXTENT_PIXELS = 8

#: Longest side of a block read, in multiples of the model input size: a larger image is read reduced to this
#: (overviews or a decimated read), which bounds memory and time, while the final antialiased reduction to the
#: input size stays with the core's resize.
OVERSAMPLE = 4


def max_read_side(input_size: int) -> int:
    """Longest side, in pixels, of the block read for a model with ``input_size`` px input."""
    return OVERSAMPLE * input_size


def read_block_size(width_px: float, height_px: float, input_size: int) -> tuple[int, int]:
    """(width, height) of the block read for an extent of ``width_px`` x ``height_px`` source pixels: native, or
    its longer side reduced to :func:`max_read_side` (aspect ratio kept). One rule for QGIS's reader and the
    batch command's."""
    native_w, native_h = max(1, round(width_px)), max(1, round(height_px))
    cap = max_read_side(input_size)
    longest = max(native_w, native_h)
    if longest <= cap:
        return native_w, native_h
    scale = cap / longest
    return max(1, round(native_w * scale)), max(1, round(native_h * scale))
