"""Logits and embeddings of the HiRISE splits, computed once with an ONNX model and cached for the OOD study.

The tensors are exactly the plugin's (``GrayCache.eval_tensor`` is ``preprocess.finish``), and the model is run
by onnxruntime on the CPU as the plugin runs it, so every score measured on them is the score a user gets.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from planet_terrain_plugin.core.contract import read_contract

from training.config import TrainConfig
from training.rundata import CACHE_DIR, RunData, load_run_data


def onnx_outputs(path: str | Path, x: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """Every output of a model on CPU, by name."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name, outs = sess.get_inputs()[0].name, [o.name for o in sess.get_outputs()]
    parts = [sess.run(None, {name: x[i:i + batch]}) for i in range(0, len(x), batch)]
    return {o: np.concatenate([p[j] for p in parts]) for j, o in enumerate(outs)}


def load_data(model_path: str | Path, split_file: str | Path, cache_dir: str = CACHE_DIR,
              cfg: TrainConfig | None = None) -> RunData:
    """The shipped split's records and pixel cache, with the model's own contract."""
    cfg = cfg or TrainConfig.from_dict(json.loads(Path("training/configs/default.json").read_text()))
    return load_run_data(cfg, read_contract(str(model_path)), split_file=str(split_file), cache_dir=cache_dir)


def records_outputs(model_path: str | Path, data: RunData, recs: list, tag: str,
                    cache_dir: str = CACHE_DIR) -> dict[str, np.ndarray]:
    """Outputs for some records, cached on disk by the model file's hash and the records' file list."""
    digest = hashlib.sha1(Path(model_path).read_bytes()).hexdigest()[:12]
    files = hashlib.sha1("\n".join(r.path for r in recs).encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"ood-{tag}-{digest}-{files}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return dict(z)
    out = onnx_outputs(model_path, np.stack([data.cache.eval_tensor(r) for r in recs]).astype(np.float32))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out
