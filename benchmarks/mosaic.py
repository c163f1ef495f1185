"""`make bench-mosaic`: the batch command on a >= 10k x 10k mosaic, 1 vs 2 Dask workers, memory per worker,
a worker killed mid-run, and the projection to a global CTX mosaic of Mars.

The mosaic is a VRT over the shared Apollo 15 frames (``scripts/mosaic_vrt.py``), under build/bench-mosaic.
Each run is a real ``core.batch.run.run`` on a fresh LocalCluster (processes), one onnxruntime thread per
worker so that 1 and 2 workers compare cores with cores; the shipped model, ``classify_grid``'s default cells.
Peak memory is sampled from the worker processes (psutil, every 0.2 s). Results: build/bench-mosaic/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from benchmarks.common import ROOT, SHARED

OUT = ROOT / "build" / "bench-mosaic"
#: Mars: surface area (m^2) and a global CTX mosaic's pixel size (m), for the projection on paper.
MARS_AREA_M2 = 1.448e14
CTX_GSD_M = 5.0


class PeakMemory:
    """Peak RSS (MB) and CPU seconds of each process under this one, sampled on a thread during a run.

    CPU seconds per cell are what a cell costs whatever else the machine runs (wall-clock rates on a shared
    2-core machine are not)."""

    def __init__(self, period_s: float = 0.2) -> None:
        import psutil

        self._me, self._period, self.peaks, self.cpu_s = psutil.Process(), period_s, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            for child in self._me.children(recursive=True):
                try:
                    rss = child.memory_info().rss / 2**20
                    cpu = child.cpu_times()
                except psutil.Error:
                    continue
                self.peaks[child.pid] = max(self.peaks.get(child.pid, 0.0), rss)
                self.cpu_s[child.pid] = cpu.user + cpu.system
            self._stop.wait(self._period)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def workers(self, n: int) -> list[float]:
        """The ``n`` largest peaks: the worker processes (each holds a model session; nannies are small)."""
        return sorted(self.peaks.values(), reverse=True)[:n]


def one_run(raster: Path, model: str, workers: int, tag: str, kill_after: int | None = None) -> dict:
    """One timed run on a fresh cluster; ``kill_after``: SIGKILL a worker when that many partitions are done."""
    from distributed import get_client

    from planet_terrain_plugin.core.batch.run import RunOptions, run

    out = OUT / "runs" / tag
    shutil.rmtree(out, ignore_errors=True)
    marks: dict = {"killed": None}

    def log(message: str) -> None:
        if message.startswith("Dask dashboard"):
            marks["dashboard"] = time.perf_counter()
            print(f"  {message}", flush=True)
        elif message.startswith("["):
            marks.setdefault("first", time.perf_counter())
            marks["last"] = time.perf_counter()
            done = int(message.split("] ")[1].split("/")[0])
            if kill_after is not None and done == kill_after and marks["killed"] is None:
                address, pid = sorted(get_client().run(os.getpid).items())[0]
                os.kill(pid, signal.SIGKILL)
                marks["killed"] = f"{address} (pid {pid}) after {done} partitions"
                print(f"  killed worker {marks['killed']}", flush=True)

    options = RunOptions(inputs=[str(raster)], out=str(out), model=model, workers=workers, cores_per_worker=1)
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    with PeakMemory() as memory:
        summary = run(options, log)
    wall = time.perf_counter() - start
    work = marks["last"] - marks["dashboard"]
    return {"tag": tag, "workers": workers, "partitions": summary.partitions, "cells": summary.cells,
            "classified": summary.classified, "wall_s": round(wall, 2), "work_s": round(work, 2),
            "cells_per_s": round(summary.cells / work, 1), "classified_per_s": round(summary.classified / work, 1),
            "peak_worker_rss_mb": [round(m) for m in memory.workers(workers)], "killed": marks["killed"],
            "load_avg_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            "cpu_s_per_classified_cell": round(sum(memory.cpu_s.values()) / max(summary.classified, 1), 5),
            "out": str(out)}


def cell_set(folder: str) -> list[tuple]:
    import pyarrow.parquet as pq

    rows = []
    for path in sorted(Path(folder).glob("part-*.parquet")):
        t = pq.read_table(path, columns=["row", "col", "label", "confidence"]).to_pylist()
        rows += [(r["row"], r["col"], r["label"], round(r["confidence"], 5)) for r in t]
    return rows


def projection(per_cell_core_s: float) -> dict:
    """A global CTX mosaic of Mars on paper: cells and core-hours at 100 m and at the default 96-px cells."""
    out = {}
    for name, cell_m in (("100 m cells (20 px)", 100.0), ("480 m cells (96 px, the default)", 96 * CTX_GSD_M)):
        cells = MARS_AREA_M2 / cell_m ** 2
        out[name] = {"cells": cells, "core_hours": cells * per_cell_core_s / 3600}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", default="8x9", help="mosaic size in Apollo frames (8x9: 10,520 x 10,917 px)")
    p.add_argument("--small-tiles", default="3x3", help="the smaller mosaic the memory is compared with")
    p.add_argument("--model", help="ONNX model (default: the shipped one)")
    args = p.parse_args(argv)
    from planet_terrain_plugin.core.models import default_model_path
    from scripts.mosaic_vrt import write_mosaic

    model = args.model or str(default_model_path())
    rasters = SHARED / "data" / "rasters"
    tx, ty = (int(v) for v in args.tiles.split("x"))
    sx, sy = (int(v) for v in args.small_tiles.split("x"))
    big = write_mosaic(rasters, tx, ty, OUT / f"mosaic_{args.tiles}.vrt")
    small = write_mosaic(rasters, sx, sy, OUT / f"mosaic_{args.small_tiles}.vrt")
    runs = []
    for raster, workers, tag, kill in ((big, 1, "big-1w", None), (big, 2, "big-2w", None),
                                       (small, 2, "small-2w", None), (big, 2, "big-2w-killed", 3)):
        print(f"{tag}: {raster.name}, {workers} worker(s){' (a worker killed mid-run)' if kill else ''}",
              flush=True)
        runs.append(one_run(raster, model, workers, tag, kill))
        print(f"  {json.dumps({k: v for k, v in runs[-1].items() if k != 'out'})}", flush=True)
    one, two, _, killed = runs
    same = cell_set(killed["out"]) == cell_set(two["out"])
    result = {"model": Path(model).name, "mosaic": args.tiles, "runs": runs,
              "speedup_2w": round(two["cells_per_s"] / one["cells_per_s"], 2),
              "efficiency_2w": round(two["cells_per_s"] / one["cells_per_s"] / 2, 2),
              "killed_run_identical_cells": same,
              "per_classified_cell_core_s": one["cpu_s_per_classified_cell"],
              "projection": projection(one["cpu_s_per_classified_cell"])}
    (OUT / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
