"""How sure are the test figures? A bootstrap over the test split's source images, per run and paired.

The grouped test split holds a few hundred known-class images from about twenty HiRISE source images, and one
class (impact ejecta) has a single test landmark: a figure moves by several points when one source image is
swapped for another. Images of one source are not independent (same scene, same season, the 7 copies of a
landmark), so the unit of resampling is the source image: draw the test sources with replacement, score
every image of the drawn sources, repeat. That gives a 95 % interval per run, and, with the same draws for two
runs, an interval for their difference: a lever "helps" only when that interval lies above zero.

Per run the test logits are computed once with the run's checkpoint and kept next to it (``test_logits.npz``);
``temperature`` and ``threshold`` come from its ``calibration.json``, as in ``training.evaluate``.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .metrics import auroc, coverage_at_rejection, macro_f1
from .model import class_probs

#: The figures bootstrapped, as (column title, key).
FIGURES = (("macro-F1", "macro_f1"), ("AUROC known/other", "auroc"), ("known kept @90 % other rejected", "coverage"))
LOGITS_FILE = "test_logits.npz"


@dataclass(frozen=True)
class SplitPredictions:
    """One run's test split: calibrated probabilities, labels (-1 for "other") and source image per image."""

    probs: np.ndarray  # (N, C)
    labels: np.ndarray  # (N,) network output index, -1 for the "other" pool
    sources: np.ndarray  # (N,) source image id

    def figures(self, rows: np.ndarray) -> dict[str, float]:
        """The bootstrapped figures on the images at ``rows`` (indices may repeat)."""
        p, y = self.probs[rows], self.labels[rows]
        known = y >= 0
        top = p.max(1)
        n = p.shape[1]
        return {"macro_f1": macro_f1(y[known], p[known].argmax(1), n) if known.any() else float("nan"),
                "auroc": auroc(top[known], top[~known]) if known.any() and (~known).any() else float("nan"),
                "coverage": coverage_at_rejection(top[known], top[~known]) if (~known).any() else float("nan")}


def predictions_on_test(run_dir: str | Path, cache_dir: str | None = "runs/cache") -> SplitPredictions:
    """The run's test predictions, computed with its checkpoint the first time and kept in the run folder."""
    run = Path(run_dir)
    cal = json.loads((run / "calibration.json").read_text())
    cached = run / LOGITS_FILE
    if cached.is_file() and cached.stat().st_mtime >= (run / "last.pt").stat().st_mtime:
        with np.load(cached, allow_pickle=False) as z:
            logits, labels, sources, classes = z["logits"], z["labels"], z["sources"], int(z["classes"])
    else:
        from . import checkpoint
        from .inference import logits_for
        from .rundata import load_run_data

        model, cfg, contract, _ = checkpoint.load_model(run / "last.pt")
        data = load_run_data(cfg, contract, split_file=str(run / "split.json"), cache_dir=cache_dir)
        test = data.splits["test"]
        logits, labels, sources, classes = save_test_logits(run, logits_for(model, test, data.cache), test,
                                                            contract.num_classes)
    return SplitPredictions(class_probs(logits, cal["temperature"], classes), labels, sources)


def save_test_logits(run_dir: str | Path, logits: np.ndarray, test: Sequence, classes: int) -> tuple:
    """Keep the test logits of a run's ``last.pt`` next to it (``training.evaluate`` computes them anyway), with
    what the bootstrap needs of each image; ``classes``: the known classes (the network may have one more
    output, for "other"). Returns (logits, labels, sources, classes)."""
    labels = np.array([r.label - 1 if r.known else -1 for r in test], int)
    sources = np.array([r.source_id for r in test])
    np.savez(Path(run_dir) / LOGITS_FILE, logits=logits, labels=labels, sources=sources, classes=classes)
    return logits, labels, sources, classes


def source_draws(sources: np.ndarray, n_draws: int, seed: int = 0) -> list[np.ndarray]:
    """``n_draws`` resamples of the images, each the images of the source images drawn with replacement."""
    names, index = np.unique(sources, return_inverse=True)
    members = [np.flatnonzero(index == k) for k in range(len(names))]
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[k] for k in rng.integers(0, len(names), len(names))]) for _ in range(n_draws)]


def interval(values: Sequence[float]) -> tuple[float, float]:
    """The central 95 % of the finite ``values``."""
    v = np.asarray([x for x in values if np.isfinite(x)])
    return (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if len(v) else (float("nan"),) * 2


def compare(runs: dict[str, SplitPredictions], reference: str, n_draws: int = 2000, seed: int = 0,
            figures: Sequence[tuple[str, str]] = FIGURES) -> list[dict]:
    """Per run: each of ``figures`` (keys of ``SplitPredictions.figures``), its 95 % interval, and the paired
    interval of its difference from ``reference``.

    All runs must score the same test images in the same order (the same split): the draws are shared.
    """
    ref = runs[reference]
    for name, pred in runs.items():
        if not np.array_equal(pred.sources, ref.sources) or not np.array_equal(pred.labels, ref.labels):
            raise ValueError(f"run '{name}' was scored on other test images than '{reference}': compare runs of "
                             "one split")
    draws = source_draws(ref.sources, n_draws, seed)
    everything = np.arange(len(ref.labels))
    ref_point = ref.figures(everything)
    ref_draws = [ref.figures(rows) for rows in draws]
    rows = []
    for name, pred in runs.items():
        point = pred.figures(everything)
        mine = ref_draws if name == reference else [pred.figures(r) for r in draws]
        row = {"run": name, "sources": int(len(np.unique(ref.sources))), "draws": n_draws}
        for _, key in figures:
            row[key] = point[key]
            row[key + "_ci"] = interval([m[key] for m in mine])
            if name != reference:
                row[key + "_delta"] = point[key] - ref_point[key]
                row[key + "_delta_ci"] = interval([m[key] - r[key] for m, r in zip(mine, ref_draws)])
        rows.append(row)
    return rows


def markdown(rows: list[dict], reference: str, figures: Sequence[tuple[str, str]] = FIGURES) -> str:
    """The table for the model card: figure [95 % interval] and, for the others, the paired difference."""
    head = ["run"] + [f"{title} [95 % CI]" for title, _ in figures] + [f"Δ {title} vs {reference} [95 % CI]"
                                                                        for title, _ in figures]
    out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        cells = [r["run"]] + [f"{r[k]:.3f} [{r[k + '_ci'][0]:.3f}, {r[k + '_ci'][1]:.3f}]" for _, k in figures]
        for _, k in figures:
            if k + "_delta" in r:
                lo, hi = r[k + "_delta_ci"]
                mark = " ▲" if lo > 0 else (" ▼" if hi < 0 else "")
                cells.append(f"{r[k + '_delta']:+.3f} [{lo:+.3f}, {hi:+.3f}]{mark}")
            else:
                cells.append("—")
        out.append("| " + " | ".join(cells) + " |")
    n = rows[0]
    return ("\n".join(out) + f"\n\n{n['draws']} draws of the {n['sources']} test source images with replacement; "
            "▲ / ▼: the paired interval lies wholly above / below zero.\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders (trained, calibrated) scored on one split")
    p.add_argument("--reference", help="the run the others are compared with (default: the first)")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--out", help="write the table (markdown) and the figures (.json beside it) here")
    a = p.parse_args(argv)
    runs = {Path(r).name: predictions_on_test(r) for r in a.runs}
    reference = a.reference or Path(a.runs[0]).name
    rows = compare(runs, reference, a.draws)
    table = markdown(rows, reference)
    print(table)
    if a.out:
        Path(a.out).write_text(table)
        Path(a.out).with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
