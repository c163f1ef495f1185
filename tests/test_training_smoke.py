"""The whole chain at toy size on real data: self-supervised pretraining -> linear probe and fine-tune from
that backbone -> calibrate -> evaluate -> report -> export (parity, int8, fp16) -> load with the plugin core ->
classify a real image in-process and through the image CLI. Also: a deep ensemble of two runs exported as one
graph, and the refusal to export a run with an extra "other" output.

Everything is written under pytest's tmp_path; nothing is mocked.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from paths import HIRISE_V1, HIRISE_V3, RASTERS
import torch

from planet_terrain_plugin.core.contract import VariantInfo, read_contract
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.models import int8_is_acceptable
from planet_terrain_plugin.core.pipeline import classify_blocks
from planet_terrain_plugin.core.session import load_model

REPO = Path(__file__).resolve().parent.parent
V3, V1 = HIRISE_V3, HIRISE_V1
IMAGE = V3 / "map-proj-v3" / "ESP_011289_1950_RED-0021-r90.jpg"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (V3.is_dir() and V1.is_dir()), reason="shared HiRISE data not present")]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from export.to_onnx import export_run
    from training import report
    from training.calibrate import calibrate
    from training.config import TrainConfig
    from training.evaluate import evaluate
    from training.pretrain import pretrain
    from training.train import train

    tmp = tmp_path_factory.mktemp("chain")
    run, ssl = tmp / "run", tmp / "ssl"
    smoke = REPO / "training" / "configs" / "smoke.json"
    common = dict(data_root=str(V3), v1_root=str(V1), ssl_raster_dir=str(RASTERS))
    backbone = pretrain(TrainConfig.load(smoke, out_dir=str(ssl), **common), ssl, cache_dir=None, progress=False)
    cfg = TrainConfig.load(smoke, out_dir=str(run), init=str(backbone), **common)
    train(cfg, run, cache_dir=None, progress=False)
    cal = calibrate(run, cache_dir=None)
    metrics = evaluate(run, cache_dir=None)
    report.plots(json.loads((run / "metrics.json").read_text()), json.loads((run / "history.json").read_text()), run)
    paths = export_run(run, tmp / "export", cache_dir=None, calib_images=16)
    return {"run": run, "ssl": ssl, "cfg": cfg, "cal": cal, "metrics": metrics, "paths": paths}


def test_pretraining_feeds_the_fine_tune(chain):
    import torch as _torch

    ssl, run = chain["ssl"], chain["run"]
    report = json.loads((ssl / "pretrain.json").read_text())
    assert report["method"] == "simclr" and report["pool_images"] > report["pool_hirise"] > 0  # raster crops too
    assert {"probe_before", "probe_after"} <= set(report) and report["history"][0]["images"] > 0
    backbone = _torch.load(ssl / "backbone.pt", weights_only=True)
    assert "conv1.weight" in backbone and not any(k.startswith("fc.") for k in backbone)
    history = json.loads((run / "history.json").read_text())
    assert history[0]["probe"] and not history[-1]["probe"]  # linear probe on the SSL backbone, then fine-tune
    test_split = set(json.loads((run / "split.json").read_text())["sources"]["test"])
    assert test_split and "test" not in chain["cfg"].ssl_splits  # the test split never enters pretraining


def test_ensemble_of_two_runs_exports_as_one_graph(chain, tmp_path):
    from export.to_onnx import export_run
    from training.calibrate import calibrate
    from training.config import TrainConfig
    from training.ensemble import combine
    from training.evaluate import evaluate
    from training.train import train

    second = tmp_path / "seed1"
    cfg = TrainConfig.from_dict({**json.loads((chain["run"] / "config.json").read_text()), "seed": 1, "init": "",
                                 "out_dir": str(second)})
    train(cfg, second, cache_dir=None, progress=False)
    ens = combine([chain["run"], second], tmp_path / "ensemble")
    calibrate(ens, cache_dir=None)
    evaluate(ens, cache_dir=None, extras=False)
    paths = export_run(ens, tmp_path / "export", variants=("fp32",), cache_dir=None)
    contract = read_contract(str(paths["fp32"]))
    assert contract.metrics["parity_max_abs_dprob"] <= 1e-4 and contract.num_classes == 7
    assert contract.outputs == ("logits",), "an ensemble averages several heads: no single embedding to export"
    model = load_model(str(paths["fp32"]), "cpu")
    block, mask = read_image(str(IMAGE))
    (result,) = classify_blocks(model, [block], [mask], body="Mars")
    assert np.isclose(sum(result.decision.probs), 1.0)


def test_run_with_other_output_is_refused_by_export(chain, tmp_path):
    from export.to_onnx import export_run
    from training.config import TrainConfig
    from training.train import train

    run = tmp_path / "other_class"
    cfg = TrainConfig.from_dict({**json.loads((chain["run"] / "config.json").read_text()), "init": "",
                                 "probe_epochs": 0, "outlier_mode": "class", "out_dir": str(run)})
    train(cfg, run, cache_dir=None, progress=False)
    with pytest.raises(ValueError, match="outlier_mode"):
        export_run(run, tmp_path / "export", variants=("fp32",), cache_dir=None)


def test_run_files_written(chain):
    run = chain["run"]
    for name in ("config.json", "split.json", "history.json", "last.pt", "best.pt", "calibration.json",
                 "metrics.json", "confusion.png", "reliability.png", "risk_coverage.png"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["input_size"] == 32
    m = chain["metrics"]
    assert set(m["per_image"]) == {"all", "v3_crops", "v1_crops"}
    assert len(m["per_image"]["all"]["confusion"]) == 8 and "tta" in m and "downsample_x4" in m["robustness"]


def test_resume_continues_from_last_checkpoint(chain, tmp_path):
    import shutil

    from training.config import TrainConfig
    from training.train import train

    run = tmp_path / "run"
    shutil.copytree(chain["run"], run)
    cfg = TrainConfig.from_dict({**json.loads((run / "config.json").read_text()), "epochs": 2})
    train(cfg, run, resume=True, cache_dir=None, progress=False)
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]  # probe, fine-tune, and the one added on resume


def test_exported_variants_carry_contract_and_scores(chain):
    paths, cal = chain["paths"], chain["cal"]
    assert set(paths) == {"fp32", "int8", "fp16"}
    fp32 = read_contract(str(paths["fp32"]))
    assert fp32.temperature == pytest.approx(cal["temperature"]) and fp32.threshold == pytest.approx(cal["threshold"])
    assert fp32.input_size == 32 and fp32.metrics["parity_max_abs_dprob"] <= 1e-4
    assert fp32.variant == VariantInfo("fp32")
    for v in ("int8", "fp16"):
        c = read_contract(str(paths[v]))
        assert c.variant.name == v and -1.0 <= c.variant.macro_f1_delta_vs_fp32 <= 1.0
        assert 0.0 <= c.variant.decision_agreement_vs_fp32 <= 1.0 and 0.0 <= c.metrics["top1_agreement_vs_fp32"] <= 1.0
        assert not {"variant", "macro_f1_delta_vs_fp32", "decision_agreement_vs_fp32"} & set(c.metrics), "one place"
    int8_is_acceptable(read_contract(str(paths["int8"])).variant)  # the typed figures the plugin reads
    for v in ("fp32", "int8", "fp16"):  # the same layout as export/embedding.py gives the shipped file
        assert read_contract(str(paths[v])).outputs == ("logits", "embedding")
        out = load_model(str(paths[v]), "cpu").run(np.zeros((2, 3, 32, 32), np.float32))
        assert out.logits.shape == (2, 7) and out.embedding.shape == (2, 2048) and out.embedding.dtype == np.float32


def test_parity_check_catches_a_different_network(chain):
    from export import parity
    from training.dataset import GrayCache, load_all
    from training.model import build_model

    contract = read_contract(str(chain["paths"]["fp32"]))
    records = load_all(V3, V1, True, max_images=6)
    torch.manual_seed(123)
    other_net = build_model(contract.num_classes)
    with pytest.raises(parity.ParityError):
        parity.check(chain["paths"]["fp32"], other_net, records, GrayCache(records, contract))


def test_classify_real_image_in_process_and_via_cli(chain):
    model = load_model(str(chain["paths"]["int8"]), "cpu")
    block, mask = read_image(str(IMAGE))
    (result,) = classify_blocks(model, [block], [mask], body="Mars")
    assert result.decision is not None
    assert np.isclose(sum(result.decision.probs), 1.0)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "planet_terrain_plugin.core", "classify", str(IMAGE),
                          "--model", str(chain["paths"]["fp32"])], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["model"] == "planet_terrain_resnet50" and set(record["probs"]) == set(model.contract.class_names)


def test_score_through_the_image_entry_point(chain):
    """The user's command line, on the test split's unseen sources, scored against the labels."""
    from training.score_entry_point import score

    result = score(chain["paths"]["fp32"], chain["run"] / "split.json", V3, V1)
    assert result["images"] == result["n_known"] + result["n_other"] > 0 and result["sources"] > 0
    for key in ("macro_f1_argmax", "accuracy_argmax", "known_coverage", "other_rejected"):
        assert 0.0 <= result[key] <= 1.0
    assert result["provider"] == "CPUExecutionProvider"


def test_mirror_views_ship_a_recalibrated_two_view_file(chain, tmp_path):
    """``make mirror-views`` end to end on the toy run's fp16 file, given an OOD score as ``make ood`` adds one:
    a new version that answers an image and its mirror alike, with refitted calibration and measured figures."""
    import shutil

    import onnx

    from export.common import set_contract
    from export.ood_graph import add_ood_score, fit_gaussian, stage_output
    from export.ship_views import build

    fp16 = chain["paths"]["fp16"]
    model = onnx.load(str(fp16))
    stats = fit_gaussian(np.random.default_rng(0).normal(size=(64, 1024)), 8, stage_output(model, "layer3"))
    base = read_contract(str(fp16))
    src = tmp_path / "shipped" / fp16.name
    src.parent.mkdir()
    one_view = base.replace(outputs=("logits", "embedding", "ood_score"), ood_threshold=5.0)
    onnx.save(set_contract(add_ood_score(model, stats), one_view), str(src))
    shutil.copy2(chain["run"] / "split.json", src.parent / f"{base.model_name}.split.json")
    report = build(src, tmp_path / "out", "9.9.9", chain["cfg"], RASTERS)
    two = read_contract(str(tmp_path / "out" / fp16.name))
    assert (two.model_version, two.metrics["test_time_views"], two.variant.name) == ("9.9.9", 2, "fp16")
    assert two.ood_threshold == 5.0 and two.temperature > 0 and "ood_probes_right_reason" in two.metrics
    assert report["probes"]["n"] > 0 and report["test"]["scores"]["per_image"]["all"]["n_known"] > 0
    x = np.random.default_rng(1).normal(size=(2, 3, 32, 32)).astype(np.float32)
    session = load_model(str(tmp_path / "out" / fp16.name), "cpu")
    np.testing.assert_allclose(session.run(x).logits, session.run(x[..., ::-1].copy()).logits, atol=1e-2)


def test_ablation_scores_every_arm_alike_and_resumes(tmp_path):
    """The issue-5 harness at toy size: two trained arms with different levers, their ensemble, TTA on one."""
    from training.ablation import run_ablation

    smoke = REPO / "training" / "configs" / "smoke.json"
    base = tmp_path / "base.json"
    base.write_text(json.dumps({**json.loads(smoke.read_text()), "data_root": str(V3), "v1_root": str(V1)}))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"base": str(base), "runs_dir": str(tmp_path / "runs"), "tta": ["a"], "arms": [
        {"name": "a", "lever": "plain", "overrides": {}},
        {"name": "b", "lever": "levers", "overrides": {"mixup_alpha": 0.4, "cutmix_alpha": 1.0, "mix_p": 1.0,
                                                       "balance": "class_balanced", "focal_gamma": 2.0, "seed": 1}},
        {"name": "e", "lever": "ensemble", "members": ["a", "b"]}]}))
    rows = run_ablation(spec, cache_dir=None)
    assert [r["arm"] for r in rows] == ["a", "a+tta", "b", "e"]
    assert [r["cost"] for r in rows] == [1, 8, 1, 2] and set(rows[0]["recall"]) == set(read_contract_names())
    table = (tmp_path / "runs" / "ablation.md").read_text()
    assert "| e | ensemble |" in table and "AUROC known/other by top_probability" in table
    significance = json.loads((tmp_path / "runs" / "significance.json").read_text())
    assert [r["run"] for r in significance] == ["a", "b", "e"] and "macro_f1_delta_ci" in significance[1]
    assert significance[0]["macro_f1"] == pytest.approx(rows[0]["macro_f1"])  # the same test images, scored alike
    stamp = (tmp_path / "runs" / "a" / "trained.json").stat().st_mtime_ns
    run_ablation(spec, cache_dir=None)  # every step done: nothing is retrained
    assert (tmp_path / "runs" / "a" / "trained.json").stat().st_mtime_ns == stamp


def test_ablation_without_its_starting_run_says_what_to_do(tmp_path):
    from training.ablation import run_ablation

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"base": str(REPO / "training" / "configs" / "smoke.json"),
                                "runs_dir": str(tmp_path / "runs"),
                                "arms": [{"name": "old", "existing": str(tmp_path / "no_such_run")}]}))
    with pytest.raises(FileNotFoundError, match="make train"):
        run_ablation(spec, cache_dir=None)


def read_contract_names() -> list[str]:
    from planet_terrain_plugin.core.contract import HIRISE_LANDFORMS

    return [c.name for c in HIRISE_LANDFORMS]
