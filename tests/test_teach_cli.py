"""``python -m planet_terrain_plugin.core teach`` and ``classify --head``: the command line, end to end, on the
shipped model and shared HiRISE crops (a handful: the embedding runs on the CPU), and its refusals."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planet_terrain_plugin.core.models import default_model_path

V3 = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "hirise-map-proj-v3"
NAMES = {0: "other", 1: "crater", 2: "dark dune"}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GDAL_PAM_ENABLED="NO")
    return subprocess.run([sys.executable, "-m", "planet_terrain_plugin.core", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def crops(per_class: int, skip: int = 0, other: int | None = None) -> list[tuple[str, str]]:
    """Original (not augmented) v3 crops of three classes, ``per_class`` each after the first ``skip`` (``other``
    of the background class when given: background is cheap to label, and a head's abstention learns from it)."""
    if not V3.is_dir():
        pytest.fail(f"the shared HiRISE data {V3} is missing")
    seen: dict[int, list[str]] = {k: [] for k in NAMES}
    for line in (V3 / "labels-map-proj-v3.txt").read_text().splitlines():
        name, cid = line.split()
        if int(cid) in seen and name.count("-") == 1:
            seen[int(cid)].append(str(V3 / "map-proj-v3" / name))
    counts = {k: other if k == 0 and other is not None else per_class for k in NAMES}
    return [(p, NAMES[k]) for k, paths in seen.items() for p in sorted(paths)[skip:skip + counts[k]]]


def test_teach_then_classify_with_the_head(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("image,label\n" + "".join(f"{p},{label}\n" for p, label in crops(5, other=25)))
    done = cli("teach", str(labels), "--out", str(tmp_path / "dunes"), "--name", "dunes-and-craters",
               "--version", "0.1")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["classes"] == ["crater", "dark dune"] and report["background"] is True
    assert set(report["cv"]["per_class_accuracy"]) == {"crater", "dark dune"}
    head = report["head"]
    model = default_model_path()
    assert json.loads(Path(head).read_text(encoding="utf-8"))["backbone"]["model_name"] == "planet_terrain_resnet50"
    held_out = [(p, label) for p, label in crops(3, skip=5) if label != "other"]
    done = cli("classify", "--model", str(model), "--head", head, *[p for p, _ in held_out])
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(set(line["probs"]) == {"crater", "dark dune"} for line in lines)
    assert all((line["model"], line["model_version"]) == ("dunes-and-craters", "0.1") for line in lines)
    right = sum(line["label"] == label for line, (_, label) in zip(lines, held_out))
    assert right >= len(held_out) - 2, lines  # five unseen crops; the few-shot benchmark measures this properly


def test_teach_refuses_what_it_cannot_use(tmp_path):
    existing = tmp_path / "taken.head.json"
    existing.write_text("mine")
    good = tmp_path / "good.csv"
    good.write_text("".join(f"{p},{label}\n" for p, label in crops(2)))
    done = cli("teach", str(good), "--out", str(existing))
    assert done.returncode == 2 and "never replaces a file" in done.stderr and existing.read_text() == "mine"
    bad = tmp_path / "bad.csv"
    bad.write_text("only-one-column\n")
    done = cli("teach", str(bad), "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "row 1 ['only-one-column']: expected 'image path, label'" in done.stderr
    missing = tmp_path / "missing.csv"
    missing.write_text("nowhere.jpg,crater\nnowhere2.jpg,plain\n")
    done = cli("teach", str(missing), "--out", str(tmp_path / "y"))
    assert done.returncode == 2 and "nowhere.jpg' does not exist" in done.stderr
    assert not (tmp_path / "x.head.json").exists() and not (tmp_path / "y.head.json").exists()


def test_classify_refuses_a_head_that_is_not_one(tmp_path):
    fake = tmp_path / "fake.head.json"
    fake.write_text("{}")
    done = cli("classify", "--head", str(fake), crops(1)[0][0])
    assert done.returncode == 2 and "is not a Planet Terrain head file" in done.stderr
