"""Logits -> calibrated probabilities -> a label or an honest ``unknown``.

Temperature scaling makes the softmax mean what it says (fitted on validation data by ``training/``); a
landform that cannot occur on the body at hand is removed by renormalising over the allowed classes; and the
prediction abstains (class 0, ``unknown``) when the top probability is below the contract's threshold, which
training tunes so that most "other" terrain is rejected. Output that is not a number (NaN or infinite logits,
from a damaged or badly exported model) is never turned into a class: it abstains too, saying so.

On a body where only some classes can occur, renormalising over those inflates the top probability: an image
the network sees as a Martian dune (5 % crater, 1 % ejecta) would become an 83 % crater on the Moon. So the
renormalisation divides by the allowed classes' share of the mass but never by less than half their uniform
share (uniform is what outlier exposure in training gives unfamiliar terrain; a validation crater rarely holds
less): with little evidence for the allowed classes the probabilities stay low, sum to less than 1 (the rest is
"none of these"), and the image abstains as ``low_confidence`` at any usual threshold, as a re-label from the
stored probabilities does too.

A model file with an ``ood_score`` output says how unlike the training images an input is (its contract's
``ood_threshold`` is the limit): above it, the image abstains as ``out_of_distribution`` whatever the threshold,
however confident the softmax is, because a network trained on a thousand images can be confidently wrong about
a gradient or an elevation model.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import numpy as np

from .contract import UNKNOWN_ID, UNKNOWN_LABEL, ModelContract


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def evidence_floor(allowed: np.ndarray) -> float:
    """The least share of the mass the allowed classes are renormalised by: half their uniform share."""
    return float(allowed.sum()) / allowed.size / 2


def restrict_to_body(probs: np.ndarray, contract: ModelContract, body: str | None) -> tuple[np.ndarray, bool]:
    """Zero the classes that cannot occur on ``body`` and renormalise, by at least :func:`evidence_floor` (see the
    module docstring); returns (probs, whether it changed)."""
    allowed = np.asarray(contract.allowed_mask(body), dtype=bool)
    if allowed.all():
        return probs, False
    kept = np.where(allowed, probs, 0.0)
    return kept / np.maximum(kept.sum(axis=-1, keepdims=True), evidence_floor(allowed)), True


class Reason(str, Enum):
    """Why a decision is a label or ``unknown``: the one list of these names (a ``str``, so it compares and
    serialises as its value). Empty when a label was given."""

    NONE = ""
    LOW_CONFIDENCE = "low_confidence"   # the top probability is below the threshold
    INVALID_OUTPUT = "invalid_output"   # the model's output for this image holds NaN or infinity
    OUT_OF_DISTRIBUTION = "out_of_distribution"  # the model's OOD score says the image is unlike its training images
    OUT_OF_SCALE = "out_of_scale"  # abstained, and the pixels are coarser than the model's ground-sampling range
    NOT_AN_IMAGE = "not_an_image"  # refused: elevation, slope, shaded relief or colour-shaded (core.raster_kind)
    UNKNOWN_BODY = "unknown_body"  # refused: the CRS is of a body the model does not serve (core.body_check)


#: Reasons a new threshold recomputes when re-labelling stored results: low_confidence and out_of_scale (by
#: :func:`at_scale`, except where out of distribution caused it), invalid_output (from the probabilities). Every
#: other reason is ``decide_from_probs``'s ``fixed``: no threshold changes it.
THRESHOLD_REASONS = (Reason.NONE, Reason.LOW_CONFIDENCE, Reason.INVALID_OUTPUT, Reason.OUT_OF_SCALE)


#: What an ``invalid_output`` decision means for the user, and what to do.
INVALID_OUTPUT_NOTE = ("the model returned numbers that are not finite (NaN or infinity), so the result is "
                       "'unknown'; the model file may be damaged or badly exported: re-export it or pick another model")


def at_scale(decision: "Decision", scale_factor: float | None) -> "Decision":
    """``decision`` with the reason ``out_of_scale`` when it abstained (low confidence, or out of distribution)
    on pixels coarser than the model's range (``scale_factor`` > 1: ``result_schema.gsd_factor``).

    The root cause the user can act on (read finer pixels, or a finer product) outranks what the network made
    of them. A confident label on coarse pixels that the out-of-distribution score accepts stays a label: the
    factor is stored beside it and shown. Finer pixels than the range are no reason: grids read them reduced."""
    coarse = scale_factor is not None and math.isfinite(scale_factor) and scale_factor > 1.0
    if coarse and decision.abstained and decision.reason in (Reason.LOW_CONFIDENCE, Reason.OUT_OF_DISTRIBUTION):
        return dataclasses.replace(decision, reason=Reason.OUT_OF_SCALE)
    return decision


def _finite_or_none(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


@dataclass(frozen=True)
class Decision:
    """One classified image: what the user sees in the attribute table."""

    class_id: int
    label: str
    confidence: float  # 0 for invalid output, which has no probability to be confident in
    abstained: bool
    probs: tuple[float, ...]  # in contract class order, after body renormalisation (module doc); NaN for invalid output
    body_renormalised: bool
    reason: Reason = Reason.NONE
    #: The model's out-of-distribution score for the image (None: the model has no OOD output).
    ood_score: float | None = None

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
            "ood_score": None if self.ood_score is None else _finite_or_none(self.ood_score),
        }


def decide(logits: np.ndarray, contract: ModelContract, body: str | None = None,
           threshold: float | None = None, ood_scores: np.ndarray | None = None,
           noise_like: np.ndarray | None = None) -> list[Decision]:
    """Turn a (N, C) logit batch into decisions; ``threshold`` overrides the contract's for this run.

    ``ood_scores``: the model's (N,) ``ood_score`` output, compared with the contract's ``ood_threshold``.
    ``noise_like``: (N,) inputs too rough to be images (``core.input_check``): out of distribution too."""
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
    fixed = [Reason.NONE] * len(logits)
    if ood_scores is not None and contract.ood_threshold is not None:
        scores = np.asarray(ood_scores, dtype=np.float64).reshape(len(logits))
        unfamiliar = ~(scores <= contract.ood_threshold)  # NaN counts as unfamiliar
        fixed = [Reason.OUT_OF_DISTRIBUTION if u else Reason.NONE for u in unfamiliar]
    if noise_like is not None:
        fixed = [Reason.OUT_OF_DISTRIBUTION if n else why for why, n in zip(fixed, np.ravel(noise_like))]
    decisions = decide_from_probs(np.where(finite, probs, np.nan), contract, thr, renormalised, fixed)
    if ood_scores is None:
        return decisions
    return [dataclasses.replace(d, ood_score=float(s)) for d, s in zip(decisions, np.ravel(ood_scores))]


def decide_from_probs(probs: np.ndarray, contract: ModelContract, threshold: float,
                      renormalised: bool = False, fixed: Sequence[Reason] | None = None) -> list[Decision]:
    """Abstention on already calibrated probabilities: used to re-label stored results at a new threshold.

    A row that is not finite abstains as ``invalid_output`` whatever the threshold; so does a row whose entry in
    ``fixed`` (reasons found before the threshold, such as out of distribution) is not ``Reason.NONE``, with that
    reason."""
    probs = np.asarray(probs, dtype=np.float64)
    valid = np.isfinite(probs).all(axis=-1)
    safe = np.where(valid[:, None], probs, 0.0)
    out = []
    fixed = [Reason.NONE] * len(probs) if fixed is None else list(fixed)
    for row, ok, k, c, why in zip(probs, valid, safe.argmax(axis=-1), safe.max(axis=-1), fixed):
        if not ok:
            out.append(Decision(UNKNOWN_ID, UNKNOWN_LABEL, 0.0, True, tuple(math.nan for _ in row), renormalised,
                                Reason.INVALID_OUTPUT))
            continue
        if why is not Reason.NONE:
            out.append(Decision(UNKNOWN_ID, UNKNOWN_LABEL, float(c), True, tuple(float(p) for p in row),
                                renormalised, Reason(why)))
            continue
        abstained = bool(c < threshold)
        class_id = UNKNOWN_ID if abstained else contract.classes[int(k)].id
        label = UNKNOWN_LABEL if abstained else contract.classes[int(k)].name
        out.append(Decision(class_id, label, float(c), abstained, tuple(float(p) for p in row), renormalised,
                            Reason.LOW_CONFIDENCE if abstained else Reason.NONE))
    return out
