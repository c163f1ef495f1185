"""Cells/s of the plugin's grid pipeline per model input size: the input-size arms' cost, measured in the plugin.

    python -m training.cv_cost --keep build/bench/input_sizes      # random-weight exports at 96/128/160 px
    python -m benchmarks.input_sizes build/bench/input_sizes       # or: make bench-input-sizes

Every ``*.onnx`` of the folder (its contract carries its input size) runs ``planet_terrain:classify_grid`` over
the Apollo 15 frame as ``make bench``'s pipeline row does (24 px cells, batch 32: read, resize to the model's
input, infer, write a GeoPackage), in interleaved rounds so a busy spell of the machine falls on every file
alike; one untimed round first loads the sessions. Speed does not depend on the weights, so no arm has to be
trained to price it.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks.common import BUILD, RASTER, print_table
from benchmarks.pipeline import run_grid

BATCH = 32
CELL_PIXELS = 24


def measure(models: list[Path], rounds: int = 3, work: Path = BUILD) -> list[dict]:
    """One row per model file: classified cells, the median cells/s over ``rounds`` and every round's figure
    (the grids are written in ``work``)."""
    from planet_terrain_plugin.core.contract import read_contract

    work.mkdir(parents=True, exist_ok=True)
    rates: dict[Path, list[float]] = {m: [] for m in models}
    cells: dict[Path, int] = {}
    for r in range(rounds + 1):
        for m in models:
            out = work / f"input_size_{m.stem}.gpkg"
            out.unlink(missing_ok=True)
            res = run_grid(str(RASTER), str(m), BATCH, CELL_PIXELS, str(out))
            cells[m] = int(res["CELLS_CLASSIFIED"])
            if r:  # round 0 loads the sessions and grows onnxruntime's arenas
                rates[m].append(cells[m] / res["seconds"])
    rows = []
    for m in models:
        contract = read_contract(str(m))
        rows.append({"model": m.name, "input_size": contract.input_size, "variant": contract.variant.name,
                     "cells": cells[m], "cells_per_s": statistics.median(rates[m]), "rounds": rates[m]})
    return sorted(rows, key=lambda r: (r["variant"], r["input_size"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="ONNX files to run (python -m training.cv_cost --keep FOLDER)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", type=Path, default=BUILD, help="where the grids and input_sizes.json are written")
    a = p.parse_args(argv)
    models = sorted(a.folder.glob("*.onnx"))
    if not models:
        print(f"benchmarks.input_sizes: no .onnx file in '{a.folder}'; write them with "
              f"`python -m training.cv_cost --keep {a.folder}`")
        return 2
    rows = measure(models, a.rounds, a.work)
    print_table("Plugin grid pipeline per input size (Apollo 15 frame, 24 px cells, batch 32)",
                ["precision", "input px", "cells/s", "classified cells"],
                [[r["variant"], r["input_size"], r["cells_per_s"], r["cells"]] for r in rows])
    (a.work / "input_sizes.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
