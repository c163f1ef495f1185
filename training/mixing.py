"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) of a batch of known-class images.

Why: with 11 impact-ejecta landmarks the network can memorise each one; mixing makes every step see a new
image whose label is a blend, which regularises the rare classes most. Orbital views have no canonical up,
so a CutMix box is as plausible anywhere in the image.
"""
from __future__ import annotations

import numpy as np
import torch


def cutmix_box(size: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box covering about 1 - lam of a size x size image: (top, left, bottom, right)."""
    side = int(round(size * np.sqrt(1.0 - lam)))
    cy, cx = int(rng.integers(0, size)), int(rng.integers(0, size))
    top, left = max(cy - side // 2, 0), max(cx - side // 2, 0)
    return top, left, min(top + side, size), min(left + side, size)


def mix_batch(x: torch.Tensor, rng: np.random.Generator, mixup_alpha: float, cutmix_alpha: float,
              p: float) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """(mixed images, permutation of the partners or None, share lam of the original label).

    The batch is left alone with probability 1 - p, or when it has fewer than two images.
    """
    kinds = [k for k, a in (("mixup", mixup_alpha), ("cutmix", cutmix_alpha)) if a > 0]
    if len(x) < 2 or not kinds or rng.random() >= p:
        return x, None, 1.0
    kind = kinds[int(rng.integers(0, len(kinds)))]
    alpha = mixup_alpha if kind == "mixup" else cutmix_alpha
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(x))).to(x.device)
    if kind == "mixup":
        return lam * x + (1.0 - lam) * x[perm], perm, lam
    top, left, bottom, right = cutmix_box(x.shape[-1], lam, rng)
    out = x.clone()
    out[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / float(x.shape[-1] * x.shape[-2])  # the box actually cut
    return out, perm, lam
