"""Pixels -> decisions: the one function the map tool, Processing, the image CLI and benchmarks share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .calibrate import Decision, decide
from .preprocess import MostlyNodataError, preprocess
from .session import TerrainModel


@dataclass(frozen=True)
class ImageResult:
    """A decision for one image, or the reason it was not classified (``decision`` is then None)."""

    decision: Decision | None
    valid_fraction: float
    skipped_reason: str = ""


def classify_blocks(model: TerrainModel, blocks: Sequence[np.ndarray],
                    nodata_masks: Sequence[np.ndarray | None] | None = None, body: str | None = None,
                    threshold: float | None = None) -> list[ImageResult]:
    """Classify raw raster blocks in one batch; mostly-nodata blocks are skipped with their reason."""
    masks = list(nodata_masks) if nodata_masks is not None else [None] * len(blocks)
    tensors, where, results = [], [], []
    for i, (block, mask) in enumerate(zip(blocks, masks)):
        try:
            prepared = preprocess(block, model.contract, mask)
        except MostlyNodataError as exc:
            results.append(ImageResult(None, exc.valid_fraction, str(exc)))
            continue
        tensors.append(prepared.tensor)
        where.append(i)
        results.append(ImageResult(None, prepared.valid_fraction))
    if tensors:
        decisions = decide(model.logits(np.stack(tensors)), model.contract, body, threshold)
        for i, d in zip(where, decisions):
            results[i] = ImageResult(d, results[i].valid_fraction)
    return results


def batched(items: Iterable, size: int) -> Iterable[list]:
    """Yield lists of at most ``size`` items; the streaming unit of grid runs and benchmarks."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
