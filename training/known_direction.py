"""``make known-direction``: is there a linear known-vs-"other" direction in the embedding worth a second gate?

A logistic regression of "known landform" against "other" terrain on the training split's embeddings (its top
principal axes), scored on validation only, against the softmax the plugin gates with: known images kept at
90 % "other" rejected, with a 95 % interval of the difference over validation source images; and where the
Apollo 20 km cells fall on the same score, because a gate learnt on Martian "other" terrain must not end the
Moon's crater finding. The test split is not read. Prints a markdown report (the model card quotes it).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from planet_terrain_plugin.core.calibrate import softmax
from planet_terrain_plugin.core.contract import EMBEDDING, LOGITS

from training.metrics import auroc, coverage_at_rejection
from training.ood import apollo_tensors
from training.ood_data import load_data, onnx_outputs, records_outputs
from training.significance import interval, source_draws


def fit_direction(x: np.ndarray, known: np.ndarray, axes: int, l2: float) -> callable:
    """A balanced, L2-regularised logistic regression on the top ``axes`` principal axes of ``x``
    (standardised), by Newton's method in numpy; returns the score function (higher = more like a known
    landform)."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    proj = vt[:axes].T
    z = (x - mean) @ proj
    mu, sd = z.mean(axis=0), z.std(axis=0) + 1e-9
    z = (z - mu) / sd
    y = known.astype(float)
    w = np.where(known, (~known).sum() / max(known.sum(), 1), 1.0) / len(y)  # each side weighs the same
    z1 = np.hstack([z, np.ones((len(z), 1))])
    ridge = np.diag(np.append(np.full(axes, 2 * l2), 0.0))  # the bias is not penalised
    theta = np.zeros(axes + 1)
    for _ in range(50):  # convex, and only axes + 1 parameters
        p = 1 / (1 + np.exp(-(z1 @ theta)))
        grad = z1.T @ (w * (p - y)) + ridge @ theta
        step = np.linalg.solve(z1.T @ (z1 * (w * p * (1 - p))[:, None]) + ridge, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return lambda e: (((np.asarray(e, float) - mean) @ proj - mu) / sd) @ theta[:-1] + theta[-1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="planet_terrain_plugin/models/planet_terrain_resnet50.fp16.onnx")
    p.add_argument("--split", default="planet_terrain_plugin/models/planet_terrain_resnet50.split.json")
    p.add_argument("--rasters", default="../shared/data/rasters")
    p.add_argument("--axes", type=int, default=16)
    p.add_argument("--l2", type=float, default=1e-2)
    a = p.parse_args(argv)
    data = load_data(a.model, a.split)
    contract = data.contract
    train = records_outputs(a.model, data, data.splits["train"], "train")
    val = records_outputs(a.model, data, data.splits["val"], "val")
    score = fit_direction(train[EMBEDDING], np.array([r.known for r in data.splits["train"]]), a.axes, a.l2)
    known = np.array([r.known for r in data.splits["val"]])
    sources = np.array([r.source_id for r in data.splits["val"]])
    top = softmax(val[LOGITS], contract.temperature).max(axis=1)
    s = score(val[EMBEDDING])
    diffs = [coverage_at_rejection(s[i][known[i]], s[i][~known[i]]) - coverage_at_rejection(top[i][known[i]],
                                                                                            top[i][~known[i]])
             for i in source_draws(sources, 2000)]
    apollo = score(onnx_outputs(a.model, apollo_tensors(Path(a.rasters), contract))[EMBEDDING])
    lo, hi = interval(diffs)
    print(f"Validation ({known.sum()} known, {(~known).sum()} \"other\"); direction on {a.axes} axes, l2 {a.l2}\n\n"
          "| score | AUROC known vs other | known kept at 90 % other rejected |\n|---|---|---|\n"
          f"| max softmax (the plugin's gate) | {auroc(top[known], top[~known]):.3f} | "
          f"{coverage_at_rejection(top[known], top[~known]):.3f} |\n"
          f"| known-vs-other direction | {auroc(s[known], s[~known]):.3f} | "
          f"{coverage_at_rejection(s[known], s[~known]):.3f} |\n\n"
          f"Difference in known kept: 95 % interval over validation sources [{lo:+.3f}, {hi:+.3f}].\n"
          f"Median score: validation known {np.median(s[known]):+.2f}, \"other\" {np.median(s[~known]):+.2f}, "
          f"Apollo 20 km cells ({len(apollo)}) {np.median(apollo):+.2f}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
