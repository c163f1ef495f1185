"""Grouped, stratified k-fold over source images, across v3 and v1 together: the folds cross-validation scores on.

Why folds by source image: a landmark's seven augmented copies, the landmarks cut from one HiRISE product, and
that product's v1 crops look alike; a fold that shares a source image with its training folds measures memory.
``Record.source_id`` is the HiRISE product id, the same in v1 and v3, so a source's v1 crops land in the fold of
its v3 crops.

Why one fold may be pinned: the shipped model's test split (``planet_terrain_resnet50.split.json``) becomes fold
0's test exactly, so figures already published on it stay comparable; the other sources are shared among the
remaining folds. Without a pin all k folds are free.

Stratification is greedy, in the spirit of :func:`training.splits.assign_sources`: source images are taken rarest
class first (larger first within a class, ties in a seeded random order) and each goes to the free fold where
the sum over classes of the squared fill (landmarks held / the fold's equal share) grows least, so every class
and the fold sizes are balanced together; while a fold lacks the source's rarest class and that class has at
least one source per free fold, only the lacking folds compete. A class spread over fewer source images than
there are folds cannot reach every fold: :func:`fold_counts` shows where it went.

Inside a fold's training sources, validation (early stopping, temperature, threshold) is carved by
:func:`training.splits.assign_sources`, stratified the same way (the pinned fold keeps its split file's train
and validation sources); a fold's test never calibrates anything.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from planet_terrain_plugin.core.models import MODELS_DIR

from .config import TrainConfig
from .dataset import Record
from .splits import assign_sources, check_no_leak, read_split, source_landmark_counts, split_records, summary

#: The shipped model's split file (as ``export.to_onnx.ship`` names it); its test sources are fold 0 by default.
PINNED_SPLIT = MODELS_DIR / f"{TrainConfig.model_name}.split.json"
FOLDS_FORMAT = 1


def pinned_split(split_file: str | Path | None) -> dict[str, str]:
    """Source id -> split of the split file that pins fold 0 ("" or None: no pin, an empty dict)."""
    return read_split(split_file) if split_file else {}


def pinned_test_sources(split_file: str | Path | None) -> set[str]:
    """The test sources of the pinning split file."""
    return {s for s, split in pinned_split(split_file).items() if split == "test"}


def _rarest(c: Counter, totals: Counter) -> int:
    return min(c, key=lambda k: (totals[k], k))


def assign_folds(records: Iterable[Record], k: int = 5, seed: int = 0, pinned_test: Iterable[str] = ()
                 ) -> dict[str, int]:
    """Source id -> fold (0..k-1); the present ``pinned_test`` sources form fold 0. Deterministic from ``seed``."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    counts = source_landmark_counts(records)
    pinned = {s for s in pinned_test if s in counts}
    free = list(range(1, k)) if pinned else list(range(k))
    rest = sorted(s for s in counts if s not in pinned)
    if len(rest) < len(free):
        raise ValueError(f"{len(rest)} source image(s) cannot fill {len(free)} fold(s): use fewer folds")
    totals: Counter = Counter()
    for s in rest:
        totals.update(counts[s])
    n_sources = Counter(cls for s in rest for cls in counts[s])
    share = {cls: n / len(free) for cls, n in totals.items()}
    share_size = sum(totals.values()) / len(free)
    rng = np.random.default_rng(seed)
    tiebreak = dict(zip(rest, rng.permutation(len(rest))))
    fold_rank = dict(zip(free, rng.permutation(len(free))))
    have = {f: Counter() for f in free}
    size = {f: 0 for f in free}

    def order(s: str) -> tuple:
        rare = _rarest(counts[s], totals)
        return totals[rare], rare, -counts[s][rare], tiebreak[s]

    folds = {s: 0 for s in pinned}
    for s in sorted(rest, key=order):
        c, n = counts[s], sum(counts[s].values())
        rare = _rarest(c, totals)
        candidates = [f for f in free if have[f][rare] == 0]
        if not candidates or n_sources[rare] < len(free):
            candidates = free

        def growth(f: int) -> tuple:
            fill = sum(((have[f][cls] + m) / share[cls]) ** 2 - (have[f][cls] / share[cls]) ** 2
                       for cls, m in c.items())
            return fill + ((size[f] + n) / share_size) ** 2 - (size[f] / share_size) ** 2, fold_rank[f]

        best = min(candidates, key=growth)
        folds[s] = best
        have[best].update(c)
        size[best] += n
    return folds


def fold_assignment(records: list[Record], folds: Mapping[str, int], fold: int, val_share: float,
                    pinned: Mapping[str, str] | None = None) -> dict[str, str]:
    """Source id -> "train" / "val" / "test" for one fold: its own sources are the test, validation is carved
    from the other folds' sources (share ``val_share`` of their landmarks).

    ``pinned``: the split file the fold's test came from. When it assigns every source and its test is exactly
    this fold, its train/val are kept as they are, so that fold *is* the published split (and a run trained on
    that split is that fold's run)."""
    if not 0 < val_share < 1:
        raise ValueError(f"the validation share inside the training folds must lie in (0, 1), got {val_share}")
    test = {s for s, f in folds.items() if f == fold}
    if pinned and set(pinned) >= set(folds) and {s for s in folds if pinned[s] == "test"} == test:
        return {s: pinned[s] for s in folds}
    out = assign_sources([r for r in records if r.source_id not in test], (1 - val_share, val_share, 0.0))
    out.update({s: "test" for s in test})
    return out


def check_folds(records: list[Record], folds: Mapping[str, int], k: int) -> None:
    """Every record's source in exactly one of the k folds, every fold non-empty, no landmark in two folds."""
    missing = sorted({r.source_id for r in records} - set(folds))
    if missing:
        raise KeyError(f"source images without a fold: {missing[:5]}")
    by_fold = {str(f): [r for r in records if folds[r.source_id] == f] for f in range(k)}
    empty = [f for f, recs in by_fold.items() if not recs]
    if empty:
        raise ValueError(f"fold(s) {empty} hold no image")
    check_no_leak(by_fold)


def fold_counts(records: list[Record], folds: Mapping[str, int], k: int) -> list[dict]:
    """Per fold: sources, images and landmarks per contract class (``training.splits.summary``'s layout)."""
    by_fold = {f: [r for r in records if folds[r.source_id] == f] for f in range(k)}
    return [dict(fold=f, **summary({"test": recs})["test"]) for f, recs in by_fold.items()]


def write_folds(path: str | Path, records: list[Record], folds: Mapping[str, int], k: int, seed: int,
                pinned_from: str) -> None:
    """The folds file of a cross-validation: source ids per fold and what each fold holds."""
    doc = {"format": FOLDS_FORMAT, "grouping": "source image (HiRISE product id), across v3 and v1",
           "k": k, "seed": seed, "fold0_pinned_from": pinned_from,
           "sources": [sorted(s for s, f in folds.items() if f == i) for i in range(k)],
           "counts": fold_counts(records, folds, k)}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def read_folds(path: str | Path) -> dict[str, int]:
    """Folds file -> source id -> fold."""
    doc = json.loads(Path(path).read_text())
    if doc.get("format") != FOLDS_FORMAT:
        raise ValueError(f"folds file '{path}' has format {doc.get('format')}, expected {FOLDS_FORMAT}")
    return {s: i for i, sources in enumerate(doc["sources"]) for s in sources}


def fold_splits(records: list[Record], assignment: Mapping[str, str]) -> dict[str, list[Record]]:
    """Records per split of one fold, leak-checked; each split must hold known-class images (validation picks
    the checkpoint and fits the temperature on them)."""
    splits = split_records(records, assignment)
    check_no_leak(splits)
    short = [name for name, recs in splits.items() if not any(r.known for r in recs)]
    if short:
        raise ValueError(f"this fold's {' and '.join(short)} split(s) hold no landform image: too few source images "
                         "for these folds (use fewer folds, more data, or no pinned fold)")
    return splits
