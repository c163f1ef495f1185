"""The loss terms of supervised training, one function each, so every accuracy lever of the ablation is a switch.

Known classes: cross-entropy with optional class weights (inverse frequency or the effective number of
samples of Cui et al. 2019), label smoothing and a focal exponent (Lin et al. 2017), which down-weights the
easy, frequent examples and so helps the rare classes. Mixed batches (mixup/CutMix) score both labels, weighted
by the mixing share. "Other": outlier exposure towards a uniform softmax (Hendrycks et al. 2019) or
cross-entropy on an extra "other" output.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def inverse_frequency_weights(counts: np.ndarray) -> np.ndarray:
    """w_c = N / (C * n_c): a rare class's mistakes cost as much in total as a frequent one's."""
    counts = np.maximum(np.asarray(counts, float), 1)
    return counts.sum() / (len(counts) * counts)


def class_balanced_weights(counts: np.ndarray, beta: float) -> np.ndarray:
    """w_c proportional to (1 - beta) / (1 - beta ** n_c), normalised to mean 1 (Cui et al. 2019)."""
    counts = np.maximum(np.asarray(counts, float), 1)
    w = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return w * len(w) / w.sum()


def known_loss(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None,
               label_smoothing: float = 0.0, focal_gamma: float = 0.0) -> torch.Tensor:
    """Per-sample loss of known-class images (no reduction), so mixed batches can weight two labels."""
    ce = F.cross_entropy(logits, y, weight=weight, label_smoothing=label_smoothing, reduction="none")
    if focal_gamma:
        p_true = F.softmax(logits.detach(), 1).gather(1, y[:, None])[:, 0]
        ce = ce * (1.0 - p_true) ** focal_gamma
    return ce


def mixed_known_loss(logits: torch.Tensor, y: torch.Tensor, y_other: torch.Tensor | None, lam: float,
                     **kw) -> torch.Tensor:
    """Mean known-class loss; with a mix partner, lam * loss(y) + (1 - lam) * loss(y_other)."""
    loss = known_loss(logits, y, **kw)
    if y_other is not None:
        loss = lam * loss + (1.0 - lam) * known_loss(logits, y_other, **kw)
    return loss.mean()


def outlier_loss(logits: torch.Tensor, mode: str, n_known: int) -> torch.Tensor:
    """Loss of "other" images: uniform over the known classes, or the extra "other" output (index n_known)."""
    if mode == "class":
        target = torch.full((len(logits),), n_known, dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, target)
    return -F.log_softmax(logits, 1).mean()
