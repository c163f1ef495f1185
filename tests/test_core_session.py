"""onnxruntime sessions: provider choice, fallback, reuse, shape checks; the pipeline and the image CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from model_factory import write_model, write_valid_model, tiny_contract
from paths import HIRISE_V3, RASTERS
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.contract import ContractError, VariantInfo
from concurrent.futures import ThreadPoolExecutor

from planet_terrain_plugin.core.pipeline import classify_blocks, run_ahead
from planet_terrain_plugin.core.session import (ParallelLayout, candidate_providers, load_model, parallel_layout,
                                                physical_cores, resolve_preference)



@pytest.fixture
def tiny(tmp_path):
    session_mod.clear_cache()
    return write_valid_model(tmp_path / "tiny.onnx")


def test_cpu_session_and_reuse(tiny):
    m1, m2 = load_model(str(tiny)), load_model(str(tiny))
    assert m1 is m2, "one session per model file, not one per click"
    assert m1.provider == "CPUExecutionProvider" and "CPUExecutionProvider" in m1.provider_note
    out = m1.logits(np.zeros((2, 3, 32, 32), np.float32))
    assert out.shape == (2, 7)


def test_rewritten_file_gets_a_new_session(tiny):
    m1 = load_model(str(tiny))
    write_valid_model(tiny, temperature=3.0)
    m2 = load_model(str(tiny))
    assert m2 is not m1 and m2.contract.temperature == 3.0


def test_provider_order_and_preference():
    avail = ["CoreMLExecutionProvider", "CPUExecutionProvider", "CUDAExecutionProvider"]
    assert candidate_providers(avail, None) == ["CUDAExecutionProvider", "CoreMLExecutionProvider",
                                                "CPUExecutionProvider"]
    assert candidate_providers(avail, "CPUExecutionProvider")[0] == "CPUExecutionProvider"
    assert candidate_providers(["CPUExecutionProvider"], "CUDAExecutionProvider") == ["CPUExecutionProvider"]
    assert resolve_preference("cuda") == "CUDAExecutionProvider"
    with pytest.raises(ValueError, match="auto, cuda, coreml, cpu"):
        resolve_preference("tpu")


def test_env_variable_selects_provider(monkeypatch):
    monkeypatch.setenv("PLANET_TERRAIN_PROVIDER", "cpu")
    assert resolve_preference(None) == "CPUExecutionProvider"


def test_cuda_that_cannot_start_falls_back_to_cpu_and_says_so(tiny, monkeypatch):
    """onnxruntime is real; only its list of available providers claims a GPU this machine does not have."""
    ort = session_mod.import_onnxruntime()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    m = load_model(str(tiny))
    assert m.provider == "CPUExecutionProvider"
    assert "CUDAExecutionProvider" in m.provider_note and "fell back" in m.provider_note
    grid = load_model(str(tiny), grid=True, cores=2)  # laid out for the GPU, but the CPU runs it
    assert grid.provider == "CPUExecutionProvider" and grid.layout == ParallelLayout(2, 1) and grid.concurrent


def test_wrong_input_shape_is_refused(tmp_path):
    md = tiny_contract(input_size=64).to_metadata()
    path = write_model(tmp_path / "shape.onnx", md, input_size=32)
    with pytest.raises(ContractError, match=r"input_size.*says 64.*\[N, 3, 64, 64\]"):
        load_model(str(path))


def test_class_count_disagreeing_with_contract_is_refused(tmp_path):
    path = write_model(tmp_path / "classes.onnx", tiny_contract().to_metadata(), num_classes=5)
    with pytest.raises(ContractError, match="lists 7 classes.*outputs"):
        load_model(str(path))


def test_classify_blocks_on_a_real_raster_with_nodata(tiny):
    from osgeo import gdal

    ds = gdal.Open(str(RASTERS / "isis2pds__dawnEqui1.cub"))
    arr = ds.GetRasterBand(1).ReadAsArray()
    nodata = arr == ds.GetRasterBand(1).GetNoDataValue()
    assert nodata.any()
    m = load_model(str(tiny))
    results = classify_blocks(m, [arr, arr[:5, :5]], [nodata, np.ones((5, 5), bool)], body="Vesta")
    assert results[0].decision is not None and results[0].decision.body_renormalised
    assert results[0].decision.label in ("crater", "impact ejecta", "unknown")
    assert results[1].decision is None and "valid" in results[1].skipped_reason


def test_parallel_layout_shares_the_cores_on_cpu_and_runs_one_big_batch_on_a_gpu():
    assert parallel_layout("CPUExecutionProvider", 2) == ParallelLayout(2, 1)
    assert parallel_layout("CPUExecutionProvider", 1) == ParallelLayout(1, 1)
    assert parallel_layout("CPUExecutionProvider", 16) == ParallelLayout(4, 4)  # capped runs, more threads each
    assert parallel_layout("CUDAExecutionProvider", 16) == ParallelLayout(1, 0)
    assert 1 <= physical_cores() <= (len(os.sched_getaffinity(0)))


def test_physical_cores_without_an_affinity_mask_asks_psutil_or_counts_cpus(monkeypatch):
    """Windows and macOS have no sched_getaffinity: psutil's physical count, else the logical one."""
    monkeypatch.delattr(os, "sched_getaffinity")
    try:
        import psutil
        expected = psutil.cpu_count(logical=False)
    except ImportError:
        expected = os.cpu_count()
    assert physical_cores() == expected


def test_grid_session_runs_concurrently_and_agrees_with_the_click_session(tiny):
    click = load_model(str(tiny))
    grid = load_model(str(tiny), grid=True, cores=2)
    layout = grid.layout
    assert layout == ParallelLayout(2, 1)
    assert grid is not click and grid.concurrent and not click.concurrent
    assert load_model(str(tiny), grid=True, cores=2) is grid, "cached like any session"
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    with ThreadPoolExecutor(layout.workers) as pool:  # overlapping runs on the one session
        outs = list(pool.map(lambda part: grid.logits(part), np.split(x, 4)))
    np.testing.assert_allclose(np.concatenate(outs), click.logits(x), rtol=1e-5, atol=1e-5)


def test_run_ahead_keeps_order_bounds_work_in_flight_and_raises_at_the_item():
    started = []

    def work(i):
        started.append(i)
        if i == 5:
            raise ValueError("item 5 is bad")
        return i * 10

    with ThreadPoolExecutor(2) as pool:
        stream = run_ahead(range(8), work, pool, depth=2)
        assert next(stream) == 0
        assert max(started) <= 2, "no more than depth items submitted beyond the one consumed"
        assert [next(stream) for _ in range(4)] == [10, 20, 30, 40]
        with pytest.raises(ValueError, match="item 5"):
            next(stream)
    with ThreadPoolExecutor(1) as pool:
        stream = run_ahead(iter(range(100)), lambda i: i, pool)
        assert next(stream) == 0
        stream.close()  # the caller stops early (cancel): nothing more is submitted
    assert list(run_ahead([], lambda i: i, ThreadPoolExecutor(1))) == []
    with pytest.raises(ValueError, match="depth"):
        next(run_ahead([1], lambda i: i, ThreadPoolExecutor(1), depth=0))


def test_cli_prints_service_style_json(tiny):
    images = sorted((HIRISE_V3 / "map-proj-v3").glob("*.jpg"))[:2]
    proc = subprocess.run([sys.executable, "-m", "planet_terrain_plugin.core", "classify", *map(str, images),
                           "--model", str(tiny)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 2
    for rec in lines:
        assert set(rec["probs"]) == set(tiny_contract().class_names)
        assert abs(sum(rec["probs"].values()) - 1) < 1e-4
        assert {"label", "confidence", "abstained", "provider"} <= set(rec)


def test_cli_without_model_says_how_to_get_one(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "planet_terrain_plugin.core", "classify", "x.jpg",
                           "--model", str(tmp_path / "missing.onnx")], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_image_reader_finds_apollo_collar_and_isis_special_pixels():
    """The CLI's reader (GDAL, no QGIS) masks the undeclared zero collar and GDAL-masked special pixels."""
    from osgeo import gdal

    from planet_terrain_plugin.core.images import read_image

    block, mask = read_image(str(RASTERS / "AS15-M-0295_SML_geo.tif"))
    assert mask is not None and mask[0, 0] and mask[-1, -1] and not mask[mask.shape[0] // 2, mask.shape[1] // 2]
    dtm = RASTERS / "demprep__vest64_dtm_specialpixels_downsampled.cub"
    block, mask = read_image(str(dtm))
    ds = gdal.Open(str(dtm))  # keep the dataset alive while its band is used
    declared = block == ds.GetRasterBand(1).GetNoDataValue()
    assert mask.sum() > declared.sum(), "special pixels beyond the declared nodata value are masked too"


def test_variant_note_explains_the_cpu_choice():
    from planet_terrain_plugin.core.models import variant_note

    def note(name, delta=None, agreement=None, **metrics):
        return variant_note(tiny_contract(variant=VariantInfo(name, delta, agreement), metrics=metrics))

    ok = note("int8", -0.002, 0.99, macro_f1=0.41)
    assert ok == ("int8, test macro-F1 0.410, -0.2 pt vs fp32, same decision as fp32 on 99% of test images, "
                  "meets the bar for the CPU default (0.5 pt, 98% agreement)")
    assert "misses" in note("int8", -0.02, 0.99)
    # the shipped model's int8 export: same macro-F1 within 0.2 pt, yet 19% of decisions differ
    assert "misses" in note("int8", -0.0019, 0.8073)
    assert note("fp32", macro_f1=0.5) == "fp32, test macro-F1 0.500"


@pytest.mark.parametrize("int8_delta, shipped, provider, expected", [
    (-0.002, ("int8", "fp16"), "CPUExecutionProvider", "int8"),     # within tolerance: the fast one
    (-0.0057, ("int8", "fp16"), "CPUExecutionProvider", "fp16"),    # outside: fp32's accuracy (fp16 runs as fp32)
    (-0.0057, ("int8", "fp16", "fp32"), "CPUExecutionProvider", "fp32"),
    (-0.002, ("int8", "fp16"), "CUDAExecutionProvider", "fp16"),
    (-0.0057, ("int8",), "CPUExecutionProvider", "int8"),           # the only one there
])
def test_default_variant_per_provider(tmp_path, int8_delta, shipped, provider, expected):
    from planet_terrain_plugin.core.models import default_model_path, variant_path

    for v in shipped:
        variant = VariantInfo(v, int8_delta if v == "int8" else 0.0, 0.99)
        write_valid_model(variant_path(v, tmp_path), variant=variant)
    assert default_model_path(provider, tmp_path) == variant_path(expected, tmp_path)


def test_no_model_installed_says_how_to_make_one(tmp_path, monkeypatch):
    from planet_terrain_plugin.core.models import NoModelError, default_model_path

    monkeypatch.delenv("PLANET_TERRAIN_MODEL", raising=False)
    with pytest.raises(NoModelError, match="make train export"):
        default_model_path("CPUExecutionProvider", tmp_path)
