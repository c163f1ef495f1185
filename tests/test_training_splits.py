"""The split never lets a landmark or a source image into two splits, and the check catches one that does."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from paths import HIRISE_V1, HIRISE_V3

from training.dataset import Record, load_all
from training.splits import (SplitLeakError, assign_sources, check_no_leak, make_or_load, read_split,
                             split_records, write_split)

REPO = Path(__file__).resolve().parent.parent
V3, V1 = HIRISE_V3, HIRISE_V1
needs_data = pytest.mark.skipif(not (V3.is_dir() and V1.is_dir()), reason="shared HiRISE data not present")


def _records() -> list[Record]:
    out = []
    for s in range(12):
        for lm in range(4):
            label = (s % 7) + 1 if lm == 0 else 0
            for aug in ("", "r90"):
                name = f"SRC{s:02d}-{lm:04d}{'-' + aug if aug else ''}.jpg"
                out.append(Record(name, "v3", label, f"SRC{s:02d}", f"v3/SRC{s:02d}-{lm:04d}", aug, "x"))
    return out


def test_split_is_grouped_and_deterministic():
    recs = _records()
    a1, a2 = assign_sources(recs), assign_sources(list(reversed(recs)))
    assert a1 == a2
    splits = split_records(recs, a1)
    check_no_leak(splits)
    assert all(splits[s] for s in ("train", "val", "test"))


@pytest.mark.parametrize("key", ["landmark", "source"])
def test_check_catches_planted_leak(key):
    recs = _records()
    splits = split_records(recs, assign_sources(recs))
    victim = splits["train"][0]
    if key == "landmark":  # one augmented copy of a train landmark planted in test (under another source id)
        planted = dataclasses.replace(victim, source_id="ELSEWHERE", path="copy.jpg")
    else:  # another landmark from a train source image planted in test
        planted = dataclasses.replace(victim, landmark_id="v3/NEW-9999", path="new.jpg")
    splits["test"].append(planted)
    with pytest.raises(SplitLeakError, match=key):
        check_no_leak(splits)


@needs_data
def test_real_split_has_no_leak_and_covers_rare_classes(tmp_path):
    recs = load_all(V3, V1, True)
    assignment, splits = make_or_load(recs, (0.7, 0.15, 0.15))
    check_no_leak(splits)
    for name in ("val", "test"):  # every known class with >= 3 source images reaches val and test
        assert {r.label for r in splits[name]} == set(range(8)), name
    write_split(tmp_path / "split.json", assignment, splits, (0.7, 0.15, 0.15))
    assert read_split(tmp_path / "split.json") == assignment
