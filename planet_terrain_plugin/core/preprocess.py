"""Raster block -> model input tensor, identical in the plugin and in training.

The network was trained on 8-bit grayscale HiRISE crops. A user's raster may be 8/16-bit, float, 1 or many
bands, with nodata. Every image therefore takes the same path, here and in ``training/`` (which imports this
module rather than re-implementing it):

1. luminance: one channel (Rec. 601 weights on the first three bands; a single band as is; alpha ignored);
2. a per-image percentile stretch of the valid pixels to 0..255, rounded to 8 bits -- the 8-bit look the
   training crops have, whatever the source data type;
3. nodata pixels filled with the mean of the valid stretched pixels (neutral grey for the network);
4. antialiased bilinear resize to the contract's input size (separable, exact, numpy only);
5. replicated to 3 channels and normalised with the contract's mean/std.

Only numpy: the plugin core must import without Qt or torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .contract import ModelContract

#: Rec. 601 luma weights, used for 3+ band rasters (bands beyond the third, e.g. alpha, are ignored).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class MostlyNodataError(ValueError):
    """The image has too few valid pixels to be classified honestly; ``valid_fraction`` says how few."""

    def __init__(self, message: str, valid_fraction: float) -> None:
        super().__init__(message)
        self.valid_fraction = valid_fraction


@dataclass(frozen=True)
class PreparedImage:
    """A model-ready tensor with what the caller needs to report about it."""

    tensor: np.ndarray  # float32 (3, S, S)
    valid_fraction: float


def to_luminance(block: np.ndarray) -> np.ndarray:
    """(H, W) or (bands, H, W) of any numeric dtype -> float64 (H, W) luminance.

    Non-finite values are kept as NaN so the caller's nodata mask can include them.
    """
    arr = np.asarray(block)
    if arr.ndim == 2:
        lum = arr.astype(np.float64)
    elif arr.ndim == 3:
        if arr.shape[0] == 0:
            raise ValueError(f"the image has no bands (shape {arr.shape}); pick a raster with at least one band")
        if arr.shape[0] >= 3:
            rgb = arr[:3].astype(np.float64)
            rgb[~np.isfinite(rgb)] = np.nan  # inf + -inf across bands would be an invalid operation
            lum = LUMA_WEIGHTS[0] * rgb[0] + LUMA_WEIGHTS[1] * rgb[1] + LUMA_WEIGHTS[2] * rgb[2]
        else:  # 1 band, or gray + alpha
            lum = arr[0].astype(np.float64)
    else:
        raise ValueError(f"expected a (H, W) or (bands, H, W) array, got shape {arr.shape}")
    if lum.size == 0:
        raise ValueError(f"the image is empty (shape {arr.shape})")
    lum = lum.copy()
    lum[~np.isfinite(lum)] = np.nan
    return lum


def valid_mask(lum: np.ndarray, nodata_mask: np.ndarray | None = None) -> np.ndarray:
    """True where a pixel is usable: finite and not flagged as nodata by the source."""
    valid = np.isfinite(lum)
    if nodata_mask is not None:
        if nodata_mask.shape != lum.shape:
            raise ValueError(f"nodata mask shape {nodata_mask.shape} differs from image shape {lum.shape}")
        valid &= ~nodata_mask.astype(bool)
    return valid


def percentiles_of(values: np.ndarray, q: tuple[float, float]) -> tuple[float, float]:
    """``np.percentile(values, q)`` (linear interpolation), exactly, but fast for integer-valued pixels.

    Most rasters are 8/16-bit integers. For those, order statistics come from a histogram (one bincount, no
    sort), which is several times faster per cell than numpy's partition and gives the identical value.
    """
    lo_v, hi_v = values.min(), values.max()
    span = hi_v - lo_v
    if span > 65535 or not np.array_equal(values, np.floor(values)):  # wide or fractional: numpy's way
        lo, hi = np.percentile(values, q)
        return float(lo), float(hi)
    counts = np.bincount((values - lo_v).astype(np.int64), minlength=int(span) + 1)
    cdf = np.cumsum(counts)
    out = []
    for pct in q:
        pos = pct / 100.0 * (values.size - 1)
        below, frac = int(np.floor(pos)), pos - np.floor(pos)
        a = np.searchsorted(cdf, below + 1)  # value of the order statistic at index `below`
        b = np.searchsorted(cdf, min(below + 2, values.size))
        va, vb = float(lo_v) + a, float(lo_v) + b
        # numpy's own lerp, including its switch at t >= 0.5, so the result is bit-identical.
        out.append(vb - (vb - va) * (1 - frac) if frac >= 0.5 else va + (vb - va) * frac)
    return out[0], out[1]


def stretch_to_uint8(lum: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Percentile stretch of the valid pixels to 0..255 (uint8); invalid pixels get the valid mean.

    A flat image (low == high percentile) maps to mid-grey rather than dividing by zero.
    """
    values = lum[valid]
    if values.size == 0:
        return np.full(lum.shape, 128, dtype=np.uint8)
    lo, hi = percentiles_of(values, percentiles)
    # Halving before subtracting keeps hi - lo finite for values spanning all of float64 (-1e308..1e308);
    # halving is exact in binary floating point, so ordinary images give bit-identical results.
    if not np.isfinite(lo) or not np.isfinite(hi) or not hi / 2 - lo / 2 > 1e-300:
        out = np.full(lum.shape, 128.0)
    else:
        out = (np.where(valid, lum, lo) / 2 - lo / 2) * (255.0 / (hi / 2 - lo / 2))
        out = np.clip(out, 0.0, 255.0)
    out = np.rint(out)
    if not valid.all():
        out[~valid] = np.rint(out[valid].mean())
    return out.astype(np.uint8)


@lru_cache(maxsize=64)
def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of an antialiased linear (triangle) filter, rows summing to 1.

    The same scheme as PIL's BILINEAR reduce: the filter support widens by the scale factor when shrinking,
    so downsampling averages instead of aliasing.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale  # output pixel centres in input coordinates
    src = np.arange(n_in) + 0.5
    dist = np.abs(src[None, :] - centres[:, None]) / support
    weights = np.clip(1.0 - dist, 0.0, None)
    sums = weights.sum(axis=1, keepdims=True)
    # A zero row can only happen for degenerate sizes; fall back to nearest neighbour there.
    empty = sums[:, 0] == 0
    if empty.any():
        nearest = np.clip(np.floor(centres[empty]).astype(int), 0, n_in - 1)
        weights[empty] = 0.0
        weights[np.nonzero(empty)[0], nearest] = 1.0
        sums = weights.sum(axis=1, keepdims=True)
    return weights / sums


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of a 2-D array to (size, size), float64."""
    h, w = image.shape
    rows = _resample_matrix(h, size)
    cols = _resample_matrix(w, size)
    return rows @ image.astype(np.float64) @ cols.T


def normalise(gray01: np.ndarray, contract: ModelContract) -> np.ndarray:
    """(S, S) values in [0, 1] -> float32 (3, S, S) normalised with the contract's mean/std."""
    mean = np.asarray(contract.mean, dtype=np.float64)[:, None, None]
    std = np.asarray(contract.std, dtype=np.float64)[:, None, None]
    return ((gray01[None, :, :] - mean) / std).astype(np.float32)


def stretched_gray(block: np.ndarray, contract: ModelContract,
                   nodata_mask: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Steps 1-3: luminance, 8-bit stretch, nodata fill. Returns (uint8 (H, W), valid fraction).

    Training caches this 8-bit image and augments it; the plugin goes straight on to :func:`finish`.
    """
    lum = to_luminance(block)
    valid = valid_mask(lum, nodata_mask)
    fraction = float(valid.mean())
    return stretch_to_uint8(lum, valid, contract.stretch_percentiles), fraction


def finish(gray8: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Steps 4-5: resize an 8-bit image to the input size, replicate to 3 channels, normalise."""
    return normalise(resize(gray8, contract.input_size) / 255.0, contract)


def preprocess(block: np.ndarray, contract: ModelContract, nodata_mask: np.ndarray | None = None,
               require_valid: bool = True) -> PreparedImage:
    """The whole path for one image. Raises :class:`MostlyNodataError` below the contract's valid share."""
    lum = to_luminance(block)
    valid = valid_mask(lum, nodata_mask)
    fraction = float(valid.mean())
    if require_valid and fraction < contract.min_valid_fraction:  # before any work: grids skip many such cells
        raise MostlyNodataError(
            f"only {fraction:.0%} of the pixels are valid data (at least {contract.min_valid_fraction:.0%} "
            "needed); choose an area inside the image, away from its nodata border", fraction)
    gray8 = stretch_to_uint8(lum, valid, contract.stretch_percentiles)
    return PreparedImage(finish(gray8, contract), fraction)


def preprocess_batch(blocks: list[np.ndarray], contract: ModelContract,
                     nodata_masks: list[np.ndarray | None] | None = None) -> np.ndarray:
    """Stack several images into a float32 (N, 3, S, S) batch (all must be valid enough)."""
    masks = nodata_masks or [None] * len(blocks)
    return np.stack([preprocess(b, contract, m).tensor for b, m in zip(blocks, masks)])
