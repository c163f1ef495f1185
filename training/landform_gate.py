"""``make landform-gate``: would the known-vs-"other" direction, as a gate on Mars beside a lower softmax
threshold, be worth shipping?

``make known-direction`` scores the direction *instead of* the softmax. A plugin cannot simply swap them: the
softmax threshold is the one the user moves, and on the Moon and Vesta it is what keeps the Apollo crater
finding honest. So the candidate measured here is a pair — a cell is labelled when its top probability reaches a
lower threshold ``ts`` *and* its direction score reaches ``td`` — chosen on the validation split (``ts`` the
grid value whose pair keeps the most known images at 90 % "other" rejected, the higher on a tie; ``td`` the
direction's value that then rejects 90 % of "other"). The decision is made on validation: the interval of the
pair's gain over the softmax, over validation source images. ``--test`` reads the test split once, for the
model card. The Apollo 20 km cells show what the gate would do on the Moon (the body's own rule, threshold
unchanged).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from planet_terrain_plugin.core.calibrate import decide, softmax
from planet_terrain_plugin.core.contract import EMBEDDING, LOGITS, OOD_SCORE, UNKNOWN_LABEL, ModelContract

from training.known_direction import fit_direction
from training.metrics import coverage_at_rejection, rejection_threshold
from training.ood import apollo_tensors
from training.ood_data import load_data, onnx_outputs, records_outputs
from training.significance import interval, source_draws

#: The lower softmax thresholds the pair may use; the contract's own threshold is always tried too.
SOFTMAX_GRID = tuple(np.round(np.arange(0.20, 0.71, 0.05), 2))


def pair_score(top: np.ndarray, direction: np.ndarray, ts: float) -> np.ndarray:
    """The direction score where the top probability reaches ``ts``, else -inf: thresholding it at ``td``
    labels exactly the cells the pair (ts, td) labels."""
    return np.where(np.asarray(top) >= ts, np.asarray(direction, float), -np.inf)


def fit_pair(top: np.ndarray, direction: np.ndarray, known: np.ndarray,
             grid: tuple[float, ...]) -> tuple[float, float, float]:
    """(ts, td, known kept) of the pair that keeps the most known images at 90 % "other" rejected on these
    images; the higher ``ts`` on a tie (the softmax threshold stays as meaningful as it can)."""
    best = None
    for ts in sorted(grid):
        s = pair_score(top, direction, ts)
        kept = coverage_at_rejection(s[known], s[~known])
        if best is None or kept >= best[2]:
            best = (ts, rejection_threshold(s[~known]), kept)
    return best


def operating(top: np.ndarray, direction: np.ndarray, ood: np.ndarray, known: np.ndarray, ts: float, td: float,
              ood_limit: float) -> tuple[float, float]:
    """(known kept, "other" rejected) with fixed thresholds, the OOD gate included."""
    keep = (top >= ts) & (direction > td) & (ood <= ood_limit)
    return float(keep[known].mean()), float(1 - keep[~known].mean())


def moon_labels(outs: dict, contract: ModelContract, gate: np.ndarray | None = None,
                threshold: float | None = None) -> dict[str, int]:
    """Label counts on Apollo cells under the Moon's rule (at ``threshold``, else the contract's), optionally
    with ``gate`` (bool per cell) on top."""
    labels = np.array([d.label for d in decide(outs[LOGITS], contract, body="Moon", threshold=threshold,
                                               ood_scores=outs[OOD_SCORE])])
    if gate is not None:
        labels = np.where(gate, labels, UNKNOWN_LABEL)
    return {k: int(v) for k, v in zip(*np.unique(labels, return_counts=True))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="planet_terrain_plugin/models/planet_terrain_resnet50.fp16.onnx")
    p.add_argument("--split", default="planet_terrain_plugin/models/planet_terrain_resnet50.split.json")
    p.add_argument("--rasters", default="../shared/data/rasters")
    p.add_argument("--test", action="store_true", help="also score the test split (once, for the model card)")
    a = p.parse_args(argv)
    data = load_data(a.model, a.split)
    c = data.contract
    train = records_outputs(a.model, data, data.splits["train"], "train")
    direction = fit_direction(train[EMBEDDING], np.array([r.known for r in data.splits["train"]]), 16, 1e-2)
    split = {}
    for tag in ("val", "test") if a.test else ("val",):
        o = records_outputs(a.model, data, data.splits[tag], tag)
        split[tag] = (softmax(o[LOGITS], c.temperature).max(1), direction(o[EMBEDDING]), np.ravel(o[OOD_SCORE]),
                      np.array([r.known for r in data.splits[tag]]), np.array([r.source_id for r in data.splits[tag]]))
    top, d, ood, known, sources = split["val"]
    ts, td, kept = fit_pair(top, d, known, SOFTMAX_GRID + (c.threshold,))
    s = pair_score(top, d, ts)
    diffs = [coverage_at_rejection(s[i][known[i]], s[i][~known[i]])
             - coverage_at_rejection(top[i][known[i]], top[i][~known[i]]) for i in source_draws(sources, 2000)]
    lo, hi = interval(diffs)
    print(f"Pair chosen on validation: softmax >= {ts:.2f} and direction > {td:+.3f} "
          f"(contract threshold {c.threshold}); known kept at 90 % \"other\" rejected {kept:.3f} against the "
          f"softmax's {coverage_at_rejection(top[known], top[~known]):.3f}, difference 95 % interval over "
          f"validation sources [{lo:+.3f}, {hi:+.3f}].\n")
    print("| split | gate | known kept @90 % rejected (own split) | known kept / \"other\" rejected "
          "(validation thresholds, OOD gate on) |\n|---|---|---|---|")
    for tag, (top, d, ood, known, _) in split.items():
        for name, score, pair in (("softmax", top, (c.threshold, -np.inf)), ("direction alone", d, None),
                                  ("pair", pair_score(top, d, ts), (ts, td))):
            own = coverage_at_rejection(score[known], score[~known])
            op = "-" if pair is None else "%.3f / %.3f" % operating(top, d, ood, known, *pair, c.ood_threshold)
            print(f"| {tag} | {name} | {own:.3f} | {op} |")
    apollo = onnx_outputs(a.model, apollo_tensors(Path(a.rasters), c))
    print(f"\nApollo 20 km cells ({len(apollo[LOGITS])}), the Moon's rule: {moon_labels(apollo, c)}; with the "
          f"direction gate as well: {moon_labels(apollo, c, direction(apollo[EMBEDDING]) > td)}; at the pair's "
          f"softmax threshold {ts:.2f} without the gate: {moon_labels(apollo, c, threshold=ts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
