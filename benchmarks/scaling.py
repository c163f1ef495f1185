"""Time and peak memory of the grid pipeline at 1k, 10k and 100k cells: does memory stay flat?

A large raster is built here from the shared Apollo 15 frame (its interior tiled, in the frame's own CRS) under
build/bench, never committed. Each size runs in a fresh process so its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import numpy as np

from benchmarks.common import BUILD, RASTER, model_variants, peak_rss_mb, print_table

SIZES = (1_000, 10_000, 100_000)
CELL_PIXELS = 32


def big_raster(cells: int = max(SIZES), cell_pixels: int = CELL_PIXELS) -> str:
    """A GeoTIFF with at least ``cells`` interior cells of ``cell_pixels`` pixels, tiled from real lunar pixels."""
    from osgeo import gdal

    side_cells = math.ceil(math.sqrt(cells))
    side = side_cells * cell_pixels
    path = BUILD / f"apollo_tiled_{side}.tif"
    if path.is_file():
        return str(path)
    BUILD.mkdir(parents=True, exist_ok=True)
    src = gdal.Open(str(RASTER))
    arr = src.GetRasterBand(1).ReadAsArray()
    h, w = arr.shape
    tile = arr[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    reps = (math.ceil(side / tile.shape[0]), math.ceil(side / tile.shape[1]))
    data = np.tile(tile, reps)[:side, :side]
    gt = list(src.GetGeoTransform())
    drv = gdal.GetDriverByName("GTiff")
    tmp = path.with_suffix(".part.tif")
    ds = drv.Create(str(tmp), side, side, 1, gdal.GDT_Byte, ["TILED=YES", "COMPRESS=DEFLATE"])
    pixel = gt[1]
    ds.SetGeoTransform([-side * pixel / 2, pixel, 0, side * pixel / 2, 0, -pixel])  # centred on the equator
    ds.SetProjection(src.GetProjection())
    ds.GetRasterBand(1).WriteArray(data)
    ds.FlushCache()
    ds = None
    tmp.rename(path)
    return str(path)


def one(cells: int, precision: str, batch: int) -> dict:
    """Run in a child process: classify ``cells`` cells and report time and peak RSS."""
    from osgeo import gdal

    from benchmarks.pipeline import run_grid

    raster = big_raster()
    ds = gdal.Open(raster)
    gt = ds.GetGeoTransform()
    side_cells = math.ceil(math.sqrt(cells))
    rows = math.ceil(cells / side_cells)
    x0, y1 = gt[0], gt[3]
    extent = f"{x0},{x0 + side_cells * CELL_PIXELS * gt[1]},{y1 - rows * CELL_PIXELS * gt[1]},{y1}"
    out = BUILD / f"scaling_{cells}.gpkg"
    out.unlink(missing_ok=True)
    before = peak_rss_mb()
    result = run_grid(raster, str(model_variants()[precision]), batch, CELL_PIXELS, str(out), extent)
    return {"cells": int(result["CELLS_CLASSIFIED"]), "seconds": result["seconds"], "peak_rss_mb": peak_rss_mb(),
            "rss_before_run_mb": before, "precision": precision, "batch": batch}


def measure(sizes=SIZES, precision: str | None = None, batch: int = 32, gdal_cache_mb: int | None = None) -> list[dict]:
    """One child process per size. ``gdal_cache_mb`` caps GDAL's raster block cache (GDAL_CACHEMAX), which
    otherwise grows to 5 % of RAM with the tiles read: memory that tracks the raster's size, not the cells'."""
    import os

    precision = precision or ("int8" if "int8" in model_variants() else "fp32")
    big_raster()
    env = dict(os.environ, **({"GDAL_CACHEMAX": str(gdal_cache_mb)} if gdal_cache_mb else {}))
    rows = []
    for n in sizes:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--one", str(n), "--precision", precision,
                               "--batch", str(batch)], capture_output=True, text=True, check=True, env=env)
        rows.append(dict(json.loads(proc.stdout.strip().splitlines()[-1]), gdal_cache_mb=gdal_cache_mb))
    if len(rows) > 1:
        slope = np.polyfit([r["cells"] for r in rows], [r["seconds"] for r in rows], 1)[0]
        for r in rows:
            r["ms_per_cell_slope"] = slope * 1000
    return rows


def main(argv: list[str] | None = None) -> list[dict] | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", type=int)
    p.add_argument("--precision", default=None)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--gdal-cache-mb", type=int, default=None, help="cap GDAL's block cache (GDAL_CACHEMAX)")
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.precision or "fp32", args.batch)))
        return None
    rows = measure(tuple(int(s) for s in args.sizes.split(",")), args.precision, args.batch, args.gdal_cache_mb)
    cache = f"GDAL cache {args.gdal_cache_mb} MB" if args.gdal_cache_mb else "GDAL cache at its default"
    print_table(f"Scaling: time and peak memory vs cells ({rows[0]['precision']}, batch {args.batch}, {cache})",
                ["cells", "seconds", "cells/s", "peak RSS MB"],
                [[r["cells"], r["seconds"], r["cells"] / r["seconds"], r["peak_rss_mb"]] for r in rows])
    return rows


if __name__ == "__main__":
    main()
