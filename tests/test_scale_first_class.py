"""Issue 16: scale as a first-class input, and noise called what it is.

An abstention on pixels coarser than the model's ground-sampling range says ``out_of_scale`` (the cause a user
can act on), a confident label there stays a label with its ``scale_factor`` stored and shown, moving the
threshold treats those cells as a fresh run would, and the Apollo crater finder keeps every crater cell. Noise
abstains as ``out_of_distribution`` (``core.input_check``), not as a model that looked and was unsure. Real QGIS,
the shipped ONNX files, the shared rasters and HiRISE images.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from qgis.core import NULL

from conftest import APOLLO, raster_path
from test_gui_dock import apollo, no_model_setting, plugin  # noqa: F401 -- fixtures
from model_factory import tiny_contract, write_valid_model
from paths import HIRISE_V3, REPO
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.calibrate import Decision, Reason, at_scale, decide
from planet_terrain_plugin.core.contract import read_contract
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.input_check import NOISE_AUTOCORRELATION_LIMIT, lag1_autocorrelation, noise_like
from planet_terrain_plugin.core.models import installed_variants
from planet_terrain_plugin.core.pipeline import classify_blocks
from planet_terrain_plugin.core.preprocess import preprocess
from planet_terrain_plugin.core.result_schema import SCALE_FACTOR_FIELD, Provenance, decision_values
from planet_terrain_plugin.core.session import load_model
from planet_terrain_plugin.gui.messages import REASON_WORDS, abstention_words
from planet_terrain_plugin.gui.result_panel import why_unknown
from planet_terrain_plugin.qgis_io.relabel import relabel_layer

GRID = "planet_terrain:classify_grid"
#: ``make demo``'s 20 km grid on AS15-M-0295: crater and impact ejecta cells per shipped variant, the model
#: card's figures for v1.3.0 (v1.2.0: fp16 22 / 5, int8 20 / 5): out_of_scale must not cost the crater finder a
#: single cell, and a new model must not find fewer craters without the card saying so.
DEMO_COUNTS = {"fp16": {"crater": 22, "impact ejecta": 7}, "int8": {"crater": 22, "impact ejecta": 8}}
PROBS = (0.3, 0.1, 0.1, 0.1, 0.2, 0.1, 0.1)


@pytest.fixture
def _processing(terrain_processing):
    yield terrain_processing


def grid(**params):
    import processing

    return processing.run(GRID, dict(params, OUTPUT="memory:"))["OUTPUT"]


# -- the rule ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reason, factor, expected", [
    (Reason.LOW_CONFIDENCE, 14.0, Reason.OUT_OF_SCALE),
    (Reason.OUT_OF_DISTRIBUTION, 14.0, Reason.OUT_OF_SCALE),
    (Reason.LOW_CONFIDENCE, 1.0, Reason.LOW_CONFIDENCE),        # inside the range
    (Reason.LOW_CONFIDENCE, 0.1, Reason.LOW_CONFIDENCE),        # finer: grids read it reduced, no reason
    (Reason.LOW_CONFIDENCE, math.nan, Reason.LOW_CONFIDENCE),   # size unknown
    (Reason.INVALID_OUTPUT, 14.0, Reason.INVALID_OUTPUT),       # a broken model stays the reason
])
def test_an_abstention_on_coarse_pixels_is_out_of_scale(reason, factor, expected):
    decision = Decision(0, "unknown", 0.3, True, PROBS, False, reason)
    assert at_scale(decision, factor).reason is expected


def test_a_confident_label_on_coarse_pixels_stays_a_label_with_its_factor():
    contract = tiny_contract()
    label = Decision(1, "crater", 0.9, False, PROBS, True)
    assert at_scale(label, 30.0) == label
    values = decision_values(label, contract, Provenance("Moon", 180.0, "AS15", "m", "1", "CPU", "t"))
    assert values["label"] == "crater" and values["reason"] == "" and values[SCALE_FACTOR_FIELD] == 30.0
    unsure = Decision(0, "unknown", 0.2, True, PROBS, True, Reason.LOW_CONFIDENCE)
    values = decision_values(unsure, contract, Provenance("Moon", 180.0, "AS15", "m", "1", "CPU", "t"))
    assert values["reason"] == Reason.OUT_OF_SCALE.value
    inside = decision_values(unsure, contract, Provenance("Mars", 1.0, "H", "m", "1", "CPU", "t"))
    assert inside["reason"] == Reason.LOW_CONFIDENCE.value and inside[SCALE_FACTOR_FIELD] == 1.0
    unknown = decision_values(unsure, contract, Provenance("Mars", math.nan, "H", "m", "1", "CPU", "t"))
    assert unknown[SCALE_FACTOR_FIELD] is None


# -- the Apollo crater finder ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(set(DEMO_COUNTS) & set(installed_variants())))
def test_demo_grid_keeps_every_crater_and_says_why_the_rest_are_unknown(_processing, variant):
    session_mod.clear_cache()
    layer = grid(INPUT=str(raster_path(APOLLO)), MODEL=str(installed_variants()[variant]), CELL_SIZE=20000,
                 CELL_UNIT=0)
    features = list(layer.getFeatures())
    counts = Counter(f["label"] for f in features)
    assert {k: counts[k] for k in DEMO_COUNTS[variant]} == DEMO_COUNTS[variant]
    assert all(f[SCALE_FACTOR_FIELD] > 10 for f in features)  # ~200 m/px read vs the model's 12 m/px
    assert {f["reason"] for f in features if f["label"] != "unknown"} == {""}
    assert {f["reason"] for f in features if f["label"] == "unknown"} == {Reason.OUT_OF_SCALE.value}
    assert why_unknown(layer) == f"Why unknown: {REASON_WORDS[Reason.OUT_OF_SCALE]} ({counts['unknown']})"


def test_moving_the_threshold_on_coarse_cells_equals_a_fresh_run(_processing, tiny_model):
    raster = str(raster_path(APOLLO))
    params = dict(INPUT=raster, MODEL=str(tiny_model), CELL_SIZE=96, CELL_UNIT=1)
    layer = grid(THRESHOLD=1.0, **params)
    assert {f["reason"] for f in layer.getFeatures()} == {Reason.OUT_OF_SCALE.value}
    contract = read_contract(str(tiny_model))
    seen = set()
    for threshold in (0.0, 0.5, 1.0, 0.35):
        relabel_layer(layer, contract, threshold)
        fresh = grid(THRESHOLD=threshold, **params)
        got = sorted((f["row"], f["col"], f["label"], f["reason"]) for f in layer.getFeatures())
        assert got == sorted((f["row"], f["col"], f["label"], f["reason"]) for f in fresh.getFeatures())
        seen |= {g[3] for g in got}
    assert seen == {"", Reason.OUT_OF_SCALE.value}  # labels come back when the threshold allows them


def test_out_of_distribution_coarse_cells_stay_unknown_at_every_threshold(_processing, tmp_path):
    ood = write_valid_model(tmp_path / "ood.onnx", outputs=("logits", "embedding", "ood_score"), ood_threshold=-1.0)
    layer = grid(INPUT=str(raster_path(APOLLO)), MODEL=str(ood), CELL_SIZE=96, CELL_UNIT=1, THRESHOLD=0.0)
    assert {(f["label"], f["reason"]) for f in layer.getFeatures()} == {("unknown", Reason.OUT_OF_SCALE.value)}
    for threshold in (0.0, 0.5, 1.0):
        relabel_layer(layer, read_contract(str(ood)), threshold)
        assert {(f["label"], f["reason"]) for f in layer.getFeatures()} == {("unknown", Reason.OUT_OF_SCALE.value)}
    assert all(f["ood_score"] not in (None, NULL) for f in layer.getFeatures())


def test_image_cli_line_carries_the_scale_factor(tiny_model):
    proc = subprocess.run([sys.executable, "-m", "planet_terrain_plugin.core", "classify", str(raster_path(APOLLO)),
                           "--model", str(tiny_model), "--threshold", "1"], capture_output=True, text=True,
                          timeout=180, cwd=REPO, check=False)
    (line,) = [json.loads(x) for x in proc.stdout.splitlines()]
    assert line["scale_factor"] > 10 and line["reason"] == Reason.OUT_OF_SCALE.value


def test_the_panel_says_how_much_coarser():
    words = abstention_words(Reason.OUT_OF_SCALE.value, 0.4, 0.75, 17.2)
    assert words.startswith("the pixels are 17x coarser than the model was trained on")
    assert set(REASON_WORDS) == set(Reason) - {Reason.NONE}  # every reason has its plain words


# -- noise -----------------------------------------------------------------------------------------------------------
def test_noise_falls_below_the_limit_and_every_sampled_hirise_image_above_it():
    contract = tiny_contract(input_size=96)
    rng = np.random.default_rng(5)
    noise = [rng.integers(0, 256, (side, side)).astype(np.uint8) for side in (96, 128, 300, 1000)]
    noise_ac = lag1_autocorrelation(np.stack([preprocess(b, contract).tensor for b in noise]))
    assert noise_ac.max() < NOISE_AUTOCORRELATION_LIMIT, noise_ac
    images = sorted((HIRISE_V3 / "map-proj-v3").glob("*.jpg"))[::25]
    assert len(images) > 200
    tensors = np.stack([preprocess(read_image(str(p))[0], contract).tensor for p in images])
    assert not noise_like(tensors).any(), lag1_autocorrelation(tensors).min()
    assert lag1_autocorrelation(np.full((1, 3, 8, 8), 0.5)).tolist() == [1.0]  # flat is smooth, not noise


def test_noise_like_inputs_are_out_of_distribution_whatever_the_softmax():
    contract = tiny_contract()
    logits = np.array([[9.0, 0, 0, 0, 0, 0, 0], [9.0, 0, 0, 0, 0, 0, 0]])
    decisions = decide(logits, contract, noise_like=np.array([True, False]))
    assert [d.reason for d in decisions] == [Reason.OUT_OF_DISTRIBUTION, Reason.NONE]


@pytest.mark.parametrize("variant", sorted(installed_variants()))
def test_white_noise_through_the_shipped_model_is_out_of_distribution(variant):
    session_mod.clear_cache()
    model = load_model(str(installed_variants()[variant]))
    rng = np.random.default_rng(11)
    blocks = [rng.integers(0, 256, (160, 160)).astype(np.uint8), np.clip(rng.normal(128, 40, (200, 200)), 0, 255)]
    results = classify_blocks(model, blocks, [None, None])
    assert [r.decision.reason for r in results] == [Reason.OUT_OF_DISTRIBUTION] * 2


def test_the_legend_says_why_cells_are_unknown_after_a_panel_run(plugin, no_model_setting, tiny_model, apollo,
                                                                  tmp_path):
    from qgis.core import QgsApplication

    from planet_terrain_plugin.gui import run_panel
    from planet_terrain_plugin.qgis_io.model_choice import install_model_setting
    from test_gui_dock import choose, run_and_wait
    from test_gui_panel_fit import DOCK_WIDTH, clipped, show_at

    install_model_setting(str(tiny_model))
    plugin.dock_action.trigger()
    dock = plugin.dock
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    dock.run_box.set_threshold(0.99)  # the tiny model is sure of nothing: every cell abstains
    assert run_and_wait(dock)
    scroll = show_at(dock, DOCK_WIDTH)
    text = dock.result_box.reasons_label.text()
    assert text.startswith("Why unknown: ") and REASON_WORDS[Reason.OUT_OF_SCALE] in text, text
    assert clipped(scroll) == [], "\n".join(clipped(scroll))
    QgsApplication.processEvents()
    dock.widget().widget().grab().save(str(tmp_path / "panel.png"))
    print("panel picture:", tmp_path / "panel.png")
