"""Issue 19's ``--head``: the batch command classifies with a head taught on the model's embedding (issue 17), and
refuses a head taught on another model file before any worker starts. The head is taught here with the real
command line (``teach``) on real images, the run is the real batch command."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from batch_helpers import partition_rows, run_batch
from conftest import APOLLO, raster_path
from model_factory import write_valid_model
from planet_terrain_plugin.core.contract import EMBEDDING, LOGITS


@pytest.fixture(scope="module")
def head_and_model(tmp_path_factory):
    """A tiny model with an embedding output, and a two-class head taught on it from bright and dark images."""
    folder = tmp_path_factory.mktemp("head")
    model = write_valid_model(folder / "tiny.onnx", outputs=(LOGITS, EMBEDDING))
    rows = []
    for i, (name, level) in enumerate([("bright", 220), ("dark", 30)] * 4):
        image = folder / f"{name}{i}.tif"
        data = np.clip(np.random.default_rng(i).normal(level, 12, (48, 48)), 0, 255).astype(np.uint8)
        ds = gdal.GetDriverByName("GTiff").Create(str(image), 48, 48, 1, gdal.GDT_Byte)
        ds.GetRasterBand(1).WriteArray(data)
        ds = None
        rows.append(f"{image},{name}")
    labels = folder / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    taught = run_batch("teach", str(labels), "--model", str(model), "--out", str(folder / "tone.head.json"))
    assert taught.returncode == 0, taught.stderr
    return folder / "tone.head.json", model


def test_a_run_with_a_head_answers_with_the_heads_classes(head_and_model, tmp_path):
    head, model = head_and_model
    done = run_batch("grid", str(raster_path(APOLLO)), "--out", str(tmp_path / "run"), "--model", str(model),
                     "--head", str(head), "--workers", "0", "--cell-px", "200")
    assert done.returncode == 0, done.stderr
    rows = partition_rows(tmp_path / "run")
    assert rows and {"p_bright", "p_dark"} <= set(rows[0]) and "p_crater" not in rows[0]
    assert {r["label"] for r in rows} <= {"bright", "dark", "unknown"}


def test_a_head_of_another_model_is_refused_before_any_work(head_and_model, tmp_path):
    head, _ = head_and_model
    other = write_valid_model(tmp_path / "other.onnx", outputs=(LOGITS, EMBEDDING), model_version="9.9.9-other")
    done = run_batch("grid", str(raster_path(APOLLO)), "--out", str(tmp_path / "run"), "--model", str(other),
                     "--head", str(head), "--workers", "0")
    assert done.returncode == 2
    assert "was taught on the model" in done.stderr and "give that model with --model" in done.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("part-*.parquet"))
