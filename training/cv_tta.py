"""``make cv-tta``: test-time augmentation measured on cross-validation, as an arm of its own.

Each finished fold of an arm is scored again with its own checkpoint, averaging the logits of ``--views``
dihedral transforms (``training.inference.TTA_VIEWS``). Averaging changes how confident the network is, so the
temperature is fitted again on the fold's validation images with the same views (as ``training.calibrate`` does
for one view); the fold's test images never choose anything. The result is an arm folder (``folds.json``,
``arm.json``, ``fold<i>/predictions.csv``) that ``python -m training.cv compare`` pairs with the arm it came
from, image for image, so the gain of TTA has a 95 % interval over source images beside its cost (``views`` x
the network's).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from .calibrate import fit_temperature
from .cv_report import PREDICTIONS, fold_dirs, write_predictions
from .inference import TTA_VIEWS, logits_for
from .rundata import CACHE_DIR


def score_fold_with_views(fold_dir: Path, out_dir: Path, checkpoint: str, views: int,
                          cache_dir: str | None = CACHE_DIR) -> float:
    """``out_dir/predictions.csv`` for the fold's test images with ``views`` views; returns the temperature."""
    from . import checkpoint as ckpt
    from .model import class_probs
    from .rundata import load_run_data

    model, cfg, contract, _ = ckpt.load_model(fold_dir / checkpoint)
    data = load_run_data(cfg, contract, split_file=str(fold_dir / "split.json"), cache_dir=cache_dir)
    known = data.known("val")
    temperature = fit_temperature(logits_for(model, known, data.cache, views=views),
                                  np.array([r.label - 1 for r in known])) if known else 1.0
    test = data.splits["test"]
    probs = class_probs(logits_for(model, test, data.cache, views=views), temperature, contract.num_classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / PREDICTIONS, test, probs)
    return temperature


def tta_arm(arm: Path, out: Path, views: int, cache_dir: str | None = CACHE_DIR) -> list[int]:
    """Score every finished fold of ``arm`` with ``views`` views into the arm folder ``out`` (a fold already
    there is kept); returns the folds scored so far."""
    if views not in TTA_VIEWS:
        raise ValueError(f"--views must be one of {sorted(TTA_VIEWS)}, got {views}")
    manifest = json.loads((arm / "arm.json").read_text())
    mine = {"tta_of": str(arm), "views": views, "checkpoint": manifest["checkpoint"]}
    out.mkdir(parents=True, exist_ok=True)
    if (out / "arm.json").is_file() and json.loads((out / "arm.json").read_text()) != mine:
        raise ValueError(f"'{out}' holds another TTA arm ({(out / 'arm.json').read_text().strip()}): use another "
                         "--out")
    (out / "arm.json").write_text(json.dumps(mine, indent=1) + "\n")
    shutil.copyfile(arm / "folds.json", out / "folds.json")
    done = []
    for i, fold in enumerate(fold_dirs(arm)):
        if not (fold / PREDICTIONS).is_file():
            continue
        target = out / fold.name
        if not (target / PREDICTIONS).is_file():
            t = score_fold_with_views(fold, target, manifest["checkpoint"], views, cache_dir)
            print(f"{fold.name}: {views} views, temperature {t:.3f}", flush=True)
        done.append(i)
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("arm", help="a cross-validation arm folder, e.g. runs/cv/v110")
    p.add_argument("--views", type=int, default=4, choices=sorted(TTA_VIEWS))
    p.add_argument("--out", help="the TTA arm's folder (default: <arm>_tta<views>)")
    a = p.parse_args(argv)
    arm = Path(a.arm)
    out = Path(a.out) if a.out else arm.with_name(f"{arm.name}_tta{a.views}")
    try:
        done = tta_arm(arm, out, a.views)
    except (ValueError, FileNotFoundError) as exc:
        print(f"training.cv_tta: {exc}", file=sys.stderr)
        return 2
    print(f"{out}: folds {done} scored with {a.views} views; compare: python -m training.cv compare {arm} {out}"
          + ("" if len(done) == len(fold_dirs(arm)) else " --finished-only"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
