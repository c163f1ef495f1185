"""Grouped cross-validation: folds by source image across v3 and v1 (no group straddles folds, every image is a
test image exactly once, the shipped test split is fold 0, classes spread within the stated tolerance), and the
runner on real data at toy size: one model per fold through the training loop, validation inside the training
folds, resumable, a summary with bootstrap intervals, and the paired comparison of two arms."""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from paths import HIRISE_V1, HIRISE_V3

from training.config import TrainConfig
from training.cv_splits import (PINNED_SPLIT, assign_folds, check_folds, fold_assignment, fold_counts,
                                fold_splits, pinned_split, pinned_test_sources)
from training.dataset import Record, load_all
from training.splits import SplitLeakError, source_landmark_counts

REPO = Path(__file__).resolve().parent.parent
needs_data = pytest.mark.skipif(not (HIRISE_V3.is_dir() and HIRISE_V1.is_dir()), reason="shared HiRISE data absent")


def _records(n_sources: int = 30) -> list[Record]:
    """Sources with "other" landmarks, one landform landmark each (class by source), v3 copies and a v1 crop."""
    out = []
    for s in range(n_sources):
        src = f"SRC{s:02d}"
        for lm in range(3):
            label = (s % 7) + 1 if lm == 0 else 0
            for aug in ("", "r90", "fh"):
                name = f"{src}-{lm:04d}{'-' + aug if aug else ''}.jpg"
                out.append(Record(name, "v3", label, src, f"v3/{src}-{lm:04d}", aug, "x"))
        out.append(Record(f"v1/{src}-0100.jpg", "v1", 0, src, f"v1/{src}-0100", "", "other"))
    return out


def test_folds_are_grouped_complete_and_deterministic():
    recs = _records()
    folds = assign_folds(recs, 5, seed=3)
    check_folds(recs, folds, 5)
    assert assign_folds(list(reversed(recs)), 5, seed=3) == folds, "record order must not matter"
    assert assign_folds(recs, 5, seed=4) != folds, "the seed chooses among equally good folds"
    for r in recs:  # v1 crops and every v3 copy go where their source image goes
        assert folds[r.source_id] in range(5)
    tests = Counter()
    for i in range(5):
        a = fold_assignment(recs, folds, i, 0.2)
        tests.update(s for s, split in a.items() if split == "test")
        assert {s for s, split in a.items() if split == "test"} == {s for s, f in folds.items() if f == i}
        splits = fold_splits(recs, a)
        assert splits["val"] and splits["train"]
    assert tests == Counter({r.source_id: 1 for r in recs}), "every source image is a test image exactly once"


def test_check_catches_a_landmark_in_two_folds():
    recs = _records()
    folds = assign_folds(recs, 5)
    moved = next(s for s, f in folds.items() if f == 1)
    victim = next(r for r in recs if r.source_id == moved)
    planted = dataclasses.replace(victim, source_id=next(s for s, f in folds.items() if f == 2), path="copy.jpg")
    with pytest.raises(SplitLeakError, match="landmark"):
        check_folds(recs + [planted], folds, 5)


def test_too_few_sources_are_refused():
    with pytest.raises(ValueError, match="fewer folds"):
        assign_folds(_records(3), 5)
    with pytest.raises(ValueError, match="at least 2"):
        assign_folds(_records(), 1)


def test_a_fold_without_landforms_in_a_split_is_refused():
    recs = _records(8)
    landform_free = {r.source_id for r in recs} - {r.source_id for r in recs if r.known and r.label in (1, 2)}
    assignment = {s: ("val" if s in landform_free else "train") for s in {r.source_id for r in recs}}
    assignment["SRC07"] = "test"
    with pytest.raises(ValueError, match="hold no landform image"):
        fold_splits([r for r in recs if r.label in (0, 1, 2) and r.source_id in ("SRC00", "SRC01", "SRC07")]
                    + [r for r in recs if r.source_id in landform_free and not r.known], assignment)


def test_compare_refuses_an_unfinished_arm(tmp_path):
    from training.cv_report import compare_arms

    for arm in ("a", "b"):
        (tmp_path / arm).mkdir()
        (tmp_path / arm / "folds.json").write_text(json.dumps({"sources": [["S1"], ["S2"]]}))
    with pytest.raises(FileNotFoundError, match="unfinished fold.s. fold0, fold1"):
        compare_arms(tmp_path / "a", tmp_path / "b")


def test_a_running_arm_is_summarised_on_its_finished_folds_only(tmp_path, capsys):
    """Real predictions files of two of three folds: the full summary refuses, the partial one pools those two,
    names them, and leaves summary.md unwritten (an arm is chosen on all its folds)."""
    from training.cv import main
    from training.cv_report import PREDICTIONS, read_predictions, summarise, write_predictions

    recs = _records(12)
    sources = [[f"SRC{s:02d}" for s in range(i, 12, 3)] for i in range(3)]
    (tmp_path / "folds.json").write_text(json.dumps({"sources": sources}))
    rng = np.random.default_rng(0)
    for i in (0, 2):
        mine = [r for r in recs if r.source_id in sources[i]]
        (tmp_path / f"fold{i}").mkdir()
        write_predictions(tmp_path / f"fold{i}" / PREDICTIONS, mine, rng.dirichlet(np.ones(7), len(mine)))
    with pytest.raises(FileNotFoundError, match="unfinished fold.s. fold1"):
        summarise(tmp_path, draws=20)
    assert main(["summary", str(tmp_path), "--draws", "20"]) == 2
    assert "fold1" in capsys.readouterr().err
    assert main(["summary", str(tmp_path), "--draws", "20", "--finished-only"]) == 0
    result = json.loads((tmp_path / "summary_partial.json").read_text())
    assert result["partial"] == ["fold0", "fold2"] and [r["run"] for r in result["folds"]] == ["fold0", "fold2"]
    pooled = sum(len(read_predictions(tmp_path / f"fold{i}" / PREDICTIONS).labels) for i in (0, 2))
    assert sum(c["images"] for c in result["per_class"].values()) == sum(
        1 for r in recs if r.label != 0 and any(r.source_id in sources[i] for i in (0, 2)))
    assert pooled == sum(1 for r in recs if r.source_id not in sources[1])
    assert set(result["per_class_by_fold"]) == {"fold0", "fold2"}
    assert "Partial: only fold0, fold2" in capsys.readouterr().out
    assert not (tmp_path / "summary.md").exists()


@pytest.fixture(scope="module")
def real():
    recs = load_all(HIRISE_V3, HIRISE_V1, True)
    return recs, source_landmark_counts(recs)


def _tolerance_holds(recs, counts, folds, free: list[int]) -> None:
    """Per class and free fold: landmarks within the class's largest single source of an equal share (a source
    cannot be split); every class with a source per free fold reaches every free fold; fold sizes within 10 %."""
    per = {row["fold"]: row for row in fold_counts(recs, folds, max(free) + 1)}
    classes = {c for cc in counts.values() for c in cc}
    for c in classes:
        held = [int(per[f]["landmarks"].get(str(c), 0)) for f in free]
        rest = [s for s, f in folds.items() if f in free and c in counts[s]]
        share, biggest = sum(held) / len(free), max((counts[s][c] for s in rest), default=0)
        assert all(abs(h - share) <= biggest for h in held), (c, held, biggest)
        if len(rest) >= len(free):
            assert all(held), (c, held)
    sizes = [sum(per[f]["landmarks"].values()) for f in free]
    assert max(sizes) <= 1.1 * np.mean(sizes) and min(sizes) >= 0.9 * np.mean(sizes), sizes


@needs_data
def test_real_folds_pin_the_shipped_test_split_and_stratify(real):
    recs, counts = real
    pinned = pinned_test_sources(PINNED_SPLIT)
    folds = assign_folds(recs, 5, seed=0, pinned_test=pinned)
    check_folds(recs, folds, 5)
    assert {s for s, f in folds.items() if f == 0} == pinned, "fold 0's test is the shipped test split"
    both = {r.source_id for r in recs if r.version == "v1"} & {r.source_id for r in recs if r.version == "v3"}
    assert len(both) > 100
    assert all(len({folds[r.source_id] for r in recs if r.source_id == s}) == 1 for s in list(both)[:10])
    _tolerance_holds(recs, counts, folds, [1, 2, 3, 4])
    free = assign_folds(recs, 5, seed=0)
    _tolerance_holds(recs, counts, free, [0, 1, 2, 3, 4])


@needs_data
def test_real_fold_validation_stays_inside_the_training_folds(real):
    recs, _ = real
    pinned = pinned_split(PINNED_SPLIT)
    folds = assign_folds(recs, 5, pinned_test=pinned_test_sources(PINNED_SPLIT))
    assert fold_assignment(recs, folds, 0, 0.15 / 0.85, pinned) == pinned, "fold 0 is the shipped split itself"
    assert fold_assignment(recs, folds, 0, 0.15 / 0.85) != pinned, "(carving it anew would differ a little)"
    for i in range(5):
        splits = fold_splits(recs, fold_assignment(recs, folds, i, 0.15 / 0.85, pinned))
        assert {r.source_id for r in splits["test"]} == {s for s, f in folds.items() if f == i}
        assert not {r.source_id for r in splits["val"]} & {s for s, f in folds.items() if f == i}
        known = {r.label for r in splits["val"] if r.known}
        assert len(known) >= 5, (i, known)


# -- the runner, on real data at toy size ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_arms(tmp_path_factory):
    from training.config import TrainConfig
    from training.cv import run_arm

    tmp = tmp_path_factory.mktemp("cv")
    config = REPO / "training" / "configs" / "cv_smoke.json"
    common = dict(data_root=str(HIRISE_V3), v1_root=str(HIRISE_V1))
    arms = {}
    for name, epochs in (("a", 1), ("b", 2)):
        cfg = TrainConfig.load(config, epochs=epochs, **common)
        arms[name] = (cfg, tmp / name, run_arm(cfg, tmp / name, k=2, pin="", cache_dir=str(tmp / "cache"),
                                               draws=100))
    return arms


@pytest.mark.slow
@needs_data
def test_runner_trains_scores_and_summarises_each_fold(smoke_arms):
    from training.cv_report import CV_FIGURES, PREDICTIONS, read_predictions

    cfg, arm, summary = smoke_arms["a"]
    folds = json.loads((arm / "folds.json").read_text())
    seen = []
    for i in range(2):
        fold = arm / f"fold{i}"
        split = json.loads((fold / "split.json").read_text())["sources"]
        assert set(split["test"]) == set(folds["sources"][i])
        assert not set(split["val"]) & set(split["test"]), "validation comes from the training folds"
        assert json.loads((fold / "calibration.json").read_text())["val"]["n_known"] > 0
        pred = read_predictions(fold / PREDICTIONS)
        assert set(pred.sources) <= set(folds["sources"][i])
        np.testing.assert_allclose(pred.probs.sum(1), 1.0, atol=1e-9)
        seen += list(pred.sources)
    assert len(seen) == len(load_all(cfg.data_root, cfg.v1_root, True, cfg.max_images))
    for row in summary["folds"] + [summary["pooled"]["all"]]:
        for _, key in CV_FIGURES:
            lo, hi = row[key + "_ci"]
            assert lo <= row[key] <= hi or not np.isfinite(row[key]), (row["run"], key)
    assert (arm / "summary.md").read_text().count("| fold") == 2


@pytest.mark.slow
@needs_data
def test_runner_resumes_and_refuses_another_config(smoke_arms, capsys):
    from training.cv import ArmMismatch, main, run_arm

    cfg, arm, _ = smoke_arms["a"]
    before = (arm / "fold1" / "predictions.csv").stat().st_mtime_ns
    run_arm(cfg, arm, k=2, pin="", cache_dir=None, draws=10)
    assert "fold 1: done, skipped" in capsys.readouterr().out
    assert (arm / "fold1" / "predictions.csv").stat().st_mtime_ns == before
    other = type(cfg).from_dict({**json.loads(cfg.to_json()), "epochs": 5})
    with pytest.raises(ArmMismatch, match="epochs"):
        run_arm(other, arm, k=2, pin="", cache_dir=None)
    with pytest.raises(ArmMismatch, match="folds"):
        run_arm(cfg, arm, k=3, pin="", cache_dir=None)
    args = ["--config", str(REPO / "training" / "configs" / "cv_smoke.json"), "--out", str(arm), "--folds", "2",
            "--pin", "", "--data-root", str(HIRISE_V3), "--v1-root", str(HIRISE_V1), "--set", "epochs=3"]
    assert main(args) == 2, "the command line says what differs in one line, without a traceback"
    assert "training.cv: " in capsys.readouterr().err


@pytest.mark.slow
@needs_data
def test_compare_gives_a_paired_interval(smoke_arms):
    from training.cv_report import compare_arms

    _, a, _ = smoke_arms["a"]
    _, b, _ = smoke_arms["b"]
    rows, table = compare_arms(a, b, draws=200)
    other = rows[1]
    lo, hi = other["macro_f1_delta_ci"]
    assert lo <= other["macro_f1_delta"] <= hi
    assert "Δ macro-F1 vs a" in table and "| b |" in table


@pytest.mark.slow
@needs_data
def test_tta_arm_refits_on_validation_and_pairs_with_its_arm(smoke_arms, tmp_path):
    """One view is the fold's own scoring (same checkpoint, temperature fitted the same way on validation): the
    TTA arm must reproduce its predictions; with 2 views it is an arm ``compare`` pairs with, also while only
    some folds are finished."""
    from training.cv_report import PREDICTIONS, compare_arms, read_predictions
    from training.cv_tta import tta_arm

    _, arm, _ = smoke_arms["a"]
    assert tta_arm(arm, tmp_path / "one", views=1, cache_dir=None) == [0, 1]
    for i in range(2):
        mine, theirs = (read_predictions(d / f"fold{i}" / PREDICTIONS) for d in (tmp_path / "one", arm))
        np.testing.assert_allclose(mine.probs, theirs.probs, atol=1e-9)
    two = tmp_path / "two"
    tta_arm(arm, two, views=2, cache_dir=None)
    (two / "fold1" / PREDICTIONS).unlink()  # as if fold 1 were still running
    with pytest.raises(FileNotFoundError, match="unfinished"):
        compare_arms(arm, two)
    rows, table = compare_arms(arm, two, draws=100, finished_only=True)
    assert "Partial: only fold0 of 2 folds" in table and len(rows) == 2
    with pytest.raises(ValueError, match="another TTA arm"):
        tta_arm(arm, two, views=4, cache_dir=None)


@pytest.mark.slow
@needs_data
def test_a_distilled_arm_learns_from_its_own_folds_teacher(smoke_arms, tmp_path):
    """Each fold's student learns from the teacher trained on that fold's sources (one teacher for all folds
    would have seen every test image); the same seed and batches as the teacher's arm, so only the teacher's
    term can change the training loss."""
    from training.config import TrainConfig
    from training.cv import fold_config, run_arm
    from training.cv_report import compare_arms

    cfg, teacher_arm, _ = smoke_arms["a"]
    student = TrainConfig.from_dict({**json.loads(cfg.to_json()), "distill_weight": 0.7, "distill_views": 2,
                                     "distill_teacher": str(teacher_arm / "fold{fold}" / "last.pt")})
    arm = tmp_path / "d"
    run_arm(student, arm, k=2, pin="", cache_dir=None, draws=50)
    for i in range(2):
        used = json.loads((arm / f"fold{i}" / "config.json").read_text())["distill_teacher"]
        assert used == str(teacher_arm / f"fold{i}" / "last.pt")
        ours, theirs = (json.loads((d / f"fold{i}" / "history.json").read_text())[0]["train_loss"]
                        for d in (arm, teacher_arm))
        assert ours != pytest.approx(theirs, rel=1e-3), "the teacher's term is in the loss"
    rows, _ = compare_arms(teacher_arm, arm, draws=50)
    assert [r["run"] for r in rows] == ["a", "d"]
    with pytest.raises(ValueError, match="every fold"):
        fold_config(dataclasses.replace(student, distill_teacher=str(teacher_arm / "fold0" / "last.pt")),
                    arm / "fold0", 2, 0)


@pytest.mark.slow
@needs_data
def test_an_ssl_arm_pretrains_each_fold_on_that_folds_sources_only(tmp_path):
    """Fold k's backbone is pretrained without fold k's test images, and fold k's fine-tune starts from it."""
    from paths import RASTERS

    from training.config import TrainConfig
    from training.cv import run_arm
    from training.cv_pretrain import pretrain_folds

    common = dict(data_root=str(HIRISE_V3), v1_root=str(HIRISE_V1), ssl_raster_dir=str(RASTERS), ssl_epochs=1,
                  ssl_batch_size=16, ssl_crops_per_raster=2)
    cfg = TrainConfig.load(REPO / "training" / "configs" / "cv_smoke.json", **common)
    ssl = tmp_path / "ssl"
    assert len(pretrain_folds(cfg, ssl, k=2, pin="", cache_dir=None)) == 2
    folds = json.loads((ssl / "folds.json").read_text())["sources"]
    for i in range(2):
        split = json.loads((ssl / f"fold{i}" / "split.json").read_text())
        assert set(split["sources"]["test"]) == set(folds[i])
        report = json.loads((ssl / f"fold{i}" / "pretrain.json").read_text())
        assert report["pool_hirise"] == sum(sum(split["counts"][s]["images"].values()) for s in ("train", "val"))
    tuned = TrainConfig.load(REPO / "training" / "configs" / "cv_smoke.json", epochs=1, probe_epochs=1,
                             init=str(ssl / "fold{fold}" / "backbone.pt"), **common)
    run_arm(tuned, tmp_path / "tuned", k=2, pin="", cache_dir=None, draws=20)
    for i in range(2):
        fold = tmp_path / "tuned" / f"fold{i}"
        assert json.loads((fold / "config.json").read_text())["init"] == str(ssl / f"fold{i}" / "backbone.pt")
        assert json.loads((fold / "history.json").read_text())[0]["probe"], "a linear probe of the backbone first"
    assert json.loads((tmp_path / "tuned" / "folds.json").read_text())["sources"] == folds, "the same folds"


@needs_data
@pytest.mark.parametrize("size", [128, 160])
def test_an_input_size_arm_exports_and_runs_in_the_plugin(tmp_path, size):
    """The cost column's exports (the shipped exporter at another input size, fp32 and int8) load in the
    plugin's session and classify a real image through its pipeline."""
    from planet_terrain_plugin.core.images import read_image
    from planet_terrain_plugin.core.pipeline import classify_blocks
    from planet_terrain_plugin.core.session import load_model
    from training.config import TrainConfig
    from training.cv_cost import export_random, onnx_ms_per_image

    config = TrainConfig.load(REPO / "training" / "configs" / f"cv_input{size}.json", arch="resnet18",
                              data_root=str(HIRISE_V3), v1_root=str(HIRISE_V1))
    image = HIRISE_V3 / "map-proj-v3" / "ESP_011289_1950_RED-0021-r90.jpg"
    for variant, path in export_random(config, tmp_path).items():
        model = load_model(str(path), "cpu")
        assert model.contract.input_size == size and model.contract.variant.name == variant
        block, mask = read_image(str(image))
        (result,) = classify_blocks(model, [block], [mask], body="Mars")
        assert np.isclose(sum(result.decision.probs), 1.0)
        assert onnx_ms_per_image(path, size, images=32) > 0


@pytest.mark.slow
@needs_data
def test_input_size_exports_run_through_the_plugins_grid_for_the_cells_per_second(tmp_path):
    """``benchmarks.input_sizes`` runs the kept exports through the real classify_grid (a fresh QGIS in a
    child process, as ``make`` runs it) and reports each file's size, precision and classified cells."""
    import subprocess
    import sys

    from training.config import TrainConfig
    from training.cv_cost import export_random

    config = TrainConfig.load(REPO / "training" / "configs" / "cv_input128.json", arch="resnet18",
                              data_root=str(HIRISE_V3), v1_root=str(HIRISE_V1))
    (tmp_path / "models").mkdir()
    export_random(config, tmp_path / "models")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.input_sizes", str(tmp_path / "models"), "--rounds", "1",
                           "--work", str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "work" / "input_sizes.json").read_text())
    assert sorted((r["variant"], r["input_size"]) for r in rows) == [("fp32", 128), ("int8", 128)]
    assert all(r["cells"] > 1000 and r["cells_per_s"] > 0 for r in rows), rows
    assert "Plugin grid pipeline per input size" in proc.stdout


def test_input_size_arms_differ_from_the_default_recipe_only_in_size_and_budget():
    base = json.loads((REPO / "training" / "configs" / "default.json").read_text())
    for size in (128, 160):
        arm = json.loads((REPO / "training" / "configs" / f"cv_input{size}.json").read_text())
        changed = {k for k in set(base) | set(arm) if base.get(k) != arm.get(k)}
        assert changed == {"input_size", "epochs", "time_budget_min", "out_dir"}, changed
        assert arm["input_size"] == size and arm["epochs"] < base["epochs"]


def test_lever_arms_differ_from_the_default_recipe_only_in_their_lever_and_its_equal_budget():
    """The epochs are the default's 200 over the lever's measured cost (docs/cv.md), not a wall-clock budget."""
    base = json.loads((REPO / "training" / "configs" / "default.json").read_text())
    levers = {"cv_distill.json": ({"distill_teacher", "distill_views"}, 127),
              "cv_semi.json": ({"semi_weight"}, 89)}
    for name, (keys, epochs) in levers.items():
        arm = json.loads((REPO / "training" / "configs" / name).read_text())
        changed = {k for k in set(base) | set(arm) if base.get(k) != arm.get(k)}
        assert changed == keys | {"epochs", "time_budget_min", "out_dir"}, (name, changed)
        assert arm["epochs"] == epochs and arm["time_budget_min"] == 0
        TrainConfig.from_dict(arm)  # refuses a key the config does not know
    assert "{fold}" in json.loads((REPO / "training" / "configs" / "cv_distill.json").read_text())["distill_teacher"]


def test_the_ssl_arm_differs_from_the_default_recipe_only_in_its_per_fold_backbone():
    base = json.loads((REPO / "training" / "configs" / "default.json").read_text())
    arm = json.loads((REPO / "training" / "configs" / "cv_ssl.json").read_text())
    assert {k for k in set(base) | set(arm) if base.get(k) != arm.get(k)} == {"init", "out_dir"}
    assert "{fold}" in arm["init"]
    pretrain = json.loads((REPO / "training" / "configs" / "pretrain.json").read_text())
    assert pretrain["ssl_time_budget_min"] == 120, "sized to about 2 h on 2 cores (issue 20)"
