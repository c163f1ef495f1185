"""Score a calibrated run on the test split: ``python -m training.evaluate --run runs/default``.

Per image (every file, augmented copies included) and per landmark (one copy per landmark: the original when
present, so a landmark with six augmented copies does not count six times); v3-style and v1-style crops also
apart, because they are cropped differently and a user's extent resembles neither exactly. Dihedral TTA and
robustness (blur, 2x and 4x coarser pixels) are scored on the per-image known set. Writes ``metrics.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from planet_terrain_plugin.core.contract import HIRISE_OTHER, UNKNOWN_LABEL
from planet_terrain_plugin.core.preprocess import resize

from . import checkpoint
from .augment import gaussian_blur
from .dataset import Record
from .inference import logits_for
from .metrics import (abstention, auroc, confusion, coverage_at_rejection, macro_f1, nll, per_class, reliability,
                      risk_coverage)
from .model import class_probs
from .rundata import load_run_data
from .significance import save_test_logits

#: Robustness perturbations of the 8-bit image (227 px crops): name -> transform.
ROBUSTNESS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "blur_sigma2": lambda g: np.clip(np.rint(gaussian_blur(g.astype(float), 2.0)), 0, 255).astype(np.uint8),
    "downsample_x2": lambda g: np.clip(np.rint(resize(g, max(8, g.shape[0] // 2))), 0, 255).astype(np.uint8),
    "downsample_x4": lambda g: np.clip(np.rint(resize(g, max(8, g.shape[0] // 4))), 0, 255).astype(np.uint8),
}


def one_per_landmark(records: Sequence[Record]) -> list[Record]:
    """The original copy of each landmark when present, else the first by file name."""
    best: dict[str, Record] = {}
    for r in sorted(records, key=lambda r: (r.aug != "", Path(r.path).name)):
        best.setdefault(r.landmark_id, r)
    return sorted(best.values(), key=lambda r: Path(r.path).name)


def score(lk: np.ndarray, y: np.ndarray, lo: np.ndarray, temperature: float, threshold: float,
          class_names: Sequence[str], curves: bool = False) -> dict:
    """Every test metric for one set of known (lk, y) and "other" (lo) logits."""
    n = len(class_names)
    p_raw, p = class_probs(lk, 1.0, n), class_probs(lk, temperature, n)
    po = class_probs(lo, temperature, n) if len(lo) else np.zeros((0, n))
    pred = p.argmax(1)
    pc = per_class(y, pred, n)
    # 8x8 with abstention: rows truth (other, classes), columns decision (unknown, classes)
    truth = np.concatenate([y + 1, np.zeros(len(po), int)])
    probs_all = np.concatenate([p, po]) if len(po) else p
    decision = np.where(probs_all.max(1) >= threshold, probs_all.argmax(1) + 1, 0)
    rel_before, rel_after = reliability(p_raw, y), reliability(p, y)
    out = {
        "n_known": int(len(y)), "n_other": int(len(po)),
        "macro_f1": macro_f1(y, pred, n), "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "per_class": {name: {"precision": float(pc["precision"][i]), "recall": float(pc["recall"][i]),
                             "f1": float(pc["f1"][i]), "support": int(pc["support"][i])}
                      for i, name in enumerate(class_names)},
        "confusion_labels": [f"{HIRISE_OTHER.name}/{UNKNOWN_LABEL}"] + list(class_names),
        "confusion": confusion(truth, decision, n + 1).tolist(),
        "nll_before": nll(p_raw, y), "nll_after": nll(p, y),
        "ece_before": rel_before["ece"], "ece_after": rel_after["ece"],
        **abstention(p, y, po, threshold),
        "auroc_known_vs_other": auroc(p.max(1), po.max(1)),
        "known_coverage_at_90_other_rejected": coverage_at_rejection(p.max(1), po.max(1), 0.90),
        "aurc": risk_coverage(p, y)["aurc"],
    }
    if curves:
        rc = risk_coverage(p, y)
        out["curves"] = {
            "reliability_before": {k: np.asarray(v).tolist() for k, v in rel_before.items() if k != "ece"},
            "reliability_after": {k: np.asarray(v).tolist() for k, v in rel_after.items() if k != "ece"},
            "risk_coverage": {"coverage": rc["coverage"].tolist(), "risk": rc["risk"].tolist()},
            "known_top": p.max(1).tolist(), "other_top": po.max(1).tolist(),
        }
    return out


def _subsets(test: Sequence[Record], t: float, thr: float, names: Sequence[str]):
    """``subset(records, logits_of_test, curves)``: :func:`score` of some of the test records."""
    by_path = {r.path: i for i, r in enumerate(test)}

    def subset(recs: Sequence[Record], lg: np.ndarray, curves: bool = False) -> dict:
        known = [r for r in recs if r.known]
        other = [r for r in recs if not r.known]
        lk = lg[[by_path[r.path] for r in known]] if known else np.zeros((0, len(names)))
        lo = lg[[by_path[r.path] for r in other]] if other else np.zeros((0, len(names)))
        return score(lk, np.array([r.label - 1 for r in known], int), lo, t, thr, names, curves)
    return subset


def split_metrics(test: Sequence[Record], logits: np.ndarray, t: float, thr: float, names: Sequence[str]) -> dict:
    """``per_image`` and ``per_landmark`` scores (all, v3-style and v1-style crops) of the test ``logits``:
    the part of ``metrics.json`` a model file's contract quotes (``export.common.run_contract``)."""
    subset = _subsets(test, t, thr, names)
    v3 = [r for r in test if r.version == "v3"]
    v1 = [r for r in test if r.version == "v1"]
    return {"per_image": {"all": subset(test, logits, curves=True), "v3_crops": subset(v3, logits),
                          "v1_crops": subset(v1, logits)},
            "per_landmark": {"all": subset(one_per_landmark(test), logits),
                             "v3_crops": subset(one_per_landmark(v3), logits),
                             "v1_crops": subset(one_per_landmark(v1), logits)}}


def evaluate(run_dir: str | Path, ckpt_name: str = "last.pt", cache_dir: str | None = "runs/cache",
             extras: bool = True) -> dict:
    """Score the run; ``extras`` adds TTA and robustness (they cost 8x and 3x inference)."""
    run = Path(run_dir)
    cal = json.loads((run / "calibration.json").read_text())
    model, cfg, contract, ckpt = checkpoint.load_model(run / ckpt_name)
    data = load_run_data(cfg, contract, split_file=str(run / "split.json"), cache_dir=cache_dir)
    t, thr, names = cal["temperature"], cal["threshold"], contract.class_names
    test = data.splits["test"]
    logits = logits_for(model, test, data.cache)
    if ckpt_name == "last.pt":  # what training.significance bootstraps: not computed a second time there
        save_test_logits(run, logits, test, contract.num_classes)
    result = {"checkpoint": ckpt_name, "epochs_trained": ckpt["epoch"] + 1, "temperature": t, "threshold": thr,
              "calibration": cal, **split_metrics(test, logits, t, thr, names)}
    if extras:
        base = result["per_image"]["all"]
        subset = _subsets(test, t, thr, names)
        tta = logits_for(model, test, data.cache, views=8)
        s = subset(test, tta)
        result["tta"] = {k: s[k] for k in ("macro_f1", "accuracy", "ece_after", "other_rejected",
                                          "known_coverage", "auroc_known_vs_other",
                                          "known_coverage_at_90_other_rejected", "per_class")}
        result["tta"]["helps"] = bool(s["macro_f1"] > base["macro_f1"] and s["auroc_known_vs_other"]
                                      >= base["auroc_known_vs_other"])
        result["robustness"] = {}
        for name, fn in ROBUSTNESS.items():
            s = subset(test, logits_for(model, test, data.cache, transform=fn))
            result["robustness"][name] = {k: s[k] for k in ("macro_f1", "accuracy", "ece_after", "other_rejected",
                                                            "known_coverage", "auroc_known_vs_other")}
    (run / "metrics.json").write_text(json.dumps(_clean(result), indent=1) + "\n")
    return result


def _clean(x):
    """JSON without NaN (strict parsers refuse it): NaN becomes null."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/default")
    p.add_argument("--checkpoint", default="last.pt")
    p.add_argument("--no-extras", action="store_true", help="skip TTA and robustness")
    a = p.parse_args(argv)
    r = evaluate(a.run, a.checkpoint, extras=not a.no_extras)
    m = r["per_image"]["all"]
    print(json.dumps({k: m[k] for k in ("macro_f1", "accuracy", "ece_after", "other_rejected", "known_coverage",
                                        "auroc_known_vs_other")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
