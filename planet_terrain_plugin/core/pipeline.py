"""Pixels -> decisions: the one function the map tool, Processing, the image CLI and benchmarks share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .calibrate import Decision, decide
from .contract import ModelContract
from .preprocess import MostlyNodataError, preprocess
from .session import TerrainModel


@dataclass(frozen=True)
class ImageResult:
    """A decision for one image, or the reason it was not classified (``decision`` is then None)."""

    decision: Decision | None
    valid_fraction: float
    skipped_reason: str = ""


@dataclass(frozen=True)
class PreparedBatch:
    """Model-ready tensors of the usable images of a batch, and the placeholder result of every image.

    Preparing (preprocessing) and deciding (inference) are separate steps so a grid run can prepare the next
    batch on a reader thread while onnxruntime, which releases the GIL, runs the current one.
    """

    tensors: np.ndarray | None  # float32 (n_usable, 3, S, S), None when no image is usable
    usable: tuple[int, ...]  # indices of the images that have a tensor
    results: tuple[ImageResult, ...]  # decision None everywhere; skipped ones carry their reason


def prepare_blocks(contract: ModelContract, blocks: Sequence[np.ndarray],
                   nodata_masks: Sequence[np.ndarray | None] | None = None) -> PreparedBatch:
    """Preprocess raw raster blocks; mostly-nodata blocks are skipped with their reason."""
    masks = list(nodata_masks) if nodata_masks is not None else [None] * len(blocks)
    tensors, usable, results = [], [], []
    for i, (block, mask) in enumerate(zip(blocks, masks)):
        try:
            prepared = preprocess(block, contract, mask)
        except MostlyNodataError as exc:
            results.append(ImageResult(None, exc.valid_fraction, str(exc)))
            continue
        tensors.append(prepared.tensor)
        usable.append(i)
        results.append(ImageResult(None, prepared.valid_fraction))
    return PreparedBatch(np.stack(tensors) if tensors else None, tuple(usable), tuple(results))


def decide_prepared(model: TerrainModel, batch: PreparedBatch, body: str | None = None,
                    threshold: float | None = None) -> list[ImageResult]:
    """Run the model on a prepared batch and turn its logits into decisions."""
    results = list(batch.results)
    if batch.tensors is not None:
        decisions = decide(model.logits(batch.tensors), model.contract, body, threshold)
        for i, d in zip(batch.usable, decisions):
            results[i] = ImageResult(d, results[i].valid_fraction)
    return results


def classify_blocks(model: TerrainModel, blocks: Sequence[np.ndarray],
                    nodata_masks: Sequence[np.ndarray | None] | None = None, body: str | None = None,
                    threshold: float | None = None) -> list[ImageResult]:
    """Classify raw raster blocks in one batch; mostly-nodata blocks are skipped with their reason."""
    return decide_prepared(model, prepare_blocks(model.contract, blocks, nodata_masks), body, threshold)


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
