"""Raster block -> model input tensor, identical in the plugin and in training.

The network was trained on 8-bit grayscale HiRISE crops. A user's raster may be 8/16-bit, float, 1 or many
bands, with nodata. Every image therefore takes the same path, here and in ``training/`` (which imports this
module rather than re-implementing it):

1. luminance: one channel (Rec. 601 weights on the first three bands; a single band as is; alpha ignored);
2. a per-image percentile stretch of the valid pixels to 0..255, rounded to 8 bits -- the 8-bit look the
   training crops have, whatever the source data type;
3. nodata pixels filled with the mean of the valid stretched pixels (neutral grey for the network);
4. antialiased bilinear resize to the contract's input size (separable, numpy only, in float32);
5. replicated to 3 channels and normalised with the contract's mean/std.

A grid runs the same steps on many cells at once (:func:`preprocess_many`), to float rounding the same.

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
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected a (H, W) or (bands, H, W) array, got shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[0] == 0:
        raise ValueError(f"the image has no bands (shape {arr.shape}); pick a raster with at least one band")
    if arr.size == 0:
        raise ValueError(f"the image is empty (shape {arr.shape})")
    return _stack_luminance((arr if arr.ndim == 3 else arr[None])[None])[0]


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
        below, frac = _rank(pct, values.size)
        a = np.searchsorted(cdf, below + 1)  # value of the order statistic at index `below`
        b = np.searchsorted(cdf, min(below + 2, values.size))
        out.append(_lerp(float(lo_v) + a, float(lo_v) + b, frac))
    return out[0], out[1]


def _rank(pct: float, n: int) -> tuple[int, float]:
    """Where percentile ``pct`` of ``n`` sorted values lies: the index below it and the fraction past it."""
    pos = pct / 100.0 * (n - 1)
    return int(np.floor(pos)), pos - np.floor(pos)


def _lerp(va, vb, frac: float):
    """numpy's own percentile interpolation, including its switch at t >= 0.5, so results are bit-identical."""
    return vb - (vb - va) * (1 - frac) if frac >= 0.5 else va + (vb - va) * frac


def _scale_to_255(values: np.ndarray, lo, hi) -> np.ndarray:
    """``values`` mapped from [lo, hi] onto 0..255 (float, clipped, not rounded); mid-grey 128 where that range
    is flat or not finite (``lo``/``hi`` scalars, or arrays broadcasting against ``values``).

    Halving before subtracting keeps hi - lo finite for values spanning all of float64 (-1e308..1e308);
    halving is exact in binary floating point, so ordinary images give bit-identical results.
    """
    with np.errstate(all="ignore"):  # flat or overflowing ranges are replaced below
        span = np.asarray(hi / 2 - lo / 2)
        out = np.clip((values / 2 - lo / 2) * (255.0 / span), 0.0, 255.0)
        flat = ~(np.isfinite(lo) & np.isfinite(hi) & (span > 1e-300))
    return np.where(flat, 128.0, out)


def stretch_to_uint8(lum: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Percentile stretch of the valid pixels to 0..255 (uint8); invalid pixels get the valid mean.

    A flat image (low == high percentile) maps to mid-grey rather than dividing by zero.
    """
    values = lum[valid]
    if values.size == 0:
        return np.full(lum.shape, 128, dtype=np.uint8)
    lo, hi = percentiles_of(values, percentiles)
    out = np.rint(_scale_to_255(np.where(valid, lum, lo), lo, hi))
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
    """Steps 4-5: resize an 8-bit image to the input size, replicate to 3 channels, normalise (float32)."""
    return finish_many(np.asarray(gray8)[None], contract)[0]


def mostly_nodata_message(fraction: float, contract: ModelContract) -> str:
    """Why an image with only ``fraction`` valid pixels is not classified, and what to do."""
    return (f"only {fraction:.0%} of the pixels are valid data (at least {contract.min_valid_fraction:.0%} "
            "needed); choose an area inside the image, away from its nodata border")


def preprocess(block: np.ndarray, contract: ModelContract, nodata_mask: np.ndarray | None = None,
               require_valid: bool = True) -> PreparedImage:
    """The whole path for one image. Raises :class:`MostlyNodataError` below the contract's valid share."""
    lum = to_luminance(block)
    valid = valid_mask(lum, nodata_mask)
    fraction = float(valid.mean())
    if require_valid and fraction < contract.min_valid_fraction:  # before any work: grids skip many such cells
        raise MostlyNodataError(mostly_nodata_message(fraction, contract), fraction)
    gray8 = stretch_to_uint8(lum, valid, contract.stretch_percentiles)
    return PreparedImage(finish(gray8, contract), fraction)


def _stack_luminance(stack: np.ndarray) -> np.ndarray:
    """:func:`to_luminance` of N same-shaped (bands, H, W) blocks at once: float64 (N, H, W), NaN where not finite."""
    if stack.shape[1] >= 3:
        rgb = stack[:, :3].astype(np.float64)
        rgb[~np.isfinite(rgb)] = np.nan
        lum = LUMA_WEIGHTS[0] * rgb[:, 0] + LUMA_WEIGHTS[1] * rgb[:, 1] + LUMA_WEIGHTS[2] * rgb[:, 2]
    else:
        lum = stack[:, 0].astype(np.float64)
    lum[~np.isfinite(lum)] = np.nan
    return lum


def _order_statistics(rows: np.ndarray, ranks: list[int]) -> list[np.ndarray]:
    """The values at sorted positions ``ranks`` of every row of a float64 (N, n) array.

    Integer-valued rows of a modest range (8/16-bit rasters) are counted in one histogram of the whole stack,
    several times faster than a partition; anything else is partitioned. Both are exact.
    """
    low = rows.min(axis=1, keepdims=True)
    offsets = rows - low
    span = float(offsets.max()) + 1 if offsets.size else 1.0
    if span * len(rows) <= 2**22 and np.array_equal(offsets, np.floor(offsets)):
        bins = int(span)
        index = offsets.astype(np.int64) + (np.arange(len(rows)) * bins)[:, None]
        cdf = np.cumsum(np.bincount(index.ravel(), minlength=len(rows) * bins).reshape(len(rows), bins), axis=1)
        return [low[:, 0] + (cdf <= k).sum(axis=1) for k in ranks]  # first value whose count passes rank k
    parted = np.partition(rows, sorted(set(ranks)), axis=1)
    return [parted[:, k] for k in ranks]


def _stretch_full_rows(lum: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """:func:`stretch_to_uint8` of N (H, W) images whose pixels are all valid, at once, bit-identically.

    All rows have the same number of values, so each percentile sits at the same sorted positions in every row;
    numpy's own linear interpolation between them follows (as in :func:`percentiles_of`).
    """
    n = lum.shape[1] * lum.shape[2]
    places = [_rank(pct, n) for pct in percentiles]
    ranks = [r for below, _ in places for r in (below, min(below + 1, n - 1))]
    stats = _order_statistics(lum.reshape(len(lum), n), ranks)
    lo, hi = (_lerp(stats[2 * k], stats[2 * k + 1], frac)[:, None, None] for k, (_, frac) in enumerate(places))
    return np.rint(_scale_to_255(lum, lo, hi)).astype(np.uint8)


@lru_cache(maxsize=64)
def _resample_matrix32(n_in: int, n_out: int) -> np.ndarray:
    return _resample_matrix(n_in, n_out).astype(np.float32)


def finish_many(gray8: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Steps 4-5 for N same-shaped 8-bit images at once: (N, H, W) uint8 -> float32 (N, 3, S, S).

    float32 throughout (the network's input type; half the time of float64 in a grid, where this is the
    reader's largest cost): resize, then each channel's ``(x / 255 - mean) / std`` as one multiply-add.
    Channels with the same mean and std (a grey model's usual case) are computed once and copied.
    """
    size = contract.input_size
    rows = _resample_matrix32(gray8.shape[1], size)
    cols = _resample_matrix32(gray8.shape[2], size)
    gray = rows @ gray8.astype(np.float32) @ cols.T
    out = np.empty((len(gray8), 3, size, size), np.float32)
    done: dict[tuple[float, float], int] = {}
    for channel, (mean, std) in enumerate(zip(contract.mean, contract.std)):
        if (mean, std) in done:
            out[:, channel] = out[:, done[mean, std]]
            continue
        np.multiply(gray, np.float32(1.0 / (255.0 * std)), out=out[:, channel])
        out[:, channel] -= np.float32(mean / std)
        done[mean, std] = channel
    return out


def preprocess_many(blocks: list[np.ndarray], contract: ModelContract,
                    nodata_masks: list[np.ndarray | None] | None = None
                    ) -> tuple[np.ndarray | None, list[int], list[float]]:
    """:func:`preprocess` of many blocks, vectorised over blocks of one shape: a grid's cells, thousands a second.

    Returns ``(tensors, usable, fractions)``: float32 (len(usable), 3, S, S) tensors (None when no block is
    usable) of the blocks at indices ``usable`` (ascending; the others are below the contract's valid share),
    and every block's valid fraction. Blocks with every pixel valid (the bulk of a grid) are stretched
    together; the others take :func:`stretch_to_uint8` one by one; all are finished together. The result equals
    :func:`preprocess`'s to the float rounding of a batched matrix product (a test holds them together).
    """
    masks = list(nodata_masks) if nodata_masks is not None else [None] * len(blocks)
    fractions = [0.0] * len(blocks)
    groups: dict[tuple, list[int]] = {}
    for i, block in enumerate(blocks):
        arr = np.asarray(block)
        groups.setdefault((arr.shape if arr.ndim == 3 else (1,) + arr.shape, arr.dtype.str), []).append(i)
    plan: list[tuple[list[int], np.ndarray]] = []  # (block indices, their 8-bit images) per shape
    for (shape, _), members in groups.items():
        if len(shape) != 3 or 0 in shape:  # malformed: preprocess names the problem
            for i in members:
                preprocess(blocks[i], contract, masks[i])
            continue
        lum = _stack_luminance(np.stack([np.asarray(blocks[i]).reshape(shape) for i in members]))
        valid = np.isfinite(lum)
        masked = [k for k, i in enumerate(members) if masks[i] is not None]
        for k in masked:
            if masks[members[k]].shape != lum.shape[1:]:
                raise ValueError(f"nodata mask shape {masks[members[k]].shape} differs from image shape "
                                 f"{lum.shape[1:]}")
        if masked:
            valid[masked] &= ~np.stack([masks[members[k]] for k in masked]).astype(bool)
        share = valid.mean(axis=(1, 2))
        for i, fraction in zip(members, share.tolist()):
            fractions[i] = fraction
        keep = np.flatnonzero(share >= contract.min_valid_fraction)
        if not len(keep):
            continue
        full = valid[keep].all(axis=(1, 2))
        gray8 = np.empty((len(keep),) + lum.shape[1:], np.uint8)
        if full.any():
            gray8[full] = _stretch_full_rows(lum[keep[full]], contract.stretch_percentiles)
        for j in np.flatnonzero(~full):
            gray8[j] = stretch_to_uint8(lum[keep[j]], valid[keep[j]], contract.stretch_percentiles)
        plan.append(([members[k] for k in keep], gray8))
    usable = sorted(i for indices, _ in plan for i in indices)
    if not usable:
        return None, [], fractions
    if len(plan) == 1:  # one shape, the usual case: already in order
        return finish_many(plan[0][1], contract), usable, fractions
    place = {i: p for p, i in enumerate(usable)}
    size = contract.input_size
    tensors = np.empty((len(usable), 3, size, size), np.float32)
    for indices, gray8 in plan:
        tensors[[place[i] for i in indices]] = finish_many(gray8, contract)
    return tensors, usable, fractions
