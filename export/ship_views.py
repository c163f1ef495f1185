"""``make mirror-views``: the shipped model with the mirror view in its graph, recalibrated and measured.

1. :func:`export.mirror_views.add_mirror_view` on the shipped fp16 file; its fp32 upcast is the reference, as in
   ``make int8``.
2. Temperature and abstention threshold fitted on the validation split with both views, as ``training.calibrate``
   fits them for one view (the config's target share of "other" rejected).
3. The test split scored once (``training.evaluate.split_metrics``) into the contract's metrics; the fp16 file
   scored against the reference (``variant``); the out-of-distribution figures, probe set and Apollo cells
   measured again through the plugin's ``decide`` (``training.ood.measure``), because the threshold moved.

Writes ``<out>/<model>.fp16.onnx`` and ``<out>/views_report.{json,md}``; ``--ship`` then copies the file over
the shipped one (the int8 file is rebuilt from it by ``make int8``).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import onnx

from planet_terrain_plugin.core.contract import LOGITS, read_contract
from planet_terrain_plugin.core.models import variant_path

from export.common import TestSet, headline_metrics, set_contract, variant_contract, variant_scores
from export.mirror_views import VIEWS_KEY, add_mirror_view
from export.ood_graph import PREFIX as OOD_PREFIX
from export.quantize import upcast_fp16
from training.calibrate import fit_calibration
from training.config import TrainConfig
from training.evaluate import split_metrics
from training.ood import GATE_QUANTILE, markdown, measure
from training.ood_data import load_data, records_outputs

ROOT = Path(__file__).resolve().parents[1]


def calibrated(ref: Path, data, target: float) -> tuple[float, float]:
    """(temperature, threshold) of the model file ``ref`` on the validation split."""
    val = data.splits["val"]
    logits = records_outputs(ref, data, val, "val")[LOGITS].astype(np.float64)
    known = np.array([r.known for r in val])
    y = np.array([r.label - 1 for r in val])[known]
    return fit_calibration(logits[known], y, logits[~known], target, data.contract.num_classes)


def build(source: Path, out_dir: Path, version: str, cfg: TrainConfig, rasters: Path) -> dict:
    """Write the two-view fp16 file into ``out_dir``; returns the report."""
    base = read_contract(str(source))
    if base.ood_threshold is None:
        raise ValueError(f"'{source}' has no out-of-distribution score; run `make ood` on it first")
    if base.variant.name != "fp16":
        raise ValueError(f"'{source}' is the {base.variant.name} variant; give the fp16 file (the int8 one is "
                         "quantised from the result by `make int8`)")
    out_dir.mkdir(parents=True, exist_ok=True)
    two, model = out_dir / source.name, add_mirror_view(onnx.load(str(source)))
    onnx.save(model, str(two))
    ref = upcast_fp16(two, out_dir / f"{base.model_name}.fp32-from-fp16.onnx")
    split = source.parent / f"{base.model_name}.split.json"
    data = load_data(ref, split, cfg=cfg)
    t, thr = calibrated(ref, data, cfg.target_other_rejection)
    test = data.splits["test"]
    ref_logits = records_outputs(ref, data, test, "test")[LOGITS].astype(np.float64)
    scored = split_metrics(test, ref_logits, t, thr, base.class_names)
    metrics = {**headline_metrics({**scored, "epochs_trained": base.metrics.get("epochs")}), VIEWS_KEY: 2}
    contract = base.replace(model_version=version, temperature=t, threshold=thr, metrics=metrics)
    fp16_logits = records_outputs(two, data, test, "test")[LOGITS].astype(np.float64)
    labels = np.array([r.label - 1 for r in test], int)
    scores = variant_scores(fp16_logits, ref_logits, TestSet(np.zeros((len(test), 0)), labels), contract)
    contract = variant_contract(contract, "fp16", scores)
    val = records_outputs(two, data, data.splits["val"], "val")
    header = {"stage": "first view, as `make ood` fitted it", "axes": _ood_axes(model), "quantile": GATE_QUANTILE,
              "views": 2, "temperature": round(t, 4), "threshold": round(thr, 4)}
    report = measure(rasters, data, contract, two, val, float(base.ood_threshold), header)
    contract = contract.replace(metrics={**contract.metrics, **report["contract_metrics"]})
    onnx.save(set_contract(model, contract), str(two))
    scored["per_image"]["all"].pop("curves")
    report["test"]["scores"] = scored
    (out_dir / "views_report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / "views_report.md").write_text(markdown(report))
    return report


def _ood_axes(model: onnx.ModelProto) -> int:
    inits = {i.name: i for i in model.graph.initializer}
    return int(inits[OOD_PREFIX + "projection"].dims[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.ship_views", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(variant_path("fp16")), help="the shipped one-view model")
    p.add_argument("--out", default=str(ROOT / "build" / "mirror_views"))
    p.add_argument("--version", required=True, help="model_version of the new file, e.g. 1.3.0")
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "hirise-map-proj-v3"))
    p.add_argument("--v1-root", default=str(ROOT.parent / "shared" / "data" / "hirise-map-proj-v1"))
    p.add_argument("--rasters", default=str(ROOT.parent / "shared" / "data" / "rasters"))
    p.add_argument("--ship", action="store_true", help="copy the result over --model")
    a = p.parse_args(argv)
    source, out = Path(a.model), Path(a.out)
    if (out / source.name).exists():
        raise SystemExit(f"'{out / source.name}' already exists; remove it first if it should be rebuilt")
    cfg = TrainConfig.from_dict({**json.loads((ROOT / "training/configs/default.json").read_text()),
                                 "data_root": a.data_root, "v1_root": a.v1_root})
    try:
        report = build(source, out, a.version, cfg, Path(a.rasters))
    except ValueError as exc:
        raise SystemExit(f"export.ship_views: {exc}")
    print(markdown(report))
    print(json.dumps({k: v for k, v in report["test"]["scores"]["per_image"]["all"].items()
                      if isinstance(v, float)}, indent=1))
    if a.ship:
        shutil.copy2(out / source.name, source)
        print(f"shipped {out / source.name} -> {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
