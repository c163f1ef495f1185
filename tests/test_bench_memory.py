"""`make bench`'s peak memory is the plugin's: the benchmark harness must not load torch into the process it
measures (torch alone holds ~0.5 GB, which the scaling table once reported as the grid's)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
