"""What every export step shares: the run's contract, test tensors, and scoring of an ONNX file."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from planet_terrain_plugin.core.calibrate import softmax
from planet_terrain_plugin.core.contract import KEY_PREFIX, VARIANT_FIGURES, ModelContract, VariantInfo

from training.config import TrainConfig
from training.metrics import abstention, auroc, macro_f1
from training.rundata import RunData, load_run_data

#: Figures copied from ``metrics.json`` into the contract's ``metrics`` (flat, so the plugin can show them).
HEADLINE = ("macro_f1", "accuracy", "ece_before", "ece_after", "other_rejected", "known_coverage",
            "accuracy_on_accepted", "auroc_known_vs_other")


def run_contract(run_dir: str | Path, base: ModelContract) -> ModelContract:
    """The base contract with the fitted temperature/threshold and the test metrics of the run."""
    run = Path(run_dir)
    cal = json.loads((run / "calibration.json").read_text())
    m = json.loads((run / "metrics.json").read_text())
    return base.replace(temperature=float(cal["temperature"]), threshold=float(cal["threshold"]),
                        variant=VariantInfo("fp32"), metrics=headline_metrics(m))


def headline_metrics(m: dict) -> dict:
    """The contract's ``metrics`` from a ``metrics.json``-shaped dict (``training.evaluate.split_metrics`` and
    ``epochs_trained``)."""
    metrics: dict = {"split": "test (source-image grouped, see split.json)"}
    img, lm = m["per_image"]["all"], m["per_landmark"]["all"]
    metrics.update({k: _r(img[k]) for k in HEADLINE})
    metrics.update({f"{k}_per_landmark": _r(lm[k]) for k in ("macro_f1", "accuracy")})
    metrics.update({f"{k}_v1_crops": _r(m["per_image"]["v1_crops"][k]) for k in ("macro_f1", "auroc_known_vs_other")})
    metrics.update({f"{k}_v3_crops": _r(m["per_image"]["v3_crops"][k]) for k in ("macro_f1", "auroc_known_vs_other")})
    metrics.update(n_test_known=img["n_known"], n_test_other=img["n_other"], epochs=m["epochs_trained"])
    return metrics


def _r(x):
    return None if x is None else round(float(x), 4)


def set_contract(model: onnx.ModelProto, contract: ModelContract) -> onnx.ModelProto:
    """Replace any Planet Terrain metadata with ``contract``'s (other metadata is kept)."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(KEY_PREFIX)]
    del model.metadata_props[:]
    for k, v in keep + sorted(contract.to_metadata().items()):
        model.metadata_props.add(key=k, value=v)
    return model


@dataclass
class TestSet:
    """Test-split tensors (exactly the plugin's preprocessing) with labels; label -1 marks "other"."""

    tensors: np.ndarray
    labels: np.ndarray


def test_set(data: RunData) -> TestSet:
    recs = data.splits["test"]
    x = np.stack([data.cache.eval_tensor(r) for r in recs]) if recs else np.zeros((0, 3, 1, 1), np.float32)
    return TestSet(x.astype(np.float32), np.array([r.label - 1 for r in recs], int))


def run_onnx(path: str | Path, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Logits from an ONNX file on CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
                          ).astype(np.float64)


def variant_scores(logits: np.ndarray, ref_logits: np.ndarray, ts: TestSet, contract: ModelContract) -> dict:
    """Macro-F1 of a variant and its agreement with the fp32 reference on the test split."""
    known = ts.labels >= 0
    p, ref = softmax(logits, contract.temperature), softmax(ref_logits, contract.temperature)
    f1 = macro_f1(ts.labels[known], p[known].argmax(1), contract.num_classes)
    f1_ref = macro_f1(ts.labels[known], ref[known].argmax(1), contract.num_classes)

    def decision(q: np.ndarray) -> np.ndarray:  # what the user sees: a class, or -1 for unknown
        return np.where(q.max(1) >= contract.threshold, q.argmax(1), -1)

    own = abstention(p[known], ts.labels[known], p[~known], contract.threshold)
    return {"macro_f1": round(f1, 4), "macro_f1_delta_vs_fp32": round(f1 - f1_ref, 4),
            "accuracy": round(float((p[known].argmax(1) == ts.labels[known]).mean()), 4),
            "other_rejected": round(own["other_rejected"], 4), "known_coverage": round(own["known_coverage"], 4),
            "auroc_known_vs_other": round(auroc(p[known].max(1), p[~known].max(1)), 4),
            "top1_agreement_vs_fp32": round(float((p.argmax(1) == ref.argmax(1)).mean()), 4),
            "top1_agreement_known_vs_fp32": round(float((p[known].argmax(1) == ref[known].argmax(1)).mean()), 4),
            "decision_agreement_vs_fp32": round(float((decision(p) == decision(ref)).mean()), 4),
            "max_abs_dprob_vs_fp32": round(float(np.abs(p - ref).max()), 4)}


def variant_contract(contract: ModelContract, name: str, scores: dict) -> ModelContract:
    """``contract`` for the variant ``name``: its agreement with fp32 in the typed ``variant``, the rest of its
    ``scores`` (:func:`variant_scores`) in ``metrics``."""
    typed = {name: scores[name] for name in VARIANT_FIGURES}
    rest = {k: v for k, v in scores.items() if k not in typed}
    return contract.replace(variant=VariantInfo(name, **typed), metrics={**contract.metrics, **rest})


def load_data_for(run_dir: str | Path, contract: ModelContract, cache_dir: str | None = "runs/cache") -> RunData:
    run = Path(run_dir)
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    return load_run_data(cfg, contract, split_file=str(run / "split.json"), cache_dir=cache_dir)
