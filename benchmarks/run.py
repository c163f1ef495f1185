"""`make bench`: every benchmark in one run, one table, plus build/bench/results.json and results.png.

Ratios are what to read: pipeline / bare onnxruntime at the same batch and precision (target >= 0.9),
int8 / fp32 (target >= 3x on a CPU with VNNI), pipeline / web-service-style baseline (target >= 4x), and
peak-memory growth from 1k to 100k cells (target <= 50 MB).
"""
from __future__ import annotations

import argparse
import json
import os
import platform

from benchmarks import baselines, ceiling, heatmap, pipeline, scaling
from benchmarks.common import BUILD, print_table


def machine() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            info = fh.read()
    except OSError:
        info = ""
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
               platform.processor() or "unknown CPU")
    vnni = "avx512_vnni" in info or "avx_vnni" in info
    return f"{cpu}, {os.cpu_count()} cores, VNNI {'yes' if vnni else 'no'}, {platform.system()}"


def interleaved(rounds: int) -> tuple[list[dict], list[dict]]:
    """Ceiling and pipeline measured in alternating rounds, so a load spike on this shared machine hits both
    alike; each figure is the median over the rounds."""
    import statistics

    ceil_rounds, pipe_rounds = [], []
    for k in range(rounds):
        ceil_rounds.append(ceiling.measure(repeats=1))
        pipe_rounds.append(pipeline.measure(repeats=1, warmup=1 if k == 0 else 0))  # the ceiling warms up too

    def merge(all_rounds: list[list[dict]], *keys: str) -> list[dict]:
        merged = []
        for rows in zip(*all_rounds):
            row = dict(rows[0])
            row["repeats"] = [r[keys[0]] for r in rows]
            for key in keys:
                row[key] = statistics.median(r[key] for r in rows)
            merged.append(row)
        return merged

    ceil = merge(ceil_rounds, "images_per_s", "serial_images_per_s", "concurrent_images_per_s")
    pipe = merge(pipe_rounds, "cells_per_s")
    ceiling.print_rows(ceil)
    print_table("Plugin grid pipeline (read -> preprocess -> infer -> write GeoPackage)",
                ["precision", "batch", "cells/s", "classified cells"],
                [[r["precision"], r["batch"], r["cells_per_s"], r["cells"]] for r in pipe])
    return ceil, pipe


def summarise(ceil: list[dict], pipe: list[dict], base: list[dict], scale: list[dict],
              capped: list[dict], heat: list[dict]) -> list[list]:
    by = {(r["precision"], r["batch"]): r["images_per_s"] for r in ceil}
    rows = []
    for r in pipe:
        c = by.get((r["precision"], r["batch"]))
        rows.append([f"pipeline {r['precision']}", r["batch"], r["cells_per_s"], c, r["cells_per_s"] / c if c else ""])
    web = next((b["images_per_s"] for b in base if b["bench"] == "web_service"), None)
    best = max((r["cells_per_s"] for r in pipe), default=None)
    for b in base:
        rows.append([b["bench"], b["batch"], b["images_per_s"], "", ""])
    if web and best:
        rows.append(["best pipeline / web service", "", best / web, "", ""])
    fp32 = by.get(("fp32", 32))
    int8 = by.get(("int8", 32))
    if fp32 and int8:
        rows.append(["int8 / fp32 (bare, batch 32)", 32, int8 / fp32, "", ""])
    rows += [[f"heatmap {h['precision']} (seconds)", "", h["seconds"], "", ""] for h in heat]
    for label, runs in (("", scale), (", GDAL cache 64 MB", capped)):
        if len(runs) > 1:
            growth = runs[-1]["peak_rss_mb"] - runs[0]["peak_rss_mb"]
            rows.append([f"peak RSS growth {runs[0]['cells']} -> {runs[-1]['cells']} cells{label} (MB)", "", growth,
                         "", ""])
    if scale:
        big = scale[-1]
        c = by.get((big["precision"], big["batch"]))
        if c:
            rows.append([f"pipeline {big['precision']} at {big['cells']} cells", big["batch"],
                         big["cells"] / big["seconds"], c, big["cells"] / big["seconds"] / c])
    return rows


def plot(ceil: list[dict], pipe: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for precision in sorted({r["precision"] for r in ceil}):
        c = [r for r in ceil if r["precision"] == precision]
        p = [r for r in pipe if r["precision"] == precision]
        ax.plot([r["batch"] for r in c], [r["images_per_s"] for r in c], "o--", label=f"onnxruntime {precision}")
        ax.plot([r["batch"] for r in p], [r["cells_per_s"] for r in p], "s-", label=f"pipeline {precision}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("cells (images) per second")
    ax.set_title("Planet Terrain: pipeline vs its ceiling")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=",".join(map(str, scaling.SIZES)), help="cell counts for the scaling run")
    p.add_argument("--skip-scaling", action="store_true")
    p.add_argument("--skip-baselines", action="store_true", help="no PyTorch / web-service baselines")
    p.add_argument("--rounds", type=int, default=3, help="ceiling/pipeline rounds, interleaved; medians reported")
    args = p.parse_args(argv)
    BUILD.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}")
    ceil, pipe = interleaved(args.rounds)
    heat = heatmap.main()  # before the baselines, which load torch into this process
    base = [] if args.skip_baselines else baselines.main()
    scale = [] if args.skip_scaling else scaling.main(["--sizes", args.sizes])
    # The same ends with GDAL's block cache capped: attributes any growth to the cache or to the pipeline.
    ends = args.sizes.split(",")
    capped = [] if args.skip_scaling else scaling.main(["--sizes", f"{ends[0]},{ends[-1]}", "--gdal-cache-mb", "64"])
    rows = summarise(ceil, pipe, base, scale, capped, heat)
    print_table("Summary (ratios measured in this run)", ["what", "batch", "rate or ratio", "ceiling", "vs ceiling"],
                rows)
    results = {"machine": machine(), "ceiling": ceil, "pipeline": pipe, "baselines": base, "scaling": scale,
               "scaling_gdal_cache_64mb": capped, "heatmap": heat}
    (BUILD / "results.json").write_text(json.dumps(results, indent=2))
    plot(ceil, pipe, BUILD / "results.png")
    print(f"\nWrote {BUILD / 'results.json'} and {BUILD / 'results.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
