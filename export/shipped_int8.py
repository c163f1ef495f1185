"""int8 of the shipped model: quantised from it, scored against it, written beside it (``make int8``).

Why from the shipped file and not from a run: the shipped model is the only artefact a clone has (no
checkpoint), and it carries outputs added after ``make export`` (the embedding and the in-graph
out-of-distribution score of ``make ood``). Its fp16 weights are upcast to fp32 (the same network computed in
fp32: the reference), quantised exactly as ``make export`` quantises (static QDQ, per channel, calibrated on
training-split images) with the OOD score's nodes kept in float32, then scored on the test split against the
reference. The figures go into the file's typed ``variant``, where the plugin's CPU gate
(``core.models.int8_is_acceptable``) reads them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx

from export.common import run_onnx, set_contract, test_set, variant_contract, variant_scores
from export.quantize import ood_nodes, to_int8, upcast_fp16
from planet_terrain_plugin.core.contract import OOD_SCORE, read_contract
from planet_terrain_plugin.core.models import MODELS_DIR, variant_path
from training.config import TrainConfig
from training.rundata import load_run_data

ROOT = Path(__file__).resolve().parents[1]


def ood_agreement(reference: Path, variant: Path, x: np.ndarray, threshold: float | None) -> float | None:
    """Share of images on which both files make the same out-of-distribution call (None: no OOD output)."""
    if threshold is None:
        return None
    import onnxruntime as ort

    def scores(path: Path) -> np.ndarray:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run([OOD_SCORE], {name: x[i:i + 64]})[0] for i in range(0, len(x), 64)])

    return round(float(((scores(reference) > threshold) == (scores(variant) > threshold)).mean()), 4)


def build(source: Path, out: Path, data_root: str, v1_root: str, work: Path, rasters: Path) -> dict:
    """Write the int8 of ``source`` to ``out``; returns its scores against the fp32 reference and, with an OOD
    score, its own probe-set shares (the source's would claim the source's results for this file)."""
    contract = read_contract(str(source))
    fp32 = upcast_fp16(source, work / f"{contract.model_name}.fp32-from-{source.stem.split('.')[-1]}.onnx")
    split = source.parent / f"{contract.model_name}.split.json"
    data = load_run_data(TrainConfig(data_root=data_root, v1_root=v1_root), contract, split_file=str(split),
                         cache_dir=str(ROOT / "runs" / "cache"))
    partial = work / f"{contract.model_name}.int8.partial.onnx"
    to_int8(fp32, partial, data, exclude=ood_nodes(onnx.load(str(fp32))))
    ts = test_set(data)
    scores = variant_scores(run_onnx(partial, ts.tensors), run_onnx(fp32, ts.tensors), ts, contract)
    agreement = ood_agreement(fp32, partial, ts.tensors, contract.ood_threshold)
    if agreement is not None:
        from training.ood import probe_counts, probe_metrics, probe_table
        from training.ood_probes import all_probes

        scores["ood_decision_agreement_vs_fp32"] = agreement
        table = probe_table(all_probes(rasters), partial, variant_contract(contract, "int8", scores))
        scores.update(probe_metrics(probe_counts(table)))
    onnx.save(set_contract(onnx.load(str(partial)), variant_contract(contract, "int8", scores)), str(out))
    partial.unlink()
    return scores


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.shipped_int8", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(variant_path("fp16")), help="the shipped model to quantise")
    p.add_argument("--out", default=str(variant_path("int8")), help="where the int8 file goes")
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "hirise-map-proj-v3"))
    p.add_argument("--v1-root", default=str(ROOT.parent / "shared" / "data" / "hirise-map-proj-v1"))
    p.add_argument("--rasters", default=str(ROOT.parent / "shared" / "data" / "rasters"), help="for the probe set")
    a = p.parse_args(argv)
    out = Path(a.out)
    if out.exists():
        raise SystemExit(f"'{out}' already exists; remove it first if it should be rebuilt")
    work = ROOT / "build" / "int8"
    work.mkdir(parents=True, exist_ok=True)
    scores = build(Path(a.model), out, a.data_root, a.v1_root, work, Path(a.rasters))
    print(json.dumps(scores, indent=1))
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB) into {MODELS_DIR if out.parent == MODELS_DIR else out.parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
