"""Logits -> calibrated probabilities -> a label or an honest ``unknown``.

Temperature scaling makes the softmax mean what it says (fitted on validation data by ``training/``); a
landform that cannot occur on the body at hand is removed by renormalising over the allowed classes; and the
prediction abstains (class 0, ``unknown``) when the top probability is below the contract's threshold, which
training tunes so that most "other" terrain is rejected. Output that is not a number (NaN or infinite logits,
from a damaged or badly exported model) is never turned into a class: it abstains too, saying so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

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


class Reason(str, Enum):
    """Why a decision is a label or ``unknown``: the one list of these names (a ``str``, so it compares and
    serialises as its value). Empty when a label was given."""

    NONE = ""
    LOW_CONFIDENCE = "low_confidence"   # the top probability is below the threshold
    INVALID_OUTPUT = "invalid_output"   # the model's output for this image holds NaN or infinity


#: What an ``invalid_output`` decision means for the user, and what to do.
INVALID_OUTPUT_NOTE = ("the model returned numbers that are not finite (NaN or infinity), so the result is "
                       "'unknown'; the model file may be damaged or badly exported: re-export it or pick another model")


def _finite_or_none(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


@dataclass(frozen=True)
class Decision:
    """One classified image: what the user sees in the attribute table."""

    class_id: int
    label: str
    confidence: float  # 0 for invalid output, which has no probability to be confident in
    abstained: bool
    probs: tuple[float, ...]  # in contract class order, after body renormalisation; NaN for invalid output
    body_renormalised: bool
    reason: Reason = Reason.NONE

    def as_json(self, contract: ModelContract) -> dict:
        """The shape an image-classification service returns, plus our abstention fields (valid JSON: a
        probability that is not a number is ``null``)."""
        return {
            "label": self.label,
            "class_id": self.class_id,
            "confidence": _finite_or_none(self.confidence),
            "abstained": self.abstained,
            "reason": self.reason.value,
            "probs": {name: _finite_or_none(p) for name, p in zip(contract.class_names, self.probs)},
            "body_renormalised": self.body_renormalised,
        }


def decide(logits: np.ndarray, contract: ModelContract, body: str | None = None,
           threshold: float | None = None) -> list[Decision]:
    """Turn a (N, C) logit batch into decisions; ``threshold`` overrides the contract's for this run."""
    thr = contract.threshold if threshold is None else float(threshold)
    if not 0.0 <= thr <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {thr}")
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != contract.num_classes:
        raise ValueError(f"model returned shape {logits.shape}, the contract promises (N, {contract.num_classes})")
    # A non-finite logit makes its row invalid, also where softmax would hide it (-inf is a finite 0 there) and
    # where the body renormalisation would turn NaN into a uniform, confident-looking vector.
    finite = np.isfinite(logits).all(axis=1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        probs, renormalised = restrict_to_body(softmax(np.where(finite, logits, 0.0), contract.temperature),
                                               contract, body)
    return decide_from_probs(np.where(finite, probs, np.nan), contract, thr, renormalised)


def decide_from_probs(probs: np.ndarray, contract: ModelContract, threshold: float,
                      renormalised: bool = False) -> list[Decision]:
    """Abstention on already calibrated probabilities: used to re-label stored results at a new threshold.

    A row that is not finite abstains as ``invalid_output`` whatever the threshold."""
    probs = np.asarray(probs, dtype=np.float64)
    valid = np.isfinite(probs).all(axis=-1)
    safe = np.where(valid[:, None], probs, 0.0)
    out = []
    for row, ok, k, c in zip(probs, valid, safe.argmax(axis=-1), safe.max(axis=-1)):
        if not ok:
            out.append(Decision(UNKNOWN_ID, UNKNOWN_LABEL, 0.0, True, tuple(math.nan for _ in row), renormalised,
                                Reason.INVALID_OUTPUT))
            continue
        abstained = bool(c < threshold)
        class_id = UNKNOWN_ID if abstained else contract.classes[int(k)].id
        label = UNKNOWN_LABEL if abstained else contract.classes[int(k)].name
        out.append(Decision(class_id, label, float(c), abstained, tuple(float(p) for p in row), renormalised,
                            Reason.LOW_CONFIDENCE if abstained else Reason.NONE))
    return out
