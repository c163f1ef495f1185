"""Classification, calibration and abstention metrics in plain numpy (no sklearn in the venv).

Labels are network output indices 0..C-1 for known classes; the "other" pool is scored separately.
"""
from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """(n, n) counts, rows = truth, columns = prediction."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def per_class(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined)."""
    cm = confusion(y_true, y_pred, n)
    tp = np.diag(cm).astype(float)
    pred, support = cm.sum(0).astype(float), cm.sum(1).astype(float)
    precision = np.divide(tp, pred, out=np.zeros(n), where=pred > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)}


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> float:
    """Mean F1 over the classes present in ``y_true`` (a class absent from the split has no defined recall)."""
    pc = per_class(y_true, y_pred, n)
    present = pc["support"] > 0
    return float(pc["f1"][present].mean()) if present.any() else 0.0


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, np.ndarray | float]:
    """Equal-width confidence bins: mean confidence, accuracy and count per bin, and the ECE."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == y).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(float)
    mean_conf = np.divide(np.bincount(idx, conf, bins), count, out=np.zeros(bins), where=count > 0)
    acc = np.divide(np.bincount(idx, correct, bins), count, out=np.zeros(bins), where=count > 0)
    ece = float(np.sum(count / max(len(y), 1) * np.abs(acc - mean_conf)))
    return {"edges": edges, "confidence": mean_conf, "accuracy": acc, "count": count, "ece": ece}


def auroc(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """Probability a random positive scores above a random negative (ties count half); Mann-Whitney U."""
    pos, neg = np.asarray(pos_scores, float), np.asarray(neg_scores, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties
    i = 0
    while i < len(sorted_v):
        j = i
        while j + 1 < len(sorted_v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def risk_coverage(probs: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray | float]:
    """Error rate among the accepted known images as the confidence threshold falls (most confident first)."""
    conf = probs.max(1)
    order = np.argsort(-conf, kind="mergesort")
    wrong = (probs.argmax(1) != y)[order].astype(float)
    k = np.arange(1, len(y) + 1)
    risk = np.cumsum(wrong) / k
    coverage = k / max(len(y), 1)
    aurc = float(np.mean(risk)) if len(y) else float("nan")
    return {"coverage": coverage, "risk": risk, "aurc": aurc}


def abstention(probs_known: np.ndarray, y_known: np.ndarray, probs_other: np.ndarray, threshold: float) -> dict:
    """Rejection of "other", coverage of known classes and accuracy on what is accepted, at ``threshold``."""
    acc_known = probs_known.max(1) >= threshold
    rej_other = probs_other.max(1) < threshold if len(probs_other) else np.zeros(0, bool)
    correct = probs_known.argmax(1) == y_known
    return {"threshold": float(threshold),
            "other_rejected": float(rej_other.mean()) if len(rej_other) else float("nan"),
            "known_coverage": float(acc_known.mean()) if len(acc_known) else float("nan"),
            "accuracy_on_accepted": float(correct[acc_known].mean()) if acc_known.any() else float("nan"),
            "n_known": int(len(y_known)), "n_other": int(len(probs_other))}


def coverage_at_rejection(known_top: np.ndarray, other_top: np.ndarray, rejection: float = 0.90) -> float:
    """Share of known images accepted by the threshold that rejects ``rejection`` of the "other" images *of
    this same set*: the separation at a fixed operating point, free of how well a validation threshold
    transfers (that is what ``abstention`` measures)."""
    if len(other_top) == 0 or len(known_top) == 0:
        return float("nan")
    limit = rejection_threshold(other_top, rejection)
    return float((np.asarray(known_top, float) >= np.nextafter(limit, np.inf)).mean())


def rejection_threshold(other_top: np.ndarray, rejection: float = 0.90) -> float:
    """The score at or below which ``rejection`` of the "other" images lie: a score above it is accepted."""
    s = np.sort(np.asarray(other_top, float))
    return float(s[min(len(s), max(1, int(np.ceil(rejection * len(s))))) - 1])
