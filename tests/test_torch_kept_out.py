"""Torch (~0.5 GB resident) stays in the training tree: out of the plugin, and out of the process whose memory
`make bench` measures (the scaling table once reported torch's memory as the grid's)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import run_in_fresh_qgis

ROOT = Path(__file__).resolve().parents[1]
INT8 = ROOT / "planet_terrain_plugin" / "models" / "planet_terrain_resnet50.int8.onnx"


def test_choosing_the_models_to_measure_loads_no_torch(tmp_path):
    (tmp_path / INT8.name).symlink_to(INT8)
    code = ("import sys\n"
            "import benchmarks.scaling, benchmarks.pipeline\n"
            "from benchmarks.common import model_variants\n"
            "print(sorted(model_variants()), 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, PLANET_TERRAIN_BENCH_MODELS=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "False", f"torch was imported: {proc.stdout}"


def test_the_whole_plugin_loads_no_torch(tmp_path):
    """Torch stays in the training tree: every module of the plugin (core, QGIS layer, Processing, panel) imports
    in a real QGIS without pulling it in (``test_core_boundaries`` holds the core alone)."""
    body = ("import importlib, pkgutil, planet_terrain_plugin as p\n"
            "for m in pkgutil.walk_packages(p.__path__, 'planet_terrain_plugin.'):\n"
            "    importlib.import_module(m.name)\n"
            "print('torch loaded:', 'torch' in sys.modules)\n")
    proc = run_in_fresh_qgis(body, tmp_path / "profile")
    assert "torch loaded: False" in proc.stdout, proc.stdout[-1000:] + proc.stderr[-2000:]
