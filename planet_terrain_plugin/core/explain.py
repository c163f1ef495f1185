"""Why a cell got its label: occlusion sensitivity on the model input, with numpy and the session only.

A grey patch (the normalisation's mean: zero in the normalised input, which is what the network saw in training
for a mid-grey pixel) is slid over the cell *as the model sees it* (the preprocessed ``(3, S, S)`` tensor), and
every occluded copy is run through the same session; the drop in the probability of the explained class
(temperature and body renormalisation applied, as in the ``p_*`` fields) is where the evidence for the label
lies. Positive: hiding that part lowers the label's probability; negative: hiding it raises it.

Layout: the input is cut into ``S / stride`` x ``S / stride`` blocks of ``stride`` pixels, and the patch of
block (i, j) is centred on that block (clipped at the edges). So heatmap pixel (i, j) covers exactly block
(i, j) of the input, and the heatmap maps onto the cell's extent with no offset: a georeferenced layer of it
lies on the cell. The default patch and stride take about a second on two CPU cores with the int8 model.

Cancellable between batches (``cancelled`` polled), with progress (0..100) after each batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .calibrate import restrict_to_body, softmax
from .contract import ModelContract
from .session import NetworkOutputs, TerrainModel

#: Side of the grey patch and step between patch centres, in model-input pixels (96 px input: 24 x 24 map).
PATCH_PX = 16
STRIDE_PX = 4
#: Occluded images per onnxruntime call: cancel and progress are checked between calls.
BATCH = 32


class ExplainCancelled(Exception):
    """The user cancelled the explanation; nothing was produced."""


@dataclass(frozen=True)
class Occlusion:
    """The occlusion map of one cell for one class.

    ``drop[i, j]``: the class's probability without occlusion minus with the patch on block (i, j); block (0, 0)
    is the top-left of the cell (north-west on a north-up raster).
    """

    drop: np.ndarray  # float32 (S / stride, S / stride)
    class_index: int  # in the contract's class order
    base_probability: float
    patch: int
    stride: int


def class_to_explain(contract: ModelContract, label: str, probs: Sequence[float]) -> int:
    """The class index whose probability is explained: the label's, or the most probable class when the cell is
    ``unknown`` (the class it came closest to)."""
    if label in contract.class_names:
        return contract.class_names.index(label)
    values = np.nan_to_num(np.asarray(probs, np.float64), nan=-1.0)
    return int(values.argmax())


def class_probabilities(outputs: NetworkOutputs, contract: ModelContract, body: str | None) -> np.ndarray:
    """(N, C) calibrated probabilities, body-renormalised: the values the ``p_*`` fields hold."""
    probs, _ = restrict_to_body(softmax(outputs.logits, contract.temperature), contract, body)
    return probs


def patch_windows(size: int, patch: int = PATCH_PX, stride: int = STRIDE_PX) -> list[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) of the patch of each block, row-major (see the module docstring)."""
    if stride < 1 or patch < 1 or size % stride:
        raise ValueError(f"the stride {stride} must divide the input size {size}, and the patch must be >= 1 px")
    starts = [b * stride + (stride - patch) // 2 for b in range(size // stride)]
    spans = [(max(0, s), min(size, s + patch)) for s in starts]
    return [(r0, r1, c0, c1) for r0, r1 in spans for c0, c1 in spans]


def occluded(tensor: np.ndarray, windows: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    """Copies of a (3, S, S) input, each with one window set to the normalisation's mean (0 once normalised)."""
    batch = np.repeat(tensor[None], len(windows), axis=0)
    for k, (r0, r1, c0, c1) in enumerate(windows):
        batch[k, :, r0:r1, c0:c1] = 0.0
    return batch


def occlusion_map(model: TerrainModel, tensor: np.ndarray, class_index: int, body: str | None = None,
                  patch: int = PATCH_PX, stride: int = STRIDE_PX, batch: int = BATCH,
                  progress: Callable[[float], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> Occlusion:
    """The occlusion map of ``tensor`` (one preprocessed (3, S, S) input) for ``class_index``.

    Raises :class:`ExplainCancelled` when ``cancelled()`` turns True between batches.
    """
    contract, size = model.contract, tensor.shape[-1]
    tensor = np.asarray(tensor, np.float32)
    base = float(class_probabilities(model.run(tensor[None]), contract, body)[0, class_index])
    windows = patch_windows(size, patch, stride)
    drops = np.empty(len(windows), np.float32)
    for start in range(0, len(windows), batch):
        if cancelled is not None and cancelled():
            raise ExplainCancelled("the explanation was cancelled; no heatmap was made")
        part = windows[start:start + batch]
        probs = class_probabilities(model.run(occluded(tensor, part)), contract, body)[:, class_index]
        drops[start:start + len(part)] = base - probs
        if progress is not None:
            progress(100.0 * (start + len(part)) / len(windows))
    side = size // stride
    return Occlusion(drops.reshape(side, side), class_index, base, patch, stride)


def embedding_of(model: TerrainModel, tensor: np.ndarray) -> np.ndarray | None:
    """The network's embedding of one (3, S, S) input (None for a model without that output)."""
    out = model.run(np.asarray(tensor, np.float32)[None])
    return None if out.embedding is None else np.asarray(out.embedding[0], np.float32)
