"""The driver of a batch run: plan the partitions, resume from the manifest, fan the rest out over Dask.

A ``LocalCluster`` by default: one worker process per core, one Dask thread each, and each worker's
onnxruntime session laid out for its share of the cores (one session per worker, loaded by its first task). With
``scheduler`` the run uses an existing cluster instead (``dask-jobqueue`` on HPC, ``dask-ssh``, Kubernetes):
every worker needs this package, the batch extra and read access to the inputs and the output folder.

Dask retries a task whose worker died (a lost worker loses only the partitions it was running), and a
partition file is renamed into place only once complete, so a retried task cannot duplicate cells; the
manifest records each finished partition as it arrives, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

from ..contract import read_contract
from ..raster_kind import check_file
from ..result_schema import utc_now
from ..session import physical_cores
from .crs import check_body
from .manifest import Manifest, open_manifest
from ..checksum import file_sha256
from .plan import DEFAULT_PARTITION_CELLS, CellChoice, cell_choice, cell_size, make_grid, partitions
from .source import RasterFacts, raster_facts
from .task import PartitionJob, run_partition


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for (the ``grid`` command's options)."""

    inputs: list[str]
    out: str
    model: str
    cell_size_m: float | None = None
    cell_px: float | None = None
    overlap: float = 0.0
    threshold: float | None = None
    body: str | None = None
    provider: str | None = None
    scheduler: str | None = None
    workers: int | None = None
    cores_per_worker: int | None = None  # cores each local worker's session uses (default: shared out)
    batch_size: int = 32
    partition_cells: int = DEFAULT_PARTITION_CELLS
    head: str | None = None  # a taught head file (``core.heads``) on the model's embedding


@dataclass
class RunSummary:
    partitions: int
    skipped: int
    cells: int
    classified: int
    seconds: float
    dashboard: str | None


def plan_jobs(options: RunOptions, cores: int) -> tuple[dict, list[PartitionJob]]:
    """The request recorded in the manifest and every partition's job (facts read on the client)."""
    contract = read_contract(options.model)
    created = utc_now()
    request = {"inputs": [], "model": {"path": os.path.abspath(options.model),
                                       "sha256": file_sha256(options.model)},
               "overlap": options.overlap, "threshold": options.threshold, "body": options.body,
               "partition_cells": options.partition_cells}
    if options.head:
        contract = _head_contract(options.head, contract, request["model"]["sha256"], options.model)
        request["head"] = {"path": os.path.abspath(options.head), "sha256": file_sha256(options.head)}
    jobs: list[PartitionJob] = []
    for index, path in enumerate(options.inputs):
        facts = raster_facts(path, options.body)
        check_file(path)  # elevation, slope, shaded relief: refused before any worker starts
        body = check_body(facts.crs, contract)
        choice: CellChoice = cell_choice(facts, contract, options.cell_size_m, options.cell_px)
        size = cell_size(facts, choice)
        grid = make_grid(facts, size, options.overlap)
        parts = partitions(index, facts, grid, options.partition_cells)
        st = os.stat(path)
        request["inputs"].append({"path": facts.path, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
                                  "cell": [choice.value, choice.unit], "partitions": len(parts)})
        projjson = _projjson(facts)
        for part in parts:
            jobs.append(PartitionJob(facts, size, options.overlap, part, os.path.abspath(options.model),
                                     options.provider, cores, body, options.threshold, options.batch_size,
                                     os.path.join(os.path.abspath(options.out), part.key + ".parquet"),
                                     projjson, created, {"cell": [choice.value, choice.unit]},
                                     os.path.abspath(options.head) if options.head else None))
    return json.loads(json.dumps(request)), jobs


def _head_contract(head_file: str, contract, model_sha256: str, model_file: str):
    """The contract a head gives the run (its classes), checked on the client before any worker starts."""
    from ..heads import HeadError, binding_problem, read_head

    head = read_head(head_file)
    problem = binding_problem(head, model_file, model_sha256, remedy="give that model with --model")
    if problem:
        raise HeadError(problem)
    return head.contract_for(contract)


def _projjson(facts: RasterFacts) -> dict | None:
    if not facts.crs.valid:
        return None
    from rasterio.crs import CRS

    try:
        return CRS.from_wkt(facts.crs.wkt).to_dict(projjson=True)
    except Exception:  # noqa: BLE001 -- PROJ cannot express it: the WKT in the file's metadata still holds it
        return None


def local_layout(workers: int | None, cores_per_worker: int | None = None) -> tuple[int, int]:
    """(worker processes, cores each) for a LocalCluster on this machine: one worker per core by default, the
    cores shared out between the workers unless ``cores_per_worker`` is given."""
    cores = physical_cores()
    n = max(1, min(workers or cores, cores))
    return n, cores_per_worker or max(1, cores // n)


def run(options: RunOptions, log: Callable[[str], None] = print) -> RunSummary:
    """Classify every partition not yet finished; returns the counts. Raises on a failed partition."""
    started = time.perf_counter()
    if options.scheduler:
        n_workers, cores = None, 0
    else:
        n_workers, cores = local_layout(options.workers, options.cores_per_worker)
    request, jobs = plan_jobs(options, cores)
    manifest = open_manifest(options.out, request)
    done = manifest.verified()
    todo = [j for j in jobs if j.partition.key not in done]
    log(f"{len(jobs)} partition(s); {len(done)} already finished, {len(todo)} to run")
    if todo and n_workers and options.workers != 0:
        log(f"Local cluster: {n_workers} worker process(es), {cores} core(s) each")
    dashboard = None
    if todo:
        if options.workers == 0 and not options.scheduler:  # in this process, no cluster (debugging, tiny runs)
            for job in todo:
                _finish(manifest, run_partition(job), len(jobs), log)
        else:
            dashboard = _run_on_dask(options, n_workers, todo, manifest, len(jobs), log)
    entries = manifest.done.values()
    return RunSummary(len(jobs), len(done), sum(e["cells"] for e in entries), sum(e["classified"] for e in entries),
                      time.perf_counter() - started, dashboard)


def _finish(manifest: Manifest, entry: dict, total: int, log: Callable[[str], None]) -> None:
    manifest.record(entry)
    finished = len(manifest.done)
    width = 30
    bar = "#" * (width * finished // max(total, 1))
    log(f"[{bar:<{width}}] {finished}/{total} partitions  ({entry['partition']}: {entry['classified']} of "
        f"{entry['cells']} cells classified)")


def _run_on_dask(options: RunOptions, n_workers: int | None, todo: list[PartitionJob], manifest: Manifest,
                 total: int, log: Callable[[str], None]) -> str | None:
    from distributed import Client, LocalCluster, as_completed

    if options.scheduler:
        client, cluster = Client(options.scheduler), None
    else:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=40)
        client = Client(cluster)
    try:
        log(f"Dask dashboard: {client.dashboard_link}")
        futures = [client.submit(run_partition, job, key=f"{job.partition.key}-{os.getpid()}", pure=False)
                   for job in todo]
        for future in as_completed(futures):
            _finish(manifest, future.result(), total, log)
        return client.dashboard_link
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def default_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
