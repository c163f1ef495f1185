"""What the batch tests share: running the batch command in its own process, and reading its partitions.

The batch command runs as a subprocess (as users run it): rasterio brings its own GDAL, which is kept out of the
test process where QGIS's GDAL lives.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from paths import REPO


def run_batch(*args: str, timeout: int = 300, **popen) -> subprocess.CompletedProcess:
    """``python -m planet_terrain_plugin.core ARGS`` from the repository root; output captured as text."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "planet_terrain_plugin.core", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)


def partition_rows(folder: Path) -> list[dict]:
    """Every cell of a run's partition files, as dicts (``geometry`` as WKB bytes)."""
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for path in sorted(folder.glob("part-*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows
