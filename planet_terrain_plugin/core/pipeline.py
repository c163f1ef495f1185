"""Pixels -> decisions: the one function the map tool, Processing, the image CLI and benchmarks share."""
from __future__ import annotations

from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from itertools import islice
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from .calibrate import Decision, decide
from .contract import ModelContract
from .input_check import noise_like
from .preprocess import mostly_nodata_message, preprocess_many
from .session import TerrainModel

T = TypeVar("T")
R = TypeVar("R")


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
    """Preprocess raw raster blocks (vectorised over blocks of one shape); mostly-nodata blocks are skipped with
    their reason."""
    tensors, usable, fractions = preprocess_many(list(blocks), contract, nodata_masks)
    ok = set(usable)
    results = tuple(ImageResult(None, f) if i in ok else ImageResult(None, f, mostly_nodata_message(f, contract))
                    for i, f in enumerate(fractions))
    return PreparedBatch(tensors, tuple(usable), results)


def decide_prepared(model: TerrainModel, batch: PreparedBatch, body: str | None = None,
                    threshold: float | None = None, max_batch: int | None = None) -> list[ImageResult]:
    """Run the model on a prepared batch and turn its logits into decisions.

    ``max_batch``: the most images per onnxruntime call (a grid reads and writes in larger chunks than it infers).
    """
    results = list(batch.results)
    if batch.tensors is not None:
        step = max_batch or len(batch.tensors)
        outs = [model.run(batch.tensors[i:i + step]) for i in range(0, len(batch.tensors), step)]
        scores = None if outs[0].ood_score is None else np.concatenate([o.ood_score for o in outs])
        decisions = decide(np.concatenate([o.logits for o in outs]), model.contract, body, threshold, scores,
                           noise_like(batch.tensors))
        for i, d in zip(batch.usable, decisions):
            results[i] = ImageResult(d, results[i].valid_fraction)
    return results


def classify_blocks(model: TerrainModel, blocks: Sequence[np.ndarray],
                    nodata_masks: Sequence[np.ndarray | None] | None = None, body: str | None = None,
                    threshold: float | None = None) -> list[ImageResult]:
    """Classify raw raster blocks in one batch; mostly-nodata blocks are skipped with their reason."""
    return decide_prepared(model, prepare_blocks(model.contract, blocks, nodata_masks), body, threshold)


def run_ahead(items: Iterable[T], fn: Callable[[T], R], executor: Executor, depth: int = 1) -> Iterator[R]:
    """``fn(item)`` for each item, in order, up to ``depth`` computed on ``executor`` while the caller uses one.

    The stage of a streaming pipeline: chained (``run_ahead(run_ahead(batches, read, reader), infer, runners, 2)``),
    each stage works ahead of the next, so reading, inference and writing overlap while at most ``depth`` items
    per stage are in flight (give the executor ``depth`` workers for them to run side by side). Items are pulled
    from ``items`` on the caller's thread. An exception of ``fn`` is raised here, at the item it belongs to.
    Closing the generator early (the caller stops, e.g. on cancel) submits nothing more; the executor's
    shutdown waits for the calls in flight.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    it = iter(items)
    pending: deque = deque(executor.submit(fn, item) for item in islice(it, depth))
    while pending:
        result = pending.popleft().result()
        for item in islice(it, 1):
            pending.append(executor.submit(fn, item))
        yield result
