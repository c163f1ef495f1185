"""Shared helpers: which model files to measure, timing with repeats, peak memory, table printing.

Everything is measured in one run on one machine and reported as ratios beside absolute figures: these
machines are noisy, so each figure is the median of several repeats.
"""
from __future__ import annotations

import os
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "bench"
SHARED = Path(os.environ.get("PLANET_TERRAIN_SHARED", ROOT.parent / "shared"))
RASTER = SHARED / "data" / "rasters" / "AS15-M-0295_SML_geo.tif"


def median_rate(fn: Callable[[], int], repeats: int = 3, warmup: int = 1) -> tuple[float, list[float]]:
    """Items per second of ``fn`` (which returns how many items it processed): median over ``repeats``."""
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), rates


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Linux's VmHWM belongs to this process image; ``ru_maxrss`` is not used because it survives fork+exec and
    would report the parent's peak in a child started to measure one grid size.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def model_variants() -> dict[str, Path]:
    """fp32 and int8 files to measure: `make export`'s own, else built here from the shipped model.

    A clone ships the fp16 and int8 files (fp32 is ~94 MB). fp16 weights upcast to fp32 give the same network
    with fp32 arithmetic, which is what the speed of fp32 depends on; without an int8 file, int8 is quantised
    from that fp32 exactly as `make export` does it (once, cached in build/bench). ``make export``'s files in
    ``runs/default/export`` are used when present.
    ``PLANET_TERRAIN_BENCH_MODELS`` points at another models folder.
    """
    from export.quantize import upcast_fp16
    from planet_terrain_plugin.core.models import MODELS_DIR, installed_variants

    found = installed_variants(Path(os.environ.get("PLANET_TERRAIN_BENCH_MODELS", MODELS_DIR)))
    exported = installed_variants(ROOT / "runs" / "default" / "export")  # `make export`'s own folder
    out: dict[str, Path] = {}
    if "fp32" in found or "fp32" in exported:
        out["fp32"] = found.get("fp32") or exported["fp32"]
    elif "fp16" in found:
        out["fp32"] = upcast_fp16(found["fp16"], BUILD / "planet_terrain_resnet50.fp32-from-fp16.onnx")
    if "int8" in found or "int8" in exported:
        out["int8"] = found.get("int8") or exported["int8"]
    elif "fp32" in out:
        out["int8"] = quantise_like_export(out["fp32"], BUILD / "planet_terrain_resnet50.int8-from-fp32.onnx")
    if not out:
        raise SystemExit("No shipped model to benchmark: run `make train export` first (see README).")
    return out


def quantise_like_export(fp32: Path, dst: Path) -> Path:
    """``export.quantize.to_int8`` of ``fp32``, calibrated on training-split images of the shipped split file."""
    if dst.is_file() and dst.stat().st_mtime >= fp32.stat().st_mtime:
        return dst
    import onnx

    from export.common import set_contract
    from export.quantize import ood_nodes, to_int8
    from planet_terrain_plugin.core.contract import VariantInfo, read_contract
    from planet_terrain_plugin.core.models import MODELS_DIR
    from training.config import TrainConfig
    from training.rundata import load_run_data

    contract = read_contract(str(fp32))
    split = MODELS_DIR / f"{contract.model_name}.split.json"
    cfg = TrainConfig(data_root=str(SHARED / "data" / "hirise-map-proj-v3"),
                      v1_root=str(SHARED / "data" / "hirise-map-proj-v1"))
    print(f"Quantising {fp32.name} to int8 for the benchmark (once; cached as {dst})", flush=True)
    data = load_run_data(cfg, contract, split_file=str(split), cache_dir=None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".partial.onnx")
    to_int8(fp32, tmp, data, exclude=ood_nodes(onnx.load(str(fp32))))
    onnx.save(set_contract(onnx.load(str(tmp)), contract.replace(variant=VariantInfo("int8"))),
              str(dst))
    tmp.unlink()
    return dst


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    """A plain aligned text table."""
    cells = [header] + [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
