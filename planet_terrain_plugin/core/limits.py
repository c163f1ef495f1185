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
