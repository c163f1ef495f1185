"""Batched logits from a torch model on the deterministic (eval-mode) inputs."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .augment import dihedral
from .dataset import GrayCache, Record

#: The dihedral transforms (``augment.dihedral``'s k) averaged for each number of test-time views: 2 adds the
#: mirror image, 4 the half turn and its mirror (no transposition), 8 every rotation and flip.
TTA_VIEWS = {1: (0,), 2: (0, 4), 4: (0, 4, 2, 6), 8: tuple(range(8))}


@torch.no_grad()
def logits_for(model: torch.nn.Module, records: Sequence[Record], cache: GrayCache, batch_size: int = 64,
               transform: Callable[[np.ndarray], np.ndarray] | None = None, progress: bool = False,
               views: int = 1) -> np.ndarray:
    """(N, C) float64 logits; ``transform`` maps the cached 8-bit image first (robustness tests);
    ``views`` averages the logits over that many dihedral transforms (:data:`TTA_VIEWS`)."""
    from planet_terrain_plugin.core.preprocess import finish

    chosen = TTA_VIEWS[views]
    model.eval()
    device = next(model.parameters()).device
    out = []
    it = range(0, len(records), batch_size)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="inference", leave=False)
    for start in it:
        chunk = records[start:start + batch_size]
        if transform is None:
            arr = np.stack([cache.eval_tensor(r) for r in chunk])
        else:
            arr = np.stack([finish(transform(cache.gray(r)), cache.contract) for r in chunk])
        acc = None
        for v in (np.ascontiguousarray(dihedral(arr, k)) for k in chosen):
            y = model(torch.from_numpy(v).to(device)).float().cpu().numpy().astype(np.float64)
            acc = y if acc is None else acc + y
        out.append(acc / len(chosen))
    n = getattr(getattr(model, "fc", None), "out_features", 0)  # an identity head (feature extractor) has none
    return np.concatenate(out) if out else np.zeros((0, n))
