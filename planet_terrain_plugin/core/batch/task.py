"""One partition, on one worker: read its cells, classify them with the core, write its GeoParquet file.

Everything a task needs travels in a :class:`PartitionJob` of plain values; the model session is loaded once per
worker process (``core.session.load_model`` caches it), laid out for the cores the run gave each worker. The chunked
read -> ``prepare_blocks`` -> ``decide_prepared`` flow and the skip rules are ``classify_grid``'s, so both
paths give the same cells the same decisions.
"""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from ..grid import CellSize, rect_area_m2
from ..pipeline import decide_prepared, prepare_blocks, run_ahead
from ..result_schema import COL_FIELD, ROW_FIELD, Provenance, decision_values, result_field_kinds
from ..session import TerrainModel, load_model
from ..bodies import crs_gsd_m as gsd_m
from .parquet import write_partition
from .plan import Partition, make_grid, partition_cells
from .read import read_cell
from .source import RasterFacts

#: Cells read and preprocessed together before inference (whole batches of valid cells).
CHUNK_CELLS = 128
#: GDAL block cache of one worker (bytes): a few rows of tiles; memory stays flat in the number of cells.
WORKER_BLOCK_CACHE = 128 * 2**20


@dataclass(frozen=True)
class PartitionJob:
    """What a worker needs for one partition."""

    facts: RasterFacts
    size: CellSize
    overlap: float
    partition: Partition
    model_path: str
    provider: str | None
    cores: int  # cores this worker's session is laid out for (0: the worker counts its own)
    body: str | None
    threshold: float | None
    batch_size: int
    out_path: str
    projjson: dict | None
    created_utc: str
    extra: dict = field(default_factory=dict)
    head_path: str | None = None  # a taught head on the model's embedding (its classes are the run's)


@dataclass
class _Collected:
    kinds: list
    columns: dict
    boxes: list = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    areas: dict = field(default_factory=dict)
    visited: int = 0
    nodata: int = 0


def run_partition(job: PartitionJob) -> dict:
    """Classify and write one partition; returns its manifest record (file name, checksum, counts).

    The worker's onnxruntime session is laid out for its share of the cores (``load_model(grid=True)``): the
    model runs ``layout.workers`` chunks at once on a small pool while this thread reads the next chunks.
    """
    import rasterio

    model = load_model(job.model_path, job.provider, grid=True, cores=job.cores or None)
    if job.head_path:
        from ..heads import attach_head, read_head

        model = attach_head(model, read_head(job.head_path))
    kinds = result_field_kinds(model.contract, grid=True)
    out = _Collected(kinds, {name: [] for name, _ in kinds})
    grid = make_grid(job.facts, job.size, job.overlap)
    cells = list(partition_cells(grid, job.partition))
    workers = model.layout.workers
    with rasterio.Env(GDAL_CACHEMAX=WORKER_BLOCK_CACHE), rasterio.open(job.facts.path) as src, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        chunks = (_read_chunk(src, job, model, cells[i:i + CHUNK_CELLS], out) for i in range(0, len(cells),
                                                                                          CHUNK_CELLS))
        decide = partial(_decide_chunk, model=model, job=job)
        for reads, results in run_ahead(chunks, decide, pool, depth=workers):
            _collect(job, model, reads, results, out)
    extra = dict(job.extra, partition=job.partition.key, wkt=job.facts.crs.wkt, source=job.facts.path)
    sha = write_partition(job.out_path, kinds, out.columns, out.boxes, job.projjson, extra)
    return {"partition": job.partition.key, "file": os.path.basename(job.out_path), "sha256": sha,
            "cells": out.visited, "classified": len(out.boxes), "nodata": out.nodata,
            "counts": dict(out.counts), "areas_m2": out.areas}


def _read_chunk(src, job: PartitionJob, model: TerrainModel, cells: list, out: _Collected) -> tuple[list, object]:
    """Cells with enough valid pixels (``classify_grid``'s rule) and their preprocessed batch; the rest counted."""
    contract = model.contract
    reads = []
    for cell in cells:
        out.visited += 1
        pixels = read_cell(src, job.facts, cell, contract.input_size, contract.min_valid_fraction)
        if pixels is None or float((~pixels.mask).mean()) < contract.min_valid_fraction:
            out.nodata += 1
        else:
            reads.append((cell, pixels))
    batch = prepare_blocks(contract, [p.data for _, p in reads], [p.mask for _, p in reads]) if reads else None
    return reads, batch


def _decide_chunk(chunk: tuple[list, object], model: TerrainModel, job: PartitionJob) -> tuple[list, list]:
    reads, batch = chunk
    return reads, (decide_prepared(model, batch, job.body, job.threshold, job.batch_size) if reads else [])


def _collect(job: PartitionJob, model: TerrainModel, reads: list, results: list, out: _Collected) -> None:
    """The decided cells' rows (fields, polygon) and the counts per label."""
    contract, facts = model.contract, job.facts
    xmin, ymin, xmax, ymax = facts.extent
    for (cell, pixels), result in zip(reads, results):
        if result.decision is None:
            out.nodata += 1
            continue
        box = (max(cell.xmin, xmin), max(cell.ymin, ymin), min(cell.xmax, xmax), min(cell.ymax, ymax))
        r = pixels.read_box
        provenance = Provenance(
            body=facts.crs.body_name, gsd_m=gsd_m(facts.crs, r[2] - r[0], r[3] - r[1], pixels.width,
                                                  pixels.height, (r[1] + r[3]) / 2),
            source_layer=facts.name, model=contract.model_name, model_version=contract.model_version,
            provider=model.provider, created_utc=job.created_utc)
        values = decision_values(result.decision, contract, provenance)
        values.update({ROW_FIELD: cell.row, COL_FIELD: cell.col})
        for name, _ in out.kinds:
            out.columns[name].append(values.get(name))
        out.boxes.append(box)
        label = result.decision.label
        out.counts[label] += 1
        out.areas[label] = out.areas.get(label, 0.0) + _area_m2(facts, box)


def _area_m2(facts: RasterFacts, box) -> float:
    """Ground area of a cell as ``classify_grid`` reports it; NaN for degrees with no radius."""
    radius = facts.crs.ground_radius_m
    if facts.crs.degrees and not radius:
        return float("nan")
    return rect_area_m2(*box, facts.crs.degrees, radius, facts.crs.unit_to_m)
