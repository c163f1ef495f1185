"""The cost column of the input-size arms: ``python -m training.cv_cost --sizes 96 128 160``.

Per input size: milliseconds per image of the network exported through the shipped path (``export.to_onnx``'s
exporter, the contract carrying the input size, int8 by ``export.quantize`` as ``make export`` builds it) and
run on the CPU by the plugin's own loader (``core.session``), at batch 32; and milliseconds per training image
(forward, backward, AdamW step in the config's precision), which sets the epochs an equal training budget buys.
The weights are random: speed does not depend on their values, so no arm has to be trained to price it.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from .config import TrainConfig
from .cv import key_value

BATCH = 32


def export_random(cfg: TrainConfig, folder: Path) -> dict[str, Path]:
    """fp32 and int8 ONNX of a randomly initialised network of ``cfg`` (its arch and input size), contract set."""
    from export.common import set_contract
    from export.quantize import to_int8
    from export.to_onnx import torch_to_onnx
    from planet_terrain_plugin.core.contract import VariantInfo

    from .model import build_model
    from .rundata import load_run_data

    contract = cfg.base_contract()
    fp32 = folder / f"{cfg.arch}_{cfg.input_size}.fp32.onnx"
    torch_to_onnx(build_model(contract.num_classes, cfg.arch), cfg.input_size, fp32)
    onnx.save(set_contract(onnx.load(str(fp32)), contract.replace(variant=VariantInfo("fp32"))), str(fp32))
    int8 = folder / f"{cfg.arch}_{cfg.input_size}.int8.onnx"
    data = load_run_data(TrainConfig.from_dict({**json.loads(cfg.to_json()), "max_images": 64}), contract,
                         cache_dir=None)
    to_int8(fp32, int8, data, n_calib=64)
    onnx.save(set_contract(onnx.load(str(int8)), contract.replace(variant=VariantInfo("int8"))), str(int8))
    return {"fp32": fp32, "int8": int8}


def onnx_ms_per_image(path: Path, size: int, images: int = 256) -> float:
    """ms per image over ``images`` images, batch 32, CPU, through the plugin's loader (warmed up once)."""
    from planet_terrain_plugin.core.session import load_model

    model = load_model(str(path), "cpu")
    x = np.random.default_rng(0).standard_normal((BATCH, 3, size, size)).astype(np.float32)
    model.logits(x)
    runs = max(1, images // BATCH)
    t0 = time.perf_counter()
    for _ in range(runs):
        model.logits(x)
    return 1000.0 * (time.perf_counter() - t0) / (runs * BATCH)


def train_ms_per_image(cfg: TrainConfig, steps: int = 5) -> float:
    """ms per labelled image of training steps (forward, backward, AdamW) at batch 32 on this machine's device,
    with the levers that add work per step: a distillation teacher (``distill_teacher`` set: one of the same
    network, ``distill_views`` views) and unlabeled views (``semi_weight`` > 0: ``semi_ratio`` per image)."""
    from .distill import Teacher, distill_loss
    from .semi import fixmatch_loss
    from .loop import pick_device
    from .model import build_model
    from .precision import precision_for

    torch.set_num_threads(cfg.num_threads)
    device = pick_device()
    precision = precision_for(device, cfg.precision)
    net = precision.place(build_model(cfg.base_contract().num_classes, cfg.arch), device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(BATCH, 3, cfg.input_size, cfg.input_size, device=device)
    y = torch.randint(0, 7, (BATCH,), device=device)
    teacher = Teacher(build_model(cfg.base_contract().num_classes, cfg.arch), cfg.distill_views, precision,
                      device) if cfg.distill_teacher else None
    u = torch.randn(max(1, round(cfg.semi_ratio * BATCH)), 3, cfg.input_size, cfg.input_size, device=device)
    net.train()
    for i in range(steps + 1):  # the first step warms up (allocations, kernel choice) and is not timed
        if i == 1:
            t0 = time.perf_counter()
        (logits,) = precision.forward(net, [x], device)
        loss = torch.nn.functional.cross_entropy(logits, y)
        if teacher is not None:
            loss = loss + distill_loss(logits, teacher.logits(x), cfg.distill_temperature)
        if cfg.semi_weight:
            with torch.no_grad():
                (weak,) = precision.forward(net, [u], device)
            (strong,) = precision.forward(net, [u], device)
            loss = loss + fixmatch_loss(strong, weak, 0.0)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000.0 * (time.perf_counter() - t0) / (steps * BATCH)


def measure(cfg: TrainConfig, sizes: list[int], rounds: int = 3, keep: Path | None = None) -> list[dict]:
    """One row per input size: the median over ``rounds`` rounds, each round timing every size in turn (so a
    busy spell of a shared machine falls on all sizes alike); ratios relative to the first size. ``keep``: the
    folder the exports stay in (for ``benchmarks.input_sizes``), else a temporary one."""
    sized = {s: TrainConfig.from_dict({**json.loads(cfg.to_json()), "input_size": s}) for s in sizes}
    times: dict[int, dict[str, list[float]]] = {s: {} for s in sizes}
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = {s: export_random(sized[s], keep or Path(tmp)) for s in sizes}
        for r in range(rounds):
            for s in sizes:
                got = {f"onnx_{v}": onnx_ms_per_image(p, s) for v, p in files[s].items()}
                got["train"] = train_ms_per_image(sized[s])
                for k, v in got.items():
                    times[s].setdefault(k, []).append(v)
                print(json.dumps({"round": r, "input_size": s, **got}), flush=True)
    rows = [{"input_size": s, **{k + "_ms_per_image": float(np.median(v)) for k, v in times[s].items()},
             "rounds": times[s]} for s in sizes]
    for row in rows:
        for key in [k for k in row if k.endswith("_ms_per_image")]:
            row[key.replace("_ms_per_image", "_x")] = row[key] / rows[0][key]
    return rows


def lever_costs(cfg: TrainConfig, levers: list[dict], rounds: int = 3) -> list[float]:
    """Training cost per labelled image of ``cfg`` with each set of ``levers`` (config overrides), relative to
    ``cfg`` alone (interleaved rounds, medians): an arm with that lever gets ``epochs / cost`` epochs at the
    plain arm's budget."""
    variants = [cfg] + [TrainConfig.from_dict({**json.loads(cfg.to_json()), **lever}) for lever in levers]
    times: list[list[float]] = [[] for _ in variants]
    for _ in range(rounds):
        for t, v in zip(times, variants):
            t.append(train_ms_per_image(v))
    plain = float(np.median(times[0]))
    return [float(np.median(t)) / plain for t in times[1:]]


def markdown(rows: list[dict], cfg: TrainConfig) -> str:
    """The cost table of docs/cv.md; the last column is the config's epochs divided by the training cost."""
    head = ("| input px | ONNX fp32, ms/image (×) | ONNX int8, ms/image (×) | training, ms/image (×) | "
            "epochs at the first size's budget |")
    out = [head, "|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[k + '_ms_per_image']:.2f} ({r[k + '_x']:.2f}×)" for k in ("onnx_fp32", "onnx_int8", "train")]
        out.append(f"| {r['input_size']} | " + " | ".join(cells) + f" | {round(cfg.epochs / r['train_x'])} |")
    return "\n".join(out) + (f"\n\n{cfg.arch}, random weights, batch {BATCH}, CPU ({os.cpu_count()} logical cores); "
                             f"median of interleaved rounds; epochs: the config's {cfg.epochs} scaled by the "
                             "training cost.\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="training/configs/default.json", help="arch, precision, threads, data roots")
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 160])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", help="write the table (markdown) here and the rows beside it (.json)")
    p.add_argument("--keep", type=Path, help="keep the random-weight exports in this folder (the files "
                   "`python -m benchmarks.input_sizes` runs through the plugin's grid)")
    p.add_argument("--lever", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                   help="instead: the training cost with these config overrides, e.g. "
                        "distill_teacher=any,distill_views=4 or semi_weight=1 (repeatable)")
    a = p.parse_args(argv)
    cfg = TrainConfig.load(a.config)
    if a.lever:
        levers = [dict(key_value(kv) for kv in text.split(",")) for text in a.lever]
        for text, x in zip(a.lever, lever_costs(cfg, levers, a.rounds)):
            print(f"{text}: training costs {x:.2f}x per labelled image; {round(cfg.epochs / x)} epochs at the "
                  f"budget of {cfg.epochs}")
        return 0
    rows = measure(cfg, a.sizes, a.rounds, a.keep)
    table = markdown(rows, cfg)
    print(table)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(table)
        Path(a.out).with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
