"""The batch command on a real 2-worker Dask LocalCluster (processes): the dashboard link and progress are
shown, and a worker killed mid-run costs nothing: the run finishes with every cell exactly once.

The run happens in its own process (the cluster's workers are its children); the worker is killed from the
driver's progress callback, with SIGKILL, right after the first partition arrives, while the others are running.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap



from batch_helpers import partition_rows, run_batch
from conftest import APOLLO, raster_path
from paths import REPO

_KILL_A_WORKER = textwrap.dedent("""
    import os, signal, sys
    from distributed import get_client
    from planet_terrain_plugin.core.batch.run import RunOptions, run

    killed = []
    def log(message):
        print(message, file=sys.stderr, flush=True)
        if message.startswith("[") and not killed:
            pids = get_client().run(os.getpid)
            address, pid = sorted(pids.items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            print(f"KILLED worker {address} pid {pid}", file=sys.stderr, flush=True)

    options = RunOptions(inputs=[sys.argv[1]], out=sys.argv[2], model=sys.argv[3], cell_px=16.0, workers=2,
                         partition_cells=64)
    summary = run(options, log)
    print(f"SUMMARY {summary.partitions} {summary.classified}", file=sys.stderr, flush=True)
""")


def test_a_two_worker_cluster_survives_a_killed_worker(tiny_model, tmp_path):
    out, reference = tmp_path / "cluster", tmp_path / "clean"
    done = subprocess.run([sys.executable, "-c", _KILL_A_WORKER, str(raster_path(APOLLO)), str(out), str(tiny_model)],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Dask dashboard: http" in done.stderr and "KILLED worker" in done.stderr
    assert "] 1/" in done.stderr  # the progress bar
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    expected = lines[0]["request"]["inputs"][0]["partitions"]
    assert len({line["done"]["partition"] for line in lines[1:]}) == expected
    clean = run_batch("grid", str(raster_path(APOLLO)), "--out", str(reference), "--model", str(tiny_model),
                      "--workers", "0", "--cell-px", "16", "--partition-cells", "64")
    assert clean.returncode == 0, clean.stderr
    ours = sorted((r["row"], r["col"], r["label"], round(r["confidence"], 5)) for r in partition_rows(out))
    want = sorted((r["row"], r["col"], r["label"], round(r["confidence"], 5)) for r in partition_rows(reference))
    assert len(ours) == len(set(ours)) and ours == want  # nothing duplicated, nothing missing
