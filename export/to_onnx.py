"""Export a calibrated, evaluated run to ONNX: ``python -m export.to_onnx --run runs/default``.

Writes ``<name>.fp32.onnx`` (input "input" (N, 3, S, S), outputs "logits" and the penultimate "embedding"
(:mod:`export.embedding`, for taught heads and the OOD score of ``make ood``), opset 17, dynamic batch) carrying
the contract from :mod:`planet_terrain_plugin.core.contract` (fitted temperature and threshold, test metrics),
checks parity with PyTorch through the plugin's own path (the file is deleted if parity fails), then builds
the int8 and fp16 variants (:mod:`export.quantize`) with their own test scores. ``--ship DIR`` copies the
variants named by ``--ship-variants`` plus the split file into the plugin's models folder.
"""
from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path

import onnx
import torch

from planet_terrain_plugin.core.contract import EMBEDDING, LOGITS, ModelContract

from training import checkpoint
from training.model import output_count
from training.report import PLOTS

from . import parity
from .common import load_data_for, run_contract, run_onnx, set_contract, test_set, variant_contract, variant_scores
from .embedding import add_embedding_output

OPSET = 17


def torch_to_onnx(model: torch.nn.Module, input_size: int, path: str | Path) -> str:
    """Trace the model to ONNX; the TorchScript exporter first (offline, deterministic), dynamo as fallback."""
    model.eval()
    dummy = torch.zeros(2, 3, input_size, input_size)
    kw = dict(input_names=["input"], output_names=["logits"], opset_version=OPSET)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (dummy,), str(path), dynamo=False,
                              dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, **kw)
        return "torchscript"
    except Exception as exc:  # pragma: no cover - depends on the torch build
        print(f"TorchScript exporter failed ({exc}); trying dynamo")
        batch = torch.export.Dim("N", min=1, max=4096)
        torch.onnx.export(model, (dummy,), str(path), dynamo=True, external_data=False,
                          dynamic_shapes={"x": {0: batch}}, **kw)
        return "dynamo"


def export_run(run_dir: str | Path, out_dir: str | Path, ckpt_name: str = "last.pt",
               variants: tuple[str, ...] = ("fp32", "int8", "fp16"), cache_dir: str | None = "runs/cache",
               calib_images: int = 256) -> dict[str, Path]:
    """Export every variant into ``out_dir``; returns {variant: path}. Raises ParityError on a bad fp32."""
    from .quantize import to_fp16, to_int8

    run, out = Path(run_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, cfg, base, _ = checkpoint.load_model(run / ckpt_name)
    if output_count(cfg, base.num_classes) != base.num_classes:
        raise ValueError(f"run '{run}' was trained with an extra \"other\" output (outlier_mode 'class'); the "
                         "plugin's contract expects one logit per class, so it cannot be exported: retrain it with "
                         "outlier_mode 'uniform'")
    contract = run_contract(run, base)
    fp32 = out / f"{contract.model_name}.fp32.onnx"
    how = torch_to_onnx(model, contract.input_size, fp32)
    proto = onnx.load(str(fp32))
    try:
        proto = add_embedding_output(proto)
        contract = contract.replace(outputs=(LOGITS, EMBEDDING))
    except ValueError as exc:  # e.g. an ensemble: its logits average several heads, there is no one embedding
        print(f"no embedding output: {exc}")
    onnx.checker.check_model(proto)
    onnx.save(set_contract(proto, contract), str(fp32))
    data = load_data_for(run, contract, cache_dir)
    try:
        delta = parity.check(fp32, model, parity.parity_records(data.splits["test"]), data.cache)
    except parity.ParityError:
        fp32.unlink()
        raise
    print(f"fp32 exported ({how}); parity max |dp| = {delta:.2e}")
    ts = test_set(data)
    ref = run_onnx(fp32, ts.tensors)
    fp32_contract = contract.replace(metrics={**contract.metrics, "parity_max_abs_dprob": float(f"{delta:.3g}")})
    onnx.save(set_contract(onnx.load(str(fp32)), fp32_contract), str(fp32))
    paths = {"fp32": fp32}
    report = {"exporter": how, "parity_max_abs_dprob": delta, "variants": {}}
    builders = {"int8": lambda p: to_int8(fp32, p, data, calib_images), "fp16": lambda p: to_fp16(fp32, p)}
    for v in variants:
        if v == "fp32":
            continue
        path = out / f"{contract.model_name}.{v}.onnx"
        builders[v](path)
        scores = variant_scores(run_onnx(path, ts.tensors), ref, ts, contract)
        vc = variant_contract(contract, v, scores)
        onnx.save(set_contract(onnx.load(str(path)), vc), str(path))
        paths[v] = path
        report["variants"][v] = {**scores, "size_mb": round(path.stat().st_size / 2**20, 1)}
        print(f"{v}: {report['variants'][v]}")
    report["variants"]["fp32"] = {"size_mb": round(fp32.stat().st_size / 2**20, 1)}
    (out / "export_report.json").write_text(json.dumps(report, indent=1) + "\n")
    return paths


def ship(paths: dict[str, Path], run_dir: str | Path, models_dir: str | Path, variants: tuple[str, ...]) -> None:
    """Copy the chosen variants and the split file into the plugin's models folder."""
    dest = Path(models_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for v in variants:
        shutil.copy2(paths[v], dest / paths[v].name)
    family = paths[variants[0]].name.split(".")[0]
    shutil.copy2(Path(run_dir) / "split.json", dest / f"{family}.split.json")
    for name in PLOTS:  # the model card's figures (small PNGs) travel with the model they describe
        if (Path(run_dir) / name).is_file():
            shutil.copy2(Path(run_dir) / name, dest / name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/default")
    p.add_argument("--checkpoint", default="last.pt")
    p.add_argument("--out", help="export folder (default: <run>/export)")
    p.add_argument("--variants", default="fp32,int8,fp16")
    p.add_argument("--ship", help="plugin models folder to copy the shipped variants and split file into")
    p.add_argument("--ship-variants", default="fp16")
    a = p.parse_args(argv)
    variants = tuple(v for v in a.variants.split(",") if v)
    paths = export_run(a.run, a.out or Path(a.run) / "export", a.checkpoint, variants)
    if a.ship:
        ship(paths, a.run, a.ship, tuple(v for v in a.ship_variants.split(",") if v))
        print(f"shipped {a.ship_variants} to {a.ship}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
