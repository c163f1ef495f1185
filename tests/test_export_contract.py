"""The exported contract carries the run's fitted temperature/threshold and test metrics, and survives a
round trip through ONNX metadata_props with foreign metadata left alone."""
from __future__ import annotations

import json

import onnx
import pytest
from model_factory import build_tiny_model

from export.common import run_contract, set_contract
from planet_terrain_plugin.core.contract import KEY_PREFIX, ModelContract, read_contract
from training.config import TrainConfig


def _view(f1: float) -> dict:
    keys = ("macro_f1", "accuracy", "ece_before", "ece_after", "other_rejected", "known_coverage",
            "accuracy_on_accepted", "auroc_known_vs_other")
    return {**{k: f1 for k in keys}, "n_known": 10, "n_other": 20}


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": 1.7, "threshold": 0.62}))
    views = {"all": _view(0.8), "v3_crops": _view(0.85), "v1_crops": _view(0.6)}
    (tmp_path / "metrics.json").write_text(json.dumps({"per_image": views, "per_landmark": views,
                                                       "epochs_trained": 3}))
    return tmp_path


def test_run_contract_takes_calibration_and_metrics(run_dir):
    c = run_contract(run_dir, TrainConfig(input_size=32).base_contract())
    assert (c.temperature, c.threshold, c.input_size) == (1.7, 0.62, 32)
    assert c.metrics["macro_f1"] == 0.8 and c.metrics["macro_f1_v1_crops"] == 0.6
    assert ModelContract.from_metadata(c.to_metadata(), "memory") == c


def test_set_contract_replaces_ours_and_keeps_foreign_metadata(run_dir, tmp_path):
    model = build_tiny_model(32)
    model.metadata_props.add(key="producer_note", value="kept")
    model.metadata_props.add(key=KEY_PREFIX + "temperature", value="99")  # stale: must be replaced
    c = run_contract(run_dir, TrainConfig(input_size=32).base_contract())
    path = tmp_path / "m.onnx"
    onnx.save(set_contract(model, c), str(path))
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["producer_note"] == "kept"
    assert read_contract(str(path)).temperature == 1.7
