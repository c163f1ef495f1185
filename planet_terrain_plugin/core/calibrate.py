"""Logits -> calibrated probabilities -> a label or an honest ``unknown``.

Temperature scaling makes the softmax mean what it says (fitted on validation data by ``training/``); a
landform that cannot occur on the body at hand is removed by renormalising over the allowed classes; and the
prediction abstains (class 0, ``unknown``) when the top probability is below the contract's threshold, which
training tunes so that most "other" terrain is rejected.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contract import UNKNOWN_ID, UNKNOWN_LABEL, ModelContract


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def restrict_to_body(probs: np.ndarray, contract: ModelContract, body: str | None) -> tuple[np.ndarray, bool]:
    """Zero the classes that cannot occur on ``body`` and renormalise; returns (probs, whether it changed)."""
    allowed = np.asarray(contract.allowed_mask(body), dtype=bool)
    if allowed.all():
        return probs, False
    kept = np.where(allowed, probs, 0.0)
    total = kept.sum(axis=-1, keepdims=True)
    # If every allowed class had probability 0 (cannot happen with softmax), keep the allowed ones uniform.
    uniform = allowed / allowed.sum()
    return np.where(total > 0, kept / np.where(total > 0, total, 1.0), uniform), True


@dataclass(frozen=True)
class Decision:
    """One classified image: what the user sees in the attribute table."""

    class_id: int
    label: str
    confidence: float
    abstained: bool
    probs: tuple[float, ...]  # in contract class order, after body renormalisation
    body_renormalised: bool

    def as_json(self, contract: ModelContract) -> dict:
        """The shape an image-classification service returns, plus our abstention fields."""
        return {
            "label": self.label,
            "class_id": self.class_id,
            "confidence": round(self.confidence, 6),
            "abstained": self.abstained,
            "probs": {name: round(p, 6) for name, p in zip(contract.class_names, self.probs)},
            "body_renormalised": self.body_renormalised,
        }


def decide(logits: np.ndarray, contract: ModelContract, body: str | None = None,
           threshold: float | None = None) -> list[Decision]:
    """Turn a (N, C) logit batch into decisions; ``threshold`` overrides the contract's for this run."""
    thr = contract.threshold if threshold is None else float(threshold)
    if not 0.0 <= thr <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {thr}")
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] != contract.num_classes:
        raise ValueError(f"model returned shape {logits.shape}, the contract promises (N, {contract.num_classes})")
    probs, renormalised = restrict_to_body(softmax(logits, contract.temperature), contract, body)
    return decide_from_probs(probs, contract, thr, renormalised)


def decide_from_probs(probs: np.ndarray, contract: ModelContract, threshold: float,
                      renormalised: bool = False) -> list[Decision]:
    """Abstention on already calibrated probabilities: used to re-label stored results at a new threshold."""
    top = probs.argmax(axis=-1)
    conf = probs.max(axis=-1)
    out = []
    for row, k, c in zip(probs, top, conf):
        abstained = bool(c < threshold)
        class_id = UNKNOWN_ID if abstained else contract.classes[int(k)].id
        label = UNKNOWN_LABEL if abstained else contract.classes[int(k)].name
        out.append(Decision(class_id, label, float(c), abstained, tuple(float(p) for p in row), renormalised))
    return out
