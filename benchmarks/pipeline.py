"""The plugin's whole grid pipeline (read -> preprocess -> infer -> write GeoPackage) beside its ceiling.

Runs ``planet_terrain:classify_grid`` in-process over the Apollo 15 frame (24-pixel cells: ~2,800 cells, about
half of them inside the frame's nodata collar) for each precision and batch size and reports classified cells/s
and the ratio to bare onnxruntime at the same batch and precision (benchmarks.ceiling).
"""
from __future__ import annotations

import time

from benchmarks.common import BUILD, RASTER, median_rate, model_variants, print_table
from benchmarks.qgis_app import start

BATCHES = (1, 8, 32)


def run_grid(raster: str, model: str, batch: int, cell_pixels: int, out: str, extent: str | None = None,
             max_cells: int = 10_000_000) -> dict:
    """One classify_grid run; returns the algorithm's outputs plus wall time."""
    start()
    import processing

    params = {"INPUT": raster, "MODEL": model, "BATCH_SIZE": batch, "CELL_SIZE": cell_pixels, "CELL_UNIT": 1,
              "MAX_CELLS": max_cells, "OUTPUT": out}
    if extent:
        params["EXTENT"] = extent
    t0 = time.perf_counter()
    result = processing.run("planet_terrain:classify_grid", params)
    result["seconds"] = time.perf_counter() - t0
    return result


def measure(cell_pixels: int = 24, repeats: int = 3, warmup: int = 0) -> list[dict]:
    """Cells/s per precision and batch; ``warmup`` untimed runs first (sessions loaded, onnxruntime's arenas
    grown for the batch size), as the ceiling has."""
    BUILD.mkdir(parents=True, exist_ok=True)
    rows = []
    for precision, path in model_variants().items():
        for batch in BATCHES:
            out = BUILD / f"pipeline_{precision}_{batch}.gpkg"
            cells = {}

            def work() -> int:
                out.unlink(missing_ok=True)
                r = run_grid(str(RASTER), str(path), batch, cell_pixels, str(out))
                cells["n"] = int(r["CELLS_CLASSIFIED"])
                return cells["n"]  # nodata cells skipped by the collar check are not counted as work done

            rate, all_rates = median_rate(work, repeats, warmup=warmup)
            rows.append({"bench": "pipeline", "precision": precision, "batch": batch, "cells_per_s": rate,
                         "repeats": all_rates, "cells": cells["n"]})
    return rows


def main() -> list[dict]:
    rows = measure()
    print_table("Plugin grid pipeline (read -> preprocess -> infer -> write GeoPackage)",
                ["precision", "batch", "cells/s", "classified cells"],
                [[r["precision"], r["batch"], r["cells_per_s"], r["cells"]] for r in rows])
    return rows


if __name__ == "__main__":
    main()
