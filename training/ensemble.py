"""A deep ensemble of trained runs as one network: ``python -m training.ensemble --members A B --out DIR``.

Why: networks trained from different seeds make different mistakes; averaging their softmax usually improves
accuracy and calibration, and their disagreement is a second uncertainty signal besides the top probability.
The members become one :class:`training.model.Ensemble` in an ordinary run directory (``last.pt``,
``config.json`` with ``ensemble_size``, the members' shared ``split.json``), so ``training.calibrate``,
``training.evaluate`` and ``export.to_onnx`` treat it like any run, and the plugin gets one ONNX graph.

:func:`spread_report` measures whether the spread between members separates "other" better than the
ensemble's top probability (AUROC known-vs-other on the test split); the abstention rule would use it only
if it did.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .metrics import auroc
from .model import Ensemble, class_probs
from .rundata import load_run_data


def combine(member_runs: list[str | Path], out_dir: str | Path, ckpt_name: str = "last.pt") -> Path:
    """Write the ensemble of ``member_runs`` (same split, contract facts and outputs) as a run; returns it."""
    if len(member_runs) < 2:
        raise ValueError("an ensemble needs at least two member runs")
    runs = [Path(r) for r in member_runs]
    loaded = [checkpoint.load_model(r / ckpt_name) for r in runs]
    splits = {(r / "split.json").read_text() for r in runs}
    if len(splits) != 1:
        raise ValueError(f"members {', '.join(map(str, runs))} were trained on different splits; an ensemble "
                         "scored on a test split one member trained on would be leaked")
    cfg0, contract0 = loaded[0][1], loaded[0][2]
    for (model, cfg, contract, _), run in zip(loaded, runs):
        same = (cfg.arch, cfg.outlier_mode, cfg.ensemble_size, contract.input_size, contract.mean, contract.std,
                contract.stretch_percentiles) == (cfg0.arch, cfg0.outlier_mode, 1, contract0.input_size,
                                                  contract0.mean, contract0.std, contract0.stretch_percentiles)
        if not same:
            raise ValueError(f"member '{run}' differs from '{runs[0]}' in architecture, outputs or preprocessing "
                             "(or is itself an ensemble)")
    ens = Ensemble([m for m, *_ in loaded])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg0.__class__.from_dict({**json.loads(cfg0.to_json()), "ensemble_size": len(runs), "out_dir": str(out)})
    cfg.save(out / "config.json")
    shutil.copy2(runs[0] / "split.json", out / "split.json")
    ck0 = loaded[0][3]
    checkpoint.save(out / "last.pt", model=ens.state_dict(), config=json.loads(cfg.to_json()),
                    contract=ck0["contract"], epoch=max(ck[3]["epoch"] for ck in loaded), best=-1.0, history=[],
                    members=[str(r) for r in runs])
    return out


@torch.no_grad()
def member_logits(model: Ensemble, tensors: np.ndarray, batch: int = 64) -> np.ndarray:
    """(members, N, outputs) logits."""
    model.eval()
    out = [model.member_logits(torch.from_numpy(tensors[i:i + batch])).numpy() for i in range(0, len(tensors), batch)]
    return np.concatenate(out, axis=1).astype(np.float64)


def spread_report(run_dir: str | Path, cache_dir: str | None = "runs/cache") -> dict:
    """AUROC known-vs-other on the test split of: the ensemble's top probability, the members' disagreement
    (mutual information, negated) and the top probability minus the members' spread on that class."""
    run = Path(run_dir)
    model, cfg, contract, _ = checkpoint.load_model(run / "last.pt")
    t = json.loads((run / "calibration.json").read_text())["temperature"]
    data = load_run_data(cfg, contract, split_file=str(run / "split.json"), cache_dir=cache_dir)
    n = contract.num_classes
    scores = {}
    parts = {}
    for name, recs in (("known", data.known("test")), ("other", data.other("test"))):
        x = np.stack([data.cache.eval_tensor(r) for r in recs]).astype(np.float32)
        pm = np.stack([class_probs(lg, t, n) for lg in member_logits(model, x)])  # (M, N, n)
        mean = pm.mean(0)
        entropy = lambda p: -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)  # noqa: E731
        mutual_info = entropy(mean) - entropy(pm).mean(0)
        top = mean.argmax(1)
        spread = pm[:, np.arange(len(top)), top].std(0)
        parts[name] = {"top_probability": mean.max(1), "minus_mutual_information": -mutual_info,
                       "top_minus_spread": mean.max(1) - spread}
    for key in parts["known"]:
        scores[key] = auroc(parts["known"][key], parts["other"][key])
    best = max(scores, key=scores.get)
    result = {"auroc_known_vs_other": scores, "best_score": best,
              "spread_helps": bool(best != "top_probability" and scores[best] > scores["top_probability"] + 0.005)}
    (run / "spread.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", nargs="+", required=True, help="run directories trained on one split")
    p.add_argument("--out", required=True, help="run directory for the ensemble")
    p.add_argument("--checkpoint", default="last.pt")
    a = p.parse_args(argv)
    print(combine(a.members, a.out, a.checkpoint))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
