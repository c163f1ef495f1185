"""``make ood``: fit the out-of-distribution score, choose its threshold on validation, measure, and write the model.

1. The shipped model gets its ``embedding`` output and, temporarily, the pooled features of ``--stage``.
2. Those features of the training split (every known-class image, every ``--other-step``-th "other" crop) give
   the Gaussian of :mod:`export.ood_graph`; its score is added to the model as the ``ood_score`` output.
3. The threshold is the ``--quantile`` of the score on the validation known-class images, so the gate costs at
   most that share of the landforms the model can name (validation "other" terrain scores lower still).
4. Measured through the plugin's own ``decide``: validation and test (known kept, "other" rejected, with and
   without the gate), the OOD probe set (abstained, by reason), and 20 km cells of the two Apollo frames.
5. Logits must be bit-for-bit those of the input model on the test split, or nothing is written.

Writes ``<out>/ood_report.json`` and ``ood_report.md`` and the model (``--ship`` replaces the given file).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from planet_terrain_plugin.core.calibrate import Reason, decide, decide_from_probs, softmax
from planet_terrain_plugin.core.contract import EMBEDDING, LOGITS, OOD_SCORE
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.preprocess import preprocess
from planet_terrain_plugin.core.session import load_model

from export.common import set_contract
from export.embedding import add_embedding_output
from export.mirror_views import has_mirror_view
from export.ood_graph import POOLED, add_ood_score, fit_gaussian, pooled_float, stage_output
from training.metrics import auroc
from training.ood_data import load_data, onnx_outputs, records_outputs
from training.ood_probes import all_probes, probe_reason

APOLLO = ("AS15-M-0295_SML_geo.tif", "AS15-M-0296_SML_geo.tif")
#: Share of validation known-class images the OOD gate keeps: its threshold is their score's quantile.
GATE_QUANTILE = 0.95
APOLLO_CELL_PX = 113  # 20 km on the Apollo frames (0.00585 deg/px, 30.3 km per degree on the Moon)


def feature_model(src: Path, stage: str, dst: Path) -> Path:
    """The model with ``embedding`` and the pooled ``stage`` features as extra outputs (for fitting only)."""
    model = add_embedding_output(onnx.load(str(src)))
    if stage != EMBEDDING:
        pooled = pooled_float(model.graph, stage_output(model, stage), is_float=False)
        model.graph.output.append(onnx.helper.make_tensor_value_info(pooled, onnx.TensorProto.FLOAT, ["N", None]))
    onnx.save(model, str(dst))
    return dst


def apollo_tensors(rasters: Path, contract) -> np.ndarray:
    """20 km cells of the Apollo frames that have enough valid pixels, preprocessed as the plugin does."""
    out = []
    for name in APOLLO:
        block, mask = read_image(str(rasters / name))
        c = APOLLO_CELL_PX
        for y in range(0, block.shape[0] - c + 1, c):
            for x in range(0, block.shape[1] - c + 1, c):
                m = None if mask is None else mask[y:y + c, x:x + c]
                try:
                    out.append(preprocess(block[y:y + c, x:x + c], contract, m).tensor)
                except ValueError:  # mostly nodata: the plugin skips it too
                    continue
    return np.stack(out).astype(np.float32)


def gate_figures(decisions, known: np.ndarray) -> dict:
    labelled = np.array([not d.abstained for d in decisions])
    ood = np.array([d.reason is Reason.OUT_OF_DISTRIBUTION for d in decisions])
    return {"known_kept": round(float(labelled[known].mean()), 4),
            "other_rejected": round(float(1 - labelled[~known].mean()), 4),
            "known_called_ood": round(float(ood[known].mean()), 4),
            "other_called_ood": round(float(ood[~known].mean()), 4)}


def split_figures(outs: dict, labels: np.ndarray, contract, with_gate) -> dict:
    known = labels != 0
    plain = decide(outs[LOGITS], contract)
    gated = decide(outs[LOGITS], with_gate, ood_scores=outs[OOD_SCORE])
    s = outs[OOD_SCORE]
    return {"n_known": int(known.sum()), "n_other": int((~known).sum()),
            "softmax_only": gate_figures(plain, known), "with_ood_gate": gate_figures(gated, known),
            "ood_auroc_other_vs_known": round(auroc(s[~known], s[known]), 4)}


def probe_table(probes, model_path: Path, contract) -> dict[str, dict]:
    """Each probe's reason as the plugin gives it (``ood_probes.probe_reason``: the raster-kind check, the input
    check, the model with ``contract``'s threshold and OOD limit, the out-of-scale rule), counted per family:
    ``{family: {"n", "right_reason", "reasons": {reason or "labelled": count}}}``."""
    reasons: dict[str, Counter] = {}
    right: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="planet-terrain-probe-model-") as tmp:  # never beside a shipped file
        with_contract = Path(tmp) / "probe-model.onnx"  # the file as it will ship, with this contract
        onnx.save(set_contract(onnx.load(str(model_path)), contract), str(with_contract))
        model = load_model(str(with_contract))
        for p in probes:
            reason = probe_reason(model, p)
            reasons.setdefault(p.family, Counter())[reason.value or "labelled"] += 1
            right[p.family] += reason is p.expected
    return {fam: {"n": sum(c.values()), "right_reason": right[fam], "reasons": dict(c)} for fam, c in reasons.items()}


def apollo_figures(outs: dict, contract, gated) -> dict:
    def count(decisions):
        c = Counter(d.label for d in decisions)
        return {"cells": len(decisions), "crater": c.get("crater", 0), "impact ejecta": c.get("impact ejecta", 0),
                "out_of_distribution": sum(d.reason is Reason.OUT_OF_DISTRIBUTION for d in decisions)}
    kept = softmax(outs[LOGITS], contract.temperature) * np.array(contract.allowed_mask("Moon"))
    before = decide_from_probs(kept / kept.sum(axis=1, keepdims=True), contract, contract.threshold, True)  # v1.1.0
    return {"before (renormalised top probability only)": count(before),
            "after (evidence floor + OOD gate)": count(decide(outs[LOGITS], gated, "Moon", ood_scores=outs[OOD_SCORE]))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="planet_terrain_plugin/models/planet_terrain_resnet50.fp16.onnx")
    p.add_argument("--split", default="planet_terrain_plugin/models/planet_terrain_resnet50.split.json")
    p.add_argument("--rasters", default="../shared/data/rasters")
    p.add_argument("--out", default="runs/ood")
    p.add_argument("--stage", default="layer3", help="graph stage whose pooled output is scored, or 'embedding'")
    p.add_argument("--axes", type=int, default=128, help="principal axes of the Gaussian")
    p.add_argument("--quantile", type=float, default=GATE_QUANTILE, help="share of validation known-class images the gate keeps")
    p.add_argument("--other-step", type=int, default=3, help="fit on every n-th training 'other' crop")
    p.add_argument("--version", help="model_version of the written file (default: the input model's own)")
    p.add_argument("--ship", help="model file to replace with the result (e.g. the --model itself)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(a.model)
    if has_mirror_view(onnx.load(str(src))):
        raise SystemExit(f"'{src}' averages a mirror view, so its layers run on twice the batch: fit the OOD score on "
                         "the one-view file (make ood), then add the view (make mirror-views)")
    data = load_data(src, a.split)
    base = data.contract
    feats = feature_model(src, a.stage, out / "features.onnx")
    key = POOLED if a.stage != EMBEDDING else EMBEDDING
    train = [r for r in data.splits["train"] if r.known] + [r for r in data.splits["train"] if not r.known][::a.other_step]
    feature = stage_output(onnx.load(str(src)), a.stage) if a.stage != EMBEDDING else EMBEDDING
    stats = fit_gaussian(records_outputs(feats, data, train, "train")[key], a.axes, feature)
    final = out / src.name
    onnx.save(add_ood_score(onnx.load(str(src)), stats), str(final))
    val = records_outputs(final, data, data.splits["val"], "val")
    known = np.array([r.known for r in data.splits["val"]])
    threshold = float(np.quantile(val[OOD_SCORE][known], a.quantile))
    test_logits = records_outputs(final, data, data.splits["test"], "test")[LOGITS]
    old = records_outputs(src, data, data.splits["test"], "test-input")[LOGITS]
    if not np.array_equal(old, test_logits):
        raise SystemExit(f"logits changed (max |d| {np.abs(old - test_logits).max():.3g}); not written")
    header = {"stage": a.stage, "axes": a.axes, "quantile": a.quantile, "logits_bit_identical_on_test": True}
    report = measure(Path(a.rasters), data, base, final, val, threshold, header)
    contract = base.replace(model_version=a.version or base.model_version,
                            outputs=(LOGITS, EMBEDDING, OOD_SCORE), ood_threshold=threshold,
                            metrics={**base.metrics, **report["contract_metrics"]})
    onnx.save(set_contract(onnx.load(str(final)), contract), str(final))
    (out / "ood_report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "ood_report.md").write_text(markdown(report))
    print(markdown(report))
    if a.ship:
        shutil.copy2(final, a.ship)
        print(f"shipped {final} -> {a.ship}")
    return 0


def measure(rasters: Path, data, base, final: Path, val: dict, threshold: float, header: dict) -> dict:
    """Every figure of the report on the model file ``final`` under ``base``'s temperature and threshold, with
    the OOD limit ``threshold``; ``header`` (how the score was fitted) leads the report."""
    gated = base.replace(outputs=(LOGITS, EMBEDDING, OOD_SCORE), ood_threshold=threshold)
    test = records_outputs(final, data, data.splits["test"], "test")
    labels = {s: np.array([r.label for r in data.splits[s]]) for s in ("val", "test")}
    probes = all_probes(rasters)
    apollo = onnx_outputs(final, apollo_tensors(rasters, base))
    table = probe_table(probes, final, gated)
    counts = probe_counts(table)
    figures = {"val": split_figures(val, labels["val"], base, gated),
               "test": split_figures(test, labels["test"], base, gated)}
    return {**header, "ood_threshold": round(threshold, 4), "size_kb": round(final.stat().st_size / 1024),
            **figures, "probes": {**counts, "by_family": table},
            "apollo_20km_cells": apollo_figures(apollo, base, gated),
            "contract_metrics": {"ood_test_known_kept": figures["test"]["with_ood_gate"]["known_kept"],
                                 "ood_test_other_rejected": figures["test"]["with_ood_gate"]["other_rejected"],
                                 **probe_metrics(counts)}}


def probe_counts(table: dict[str, dict]) -> dict[str, int]:
    """Totals of a :func:`probe_table`: probes, abstained, given ``out_of_distribution``, given the right reason."""
    return {"n": sum(f["n"] for f in table.values()),
            "abstained": sum(f["n"] - f["reasons"].get("labelled", 0) for f in table.values()),
            "out_of_distribution": sum(f["reasons"].get(Reason.OUT_OF_DISTRIBUTION.value, 0) for f in table.values()),
            "right_reason": sum(f["right_reason"] for f in table.values())}


def probe_metrics(counts: dict[str, int]) -> dict[str, float]:
    """The probe-set shares a model file's contract quotes (``metrics``), from :func:`probe_counts`."""
    return {"ood_probes_abstained": round(counts["abstained"] / counts["n"], 4),
            "ood_probes_right_reason": round(counts["right_reason"] / counts["n"], 4),
            "ood_probes_out_of_distribution": round(counts["out_of_distribution"] / counts["n"], 4)}


def markdown(r: dict) -> str:
    lines = [f"OOD score: Mahalanobis distance, pooled `{r['stage']}` features, {r['axes']} whitened axes; "
             f"threshold {r['ood_threshold']} (the {r['quantile']:.0%} quantile of validation known-class images).", "",
             "| split | gate | known kept | \"other\" rejected | known called OOD | \"other\" called OOD |",
             "|---|---|---|---|---|---|"]
    for split in ("val", "test"):
        for gate in ("softmax_only", "with_ood_gate"):
            f = r[split][gate]
            lines.append(f"| {split} | {gate.replace('_', ' ')} | {f['known_kept']:.3f} | {f['other_rejected']:.3f} | "
                         f"{f['known_called_ood']:.3f} | {f['other_called_ood']:.3f} |")
    lines += ["", f"OOD probe set, through the plugin's own path: {r['probes']['right_reason']} of "
              f"{r['probes']['n']} with the right reason, {r['probes']['abstained']} abstained, "
              f"{r['probes']['out_of_distribution']} as out_of_distribution.", "",
              "| probe family | n | right reason | labelled | out_of_distribution | low_confidence | not_an_image | "
              "out_of_scale |", "|---|---|---|---|---|---|---|---|"]
    for fam, f in r["probes"]["by_family"].items():
        c = f["reasons"]
        lines.append(f"| {fam} | {f['n']} | {f['right_reason']} | {c.get('labelled', 0)} | "
                     f"{c.get('out_of_distribution', 0)} | {c.get('low_confidence', 0)} | "
                     f"{c.get('not_an_image', 0)} | {c.get('out_of_scale', 0)} |")
    lines += ["", "| Apollo 15 frames, 20 km cells (Moon) | cells | crater | impact ejecta | out_of_distribution |",
              "|---|---|---|---|---|"]
    for k, c in r["apollo_20km_cells"].items():
        lines.append(f"| {k} | {c['cells']} | {c['crater']} | {c['impact ejecta']} | {c['out_of_distribution']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
