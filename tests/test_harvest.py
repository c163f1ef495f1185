"""Reviewed cells -> HiRISE v3 training data -> ``training.dataset`` (issue 17, item 2), and the done-when chain.

Real QGIS, real Processing, a real raster and the tiny ONNX network with its embedding output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from qgis.core import QgsProcessingException

from conftest import VESTA_DAWN, raster_path
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.preprocess import stretched_gray
from planet_terrain_plugin.qgis_io import relabel, review
from planet_terrain_plugin.qgis_io.engine import read_cell
from planet_terrain_plugin.qgis_io.harvest import CLASSMAP_FILE, IMAGE_FOLDER, LABELS_FILE
from planet_terrain_plugin.qgis_io.raster_read import raster_source
from test_teach_review import GRID, TEACH, _by_id, _points, embedding_model, grid_layer, run  # noqa: F401
from training import dataset

EXPORT = "planet_terrain:export_training_data"
SHARED_V3 = os.path.join(os.path.dirname(os.path.dirname(str(raster_path(VESTA_DAWN)))), "hirise-map-proj-v3")


def _corrected_grid(model, corrections: dict[int, str]):
    layer = grid_layer(model)
    contract = session_mod.load_model(str(model)).contract
    ids = sorted(_by_id(layer))
    for n, label in corrections.items():
        review.review_features(layer, [ids[n]], label, contract, reviewer="tester")
    return layer, contract, ids


def test_reviewed_cells_export_as_v3_training_data_that_training_reads(terrain_processing, embedding_model, tmp_path,
                                                                       raster_layer):
    layer, contract, ids = _corrected_grid(embedding_model, {0: "crater", 1: "dark dune", 2: "unknown", 3: "gully"})
    folder = tmp_path / "mine"
    res = run(EXPORT, INPUT=layer, RASTER=str(raster_path(VESTA_DAWN)), MODEL=str(embedding_model),
              OUTPUT=str(folder))
    assert res["IMAGES"] == 3 and json.loads(res["CLASS_COUNTS"]) == {"crater": 1, "dark dune": 1, "other": 1}
    assert sorted(os.listdir(folder)) == sorted([IMAGE_FOLDER, LABELS_FILE, CLASSMAP_FILE])
    records = dataset.read_records(folder, "v3")
    assert [(r.label, r.source_id) for r in records] == [(1, "isis2pds__dawnEqui1"), (2, "isis2pds__dawnEqui1"),
                                                        (0, "isis2pds__dawnEqui1")]
    # the crop is what the model read: the cell through engine.read_cell and the training stretch (JPEG aside)
    source = raster_source(raster_layer(VESTA_DAWN))
    rect = _by_id(layer)[ids[0]].geometry().boundingBox()
    from planet_terrain_plugin.core.grid import Cell

    data, mask, *_ = read_cell(source, Cell(0, 0, rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()),
                               contract.input_size, contract.min_valid_fraction)
    want, _ = stretched_gray(data, contract, mask)
    got, _ = read_image(records[0].path)
    got = got.reshape(want.shape).astype(float)
    assert np.abs(got - want).mean() < 3.0
    both = dataset.load_all(f"{SHARED_V3}{os.pathsep}{folder}", None, False)
    assert len(both) == len(dataset.read_records(SHARED_V3, "v3")) + 3
    with pytest.raises(QgsProcessingException, match="already holds training data"):
        run(EXPORT, INPUT=layer, RASTER=str(raster_path(VESTA_DAWN)), MODEL=str(embedding_model), OUTPUT=str(folder))


def test_a_layer_without_reviews_exports_nothing_and_says_why(terrain_processing, embedding_model, tmp_path):
    layer = grid_layer(embedding_model)
    with pytest.raises(QgsProcessingException, match="no feature of .* is reviewed; accept or correct"):
        run(EXPORT, INPUT=layer, RASTER=str(raster_path(VESTA_DAWN)), MODEL=str(embedding_model),
            OUTPUT=str(tmp_path / "none"))
    assert not os.path.exists(tmp_path / "none" / LABELS_FILE)


def test_done_when_classify_correct_threshold_export_teach_classify_and_cli(terrain_processing, embedding_model,
                                                                           tmp_path):
    """Issue 17's done-when, in one chain."""
    layer, contract, ids = _corrected_grid(embedding_model, {0: "crater", 1: "crater", 2: "impact ejecta"})
    for threshold in (1.0, 0.0, 0.5):
        relabel.relabel_layer(layer, contract, threshold)
        assert [_by_id(layer)[i]["label"] for i in ids[:3]] == ["crater", "crater", "impact ejecta"]
    run(EXPORT, INPUT=layer, RASTER=str(raster_path(VESTA_DAWN)), MODEL=str(embedding_model),
        OUTPUT=str(tmp_path / "data"))
    records = dataset.read_records(tmp_path / "data", "v3")
    assert sorted(r.label for r in records) == [1, 1, 5]
    cells = sorted(layer.getFeatures(), key=lambda f: f["p_crater"])
    examples = [(f.geometry(), "shadow") for f in cells[:3]] + [(f.geometry(), "sunlit") for f in cells[-3:]]
    res = run(TEACH, INPUT=str(raster_path(VESTA_DAWN)), EXAMPLES=_points(layer, examples), LABEL_FIELD="class",
              MODEL=str(embedding_model), OUTPUT=str(tmp_path / "vesta"))
    taught = grid_layer(embedding_model, HEAD=res["OUTPUT"], THRESHOLD=0.0)
    assert {f["label"] for f in taught.getFeatures()} <= {"shadow", "sunlit", "unknown"}
    # the CLI round trip on the exported crops: teach from a CSV, classify with the head
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("image,label\n" + "".join(f"{r.path},{'rim' if r.label == 1 else 'ejecta'}\n"
                                                  for r in records))
    env = dict(os.environ, GDAL_PAM_ENABLED="NO")
    cli = [sys.executable, "-m", "planet_terrain_plugin.core"]
    done = subprocess.run(cli + ["teach", str(csv_path), "--out", str(tmp_path / "cli"), "--model",
                                 str(embedding_model)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    head = json.loads(done.stdout)["head"]
    done = subprocess.run(cli + ["classify", "--model", str(embedding_model), "--head", head, records[0].path],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert set(line["probs"]) == {"rim", "ejecta"} and line["model"] == "cli"
