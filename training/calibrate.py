"""Fit the temperature and the abstention threshold on the validation split.

Temperature: the scalar T minimising the validation NLL of softmax(logits / T) on known classes (a 1-D search
over log T: one parameter does not need LBFGS, and a bracketed search cannot diverge). Threshold: the smallest
top-probability that rejects the target share (default 90%) of the validation "other" pool; the share of known
images still accepted at it (coverage) is reported beside it, because that is the price of the rejection.
Writes ``calibration.json`` in the run directory.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from planet_terrain_plugin.core.calibrate import softmax

from . import checkpoint
from .inference import logits_for
from .metrics import abstention, nll, reliability
from .model import class_probs
from .rundata import load_run_data


def fit_temperature(logits: np.ndarray, y: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """argmin_T NLL(softmax(logits / T), y): coarse log-grid, then golden-section refinement."""
    def f(log_t: float) -> float:
        return nll(softmax(logits, math.exp(log_t)), y)

    grid = np.linspace(math.log(lo), math.log(hi), 61)
    i = int(np.argmin([f(g) for g in grid]))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(60):
        if f(c) < f(d):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return float(math.exp((a + b) / 2))


def threshold_for_rejection(other_top: np.ndarray, target: float) -> float:
    """Smallest threshold t with mean(other_top < t) >= target (0 if there is no "other" pool)."""
    if len(other_top) == 0:
        return 0.0
    s = np.sort(other_top)
    k = min(len(s), max(1, math.ceil(target * len(s))))
    return float(min(1.0, np.nextafter(s[k - 1], np.inf)))


def fit_calibration(known_logits: np.ndarray, y: np.ndarray, other_logits: np.ndarray, target: float,
                    num_classes: int) -> tuple[float, float]:
    """(temperature, threshold) from validation logits: T on the known images, then the threshold rejecting
    ``target`` of the "other" pool at that T. Shared by ``calibrate`` and ``export.ship_views``."""
    t = fit_temperature(known_logits, y) if len(y) else 1.0
    other_top = class_probs(other_logits, t, num_classes).max(1) if len(other_logits) else np.zeros(0)
    return t, threshold_for_rejection(other_top, target)


def calibrate(run_dir: str | Path, ckpt_name: str = "last.pt", target: float | None = None,
              cache_dir: str | None = "runs/cache") -> dict:
    run = Path(run_dir)
    model, cfg, contract, _ = checkpoint.load_model(run / ckpt_name)
    data = load_run_data(cfg, contract, split_file=str(run / "split.json"), cache_dir=cache_dir)
    known, other = data.known("val"), data.other("val")
    y = np.array([r.label - 1 for r in known])
    lk = logits_for(model, known, data.cache)
    lo = logits_for(model, other, data.cache)
    target = cfg.target_other_rejection if target is None else target
    n = contract.num_classes
    t, thr = fit_calibration(lk, y, lo, target, n)
    pk, po = class_probs(lk, t, n), class_probs(lo, t, n)
    result = {
        "checkpoint": ckpt_name, "temperature": t, "threshold": thr, "target_other_rejection": target,
        "val_nll_before": nll(class_probs(lk, 1.0, n), y), "val_nll_after": nll(pk, y),
        "val_ece_before": reliability(class_probs(lk, 1.0, n), y)["ece"], "val_ece_after": reliability(pk, y)["ece"],
        "val": abstention(pk, y, po, thr),
    }
    (run / "calibration.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/default", help="run directory written by training.train")
    p.add_argument("--checkpoint", default="last.pt")
    p.add_argument("--target", type=float, help="share of val 'other' to reject (default: the config's)")
    a = p.parse_args(argv)
    print(json.dumps(calibrate(a.run, a.checkpoint, a.target), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
