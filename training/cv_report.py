"""What a cross-validation wrote, read back and summed up: per-fold predictions, the summary, paired comparisons.

Each fold writes its test images' calibrated probabilities (``predictions.csv``: one row per image, with its
source image, version and label), so every figure can be recomputed without a network. The summary scores each
fold and all folds pooled (every source image is a test image exactly once) with 95 % bootstrap intervals over
source images (:mod:`training.significance`: the images of one source are not independent). Pooled figures mix
the folds' models and temperatures, as a shipped model's users would meet them one at a time; the mean of the
folds is reported beside them.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from planet_terrain_plugin.core.contract import HIRISE_LANDFORMS, HIRISE_OTHER

from . import significance
from .dataset import Record
from .evaluate import _clean as finite_json
from .metrics import per_class, reliability
from .significance import SplitPredictions

PREDICTIONS = "predictions.csv"
#: The figures of a cross-validation, as (title, key of :meth:`CVPredictions.figures`).
CV_FIGURES = (("macro-F1", "macro_f1"), ("accuracy", "accuracy"), ("ECE", "ece"), ("AUROC known/other", "auroc"),
              ("known kept @90 % other rejected", "coverage"))
CLASS_NAMES = tuple(c.name for c in HIRISE_LANDFORMS)
PROB_COLUMNS = tuple("p_" + name.replace(" ", "_") for name in CLASS_NAMES)
ID_COLUMNS = ("path", "version", "source_id", "landmark_id", "aug", "label", "label_name")


@dataclass(frozen=True)
class CVPredictions(SplitPredictions):
    """Test predictions of one fold or of all folds pooled; ``versions`` says v3- or v1-style crop per image."""

    versions: np.ndarray  # (N,) "v3" or "v1"

    def figures(self, rows: np.ndarray) -> dict[str, float]:
        """:class:`SplitPredictions`' figures plus accuracy and expected calibration error on the known images."""
        out = super().figures(rows)
        p, y = self.probs[rows], self.labels[rows]
        known = y >= 0
        out["accuracy"] = float((p[known].argmax(1) == y[known]).mean()) if known.any() else float("nan")
        out["ece"] = float(reliability(p[known], y[known])["ece"]) if known.any() else float("nan")
        return out

    def where(self, mask: np.ndarray) -> "CVPredictions":
        return CVPredictions(self.probs[mask], self.labels[mask], self.sources[mask], self.versions[mask])

    @classmethod
    def pooled(cls, parts: Sequence["CVPredictions"]) -> "CVPredictions":
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("probs", "labels", "sources",
                                                                             "versions")))


def write_predictions(path: Path, records: Sequence[Record], probs: np.ndarray) -> None:
    """One CSV row per test image (calibrated probabilities at full precision); written whole or not at all."""
    if probs.shape != (len(records), len(CLASS_NAMES)):
        raise ValueError(f"{probs.shape} probabilities for {len(records)} images of {len(CLASS_NAMES)} classes")
    names = {c.id: c.name for c in (HIRISE_OTHER,) + HIRISE_LANDFORMS}
    tmp = path.with_suffix(".partial")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ID_COLUMNS + PROB_COLUMNS)
        for r, p in zip(records, probs):
            w.writerow([r.path, r.version, r.source_id, r.landmark_id, r.aug, r.label, names[r.label]]
                       + [repr(float(v)) for v in p])
    tmp.replace(path)


def read_predictions(path: Path) -> CVPredictions:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    probs = np.array([[float(r[c]) for c in PROB_COLUMNS] for r in rows]).reshape(len(rows), len(PROB_COLUMNS))
    labels = np.array([int(r["label"]) - 1 if int(r["label"]) != HIRISE_OTHER.id else -1 for r in rows], int)
    return CVPredictions(probs, labels, np.array([r["source_id"] for r in rows]),
                         np.array([r["version"] for r in rows]))


def fold_dirs(arm: Path) -> list[Path]:
    """The arm's fold folders in fold order (``fold0``, ``fold1``, ...), as the folds file lists them."""
    k = len(json.loads((arm / "folds.json").read_text())["sources"])
    return [arm / f"fold{i}" for i in range(k)]


def finished_folds(arm: Path) -> list[Path]:
    """The fold folders that have written their predictions, in fold order."""
    return [f for f in fold_dirs(arm) if (f / PREDICTIONS).is_file()]


def arm_predictions(arm: Path) -> list[CVPredictions]:
    """Every fold's predictions; refuses an arm with unfinished folds (naming them and the command to finish)."""
    folds = fold_dirs(arm)
    missing = [f.name for f in folds if not (f / PREDICTIONS).is_file()]
    if missing:
        raise FileNotFoundError(f"cross-validation '{arm}' has unfinished fold(s) {', '.join(missing)}: finish them "
                                f"with the `python -m training.cv ... --out {arm}` command that started it")
    return [read_predictions(f / PREDICTIONS) for f in folds]


def _scored(name: str, pred: CVPredictions, draws: int) -> dict:
    return significance.compare({name: pred}, name, draws, figures=CV_FIGURES)[0]


def per_class_table(pred: CVPredictions) -> dict[str, dict]:
    """Per class: recall, precision, F1 with their support in images and source images (pooled)."""
    known = pred.labels >= 0
    pc = per_class(pred.labels[known], pred.probs[known].argmax(1), len(CLASS_NAMES))
    out = {}
    for i, name in enumerate(CLASS_NAMES):
        mine = pred.labels == i
        out[name] = {"recall": float(pc["recall"][i]), "precision": float(pc["precision"][i]),
                     "f1": float(pc["f1"][i]), "images": int(mine.sum()),
                     "sources": int(len(np.unique(pred.sources[mine])))}
    return out


def summarise(arm: Path, draws: int = 2000, finished_only: bool = False) -> dict:
    """``summary.json`` and ``summary.md`` of a finished arm: per fold, mean of folds, pooled (all, v3-, v1-style).

    ``finished_only``: the folds finished so far, written as ``summary_partial.*`` and saying which folds it
    pools, for watching a long arm; an arm is compared and chosen on its full summary only."""
    folds = finished_folds(arm) if finished_only else fold_dirs(arm)
    if finished_only and not folds:
        raise FileNotFoundError(f"cross-validation '{arm}' has no finished fold yet")
    parts = [read_predictions(f / PREDICTIONS) for f in folds] if finished_only else arm_predictions(arm)
    pooled = CVPredictions.pooled(parts)
    per_fold = [_scored(f.name, p, draws) for f, p in zip(folds, parts)]
    mean = {k: float(np.nanmean([r[k] for r in per_fold])) for _, k in CV_FIGURES}
    result = {"arm": arm.name, "draws": draws, "folds": per_fold, "mean_of_folds": mean,
              "pooled": {"all": _scored("pooled", pooled, draws)}, "per_class": per_class_table(pooled),
              "per_class_by_fold": {f.name: per_class_table(p) for f, p in zip(folds, parts)}}
    if finished_only and len(folds) < len(fold_dirs(arm)):
        result["partial"] = [f.name for f in folds]
    for version in ("v3", "v1"):
        mask = pooled.versions == version
        if mask.any():
            result["pooled"][f"{version}_crops"] = _scored(f"pooled, {version}-style crops", pooled.where(mask),
                                                           draws)
    stem = "summary_partial" if finished_only else "summary"
    (arm / f"{stem}.json").write_text(json.dumps(finite_json(result), indent=1) + "\n")
    (arm / f"{stem}.md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    """The summary as the model card shows it: figure [95 % interval] per fold, their mean, pooled; per class."""
    head = ["test set", "source images"] + [f"{title} [95 % CI]" for title, _ in CV_FIGURES]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in result["folds"] + list(result["pooled"].values()):
        lines.append(f"| {r['run']} | {r['sources']} | " + " | ".join(
            f"{r[k]:.3f} [{r[k + '_ci'][0]:.3f}, {r[k + '_ci'][1]:.3f}]" for _, k in CV_FIGURES) + " |")
        if r is result["folds"][-1]:
            lines.append("| mean of folds | | " + " | ".join(f"{result['mean_of_folds'][k]:.3f}"
                                                           for _, k in CV_FIGURES) + " |")
    classes = ["| class | recall | precision | F1 | images | source images |", "|---|---|---|---|---|---|"]
    for name, c in result["per_class"].items():
        classes.append(f"| {name} | {c['recall']:.3f} | {c['precision']:.3f} | {c['f1']:.3f} | {c['images']} | "
                       f"{c['sources']} |")
    partial = (f"Partial: only {', '.join(result['partial'])} (the folds finished so far); an arm is chosen on "
               "all of its folds.\n\n" if result.get("partial") else "")
    return (f"# Cross-validation of `{result['arm']}`\n\n" + partial + "\n".join(lines)
            + f"\n\n95 % intervals: {result['draws']} draws of the source images with replacement (per fold: its "
            "own test sources; pooled: all of them).\n\nPooled, per class (known images):\n\n"
            + "\n".join(classes) + "\n")


def compare_arms(reference: Path, other: Path, draws: int = 2000,
                 finished_only: bool = False) -> tuple[list[dict], str]:
    """The paired difference ``other`` - ``reference`` on the pooled predictions, with its bootstrap interval.

    ``finished_only``: pool only the folds both arms have finished (named in the table), for a look at a
    lever before every fold is trained; the figure an arm is chosen on stays the comparison of all folds."""
    if finished_only:
        done = {f.name for f in finished_folds(other)}
        both = [(fa, other / fa.name) for fa in finished_folds(reference) if fa.name in done]
        if not both:
            raise FileNotFoundError(f"'{reference}' and '{other}' have no finished fold in common")
        a, b = (CVPredictions.pooled([read_predictions(f[i] / PREDICTIONS) for f in both]) for i in (0, 1))
        note = (f"\nPartial: only {', '.join(fa.name for fa, _ in both)} of {len(fold_dirs(reference))} folds "
                "(the folds both arms have finished).\n")
    else:
        a, b = CVPredictions.pooled(arm_predictions(reference)), CVPredictions.pooled(arm_predictions(other))
        note = ""
    rows = significance.compare({reference.name: a, other.name: b}, reference.name, draws, figures=CV_FIGURES)
    return rows, significance.markdown(rows, reference.name, CV_FIGURES) + note
