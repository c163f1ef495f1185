"""Deterministic train/val/test split grouped by source image, across v3 and v1 together.

Why group by source image: augmented copies of one landmark, and neighbouring landmarks cut from one HiRISE
product, look alike; if they straddle splits the test figures measure memory, not generalisation. v1 and v3
share source products, so the groups span both versions.

Stratification is greedy: source images are taken rarest class first and each goes to the split whose share of
that class is furthest below its target, so a rare class (impact ejecta: 11 landmarks) lands in val and test
whenever it comes from at least three source images.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Mapping

from .dataset import Record

SPLITS = ("train", "val", "test")
SPLIT_FORMAT = 1
#: On equal fill the test split wins over val: test figures are the ones reported, val only calibrates.
TIE_ORDER = ("train", "test", "val")


class SplitLeakError(AssertionError):
    """A landmark or source image occurs in more than one split."""


def source_landmark_counts(records: Iterable[Record]) -> dict[str, Counter]:
    """Source id -> Counter of landmarks per contract class (landmarks, not augmented copies)."""
    seen: dict[str, dict[str, int]] = defaultdict(dict)
    for r in records:
        seen[r.source_id][r.landmark_id] = r.label
    return {s: Counter(lm.values()) for s, lm in seen.items()}


def assign_sources(records: list[Record], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
                   ) -> dict[str, str]:
    """Source id -> split name; deterministic (no randomness: sorted inputs and a fixed tie order)."""
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    counts = source_landmark_counts(records)
    totals: Counter = Counter()
    for c in counts.values():
        totals.update(c)
    frac = dict(zip(SPLITS, fractions))
    have: dict[str, Counter] = {s: Counter() for s in SPLITS}
    landmarks = {s: 0 for s in SPLITS}
    n_landmarks = sum(totals.values())

    def rarest(source: str) -> tuple:
        c = counts[source]
        rare = min(c, key=lambda k: (totals[k], k))
        return (totals[rare], rare, -c[rare], source)

    n_sources = Counter(k for c in counts.values() for k in c)
    order = sorted(counts, key=rarest)
    assignment: dict[str, str] = {}
    for source in order:
        c = counts[source]
        rare = min(c, key=lambda k: (totals[k], k))
        open_splits = [s for s in SPLITS if frac[s] > 0]
        # Coverage first: while some split lacks this class and enough sources exist to give each split one,
        # only those splits compete. Then the split least filled *after* taking the source wins, so the
        # largest sources of a rare class go to train and the smaller ones to val and test.
        lacking = [s for s in open_splits if have[s][rare] == 0]
        if lacking and n_sources[rare] >= len(open_splits):
            open_splits = lacking

        stratify = n_sources[rare] >= len(open_splits)  # too few groups to share a class: balance size only

        def fill(split: str) -> tuple:
            return ((have[split][rare] + c[rare]) / (frac[split] * totals[rare]) if stratify else 0.0,
                    (landmarks[split] + sum(c.values())) / (frac[split] * n_landmarks), TIE_ORDER.index(split))

        best = min(open_splits, key=fill)
        assignment[source] = best
        have[best].update(c)
        landmarks[best] += sum(c.values())
    return assignment


def split_records(records: list[Record], assignment: Mapping[str, str]) -> dict[str, list[Record]]:
    """Records per split; every record's source must be assigned."""
    missing = sorted({r.source_id for r in records} - set(assignment))
    if missing:
        raise KeyError(f"source images without a split: {missing[:5]}{'...' if len(missing) > 5 else ''}")
    out: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for r in records:
        out[assignment[r.source_id]].append(r)
    return out


def check_no_leak(splits: Mapping[str, list[Record]]) -> None:
    """Raise :class:`SplitLeakError` if any landmark id or source id occurs in two splits."""
    for key in ("landmark_id", "source_id"):
        where: dict[str, set[str]] = defaultdict(set)
        for name, recs in splits.items():
            for r in recs:
                where[getattr(r, key)].add(name)
        leaks = {k: sorted(v) for k, v in where.items() if len(v) > 1}
        if leaks:
            sample = dict(sorted(leaks.items())[:5])
            raise SplitLeakError(f"{len(leaks)} {key.replace('_id', '')}(s) occur in more than one split: {sample}")


def summary(splits: Mapping[str, list[Record]]) -> dict:
    """Images and landmarks per class and split (class ids as strings, for JSON)."""
    out = {}
    for name, recs in splits.items():
        images = Counter(str(r.label) for r in recs)
        lms = Counter(str(lab) for lab in {r.landmark_id: r.label for r in recs}.values())
        by_version = Counter(r.version for r in recs)
        out[name] = {"images": dict(sorted(images.items())), "landmarks": dict(sorted(lms.items())),
                     "sources": len({r.source_id for r in recs}), "images_by_version": dict(by_version)}
    return out


def write_split(path: str | Path, assignment: Mapping[str, str], splits: Mapping[str, list[Record]],
                fractions: tuple[float, float, float]) -> None:
    """The split file shipped next to the model: source ids per split plus the counts it yields."""
    doc = {"format": SPLIT_FORMAT, "grouping": "source image (HiRISE product id), across v3 and v1",
           "fractions": list(fractions),
           "sources": {s: sorted(k for k, v in assignment.items() if v == s) for s in SPLITS},
           "counts": summary(splits)}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def read_split(path: str | Path) -> dict[str, str]:
    """Split file -> source id -> split name."""
    doc = json.loads(Path(path).read_text())
    if doc.get("format") != SPLIT_FORMAT:
        raise ValueError(f"split file '{path}' has format {doc.get('format')}, expected {SPLIT_FORMAT}")
    return {src: split for split, srcs in doc["sources"].items() for src in srcs}


def make_or_load(records: list[Record], fractions: tuple[float, float, float], split_file: str = ""
                 ) -> tuple[dict[str, str], dict[str, list[Record]]]:
    """The split for this run (from ``split_file`` if given), leak-checked before it is used."""
    assignment = dict(read_split(split_file)) if split_file else assign_sources(records, fractions)
    unassigned = sorted({r.source_id for r in records} - set(assignment))
    if unassigned:  # a bigger dataset than the split file knew: new sources go to test, never to train
        assignment.update({s: "test" for s in unassigned})
    splits = split_records(records, assignment)
    check_no_leak(splits)
    return assignment, splits
