"""Parity: the plugin's path (core preprocessing + onnxruntime) against training's (cached 8-bit image +
``finish`` + PyTorch) on real images. Probabilities (with the contract's temperature) must agree to 1e-4;
export fails otherwise, because a mismatch means the plugin would not be running the model that was scored.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from planet_terrain_plugin.core.calibrate import softmax
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.preprocess import preprocess
from planet_terrain_plugin.core.session import load_model

from training.dataset import GrayCache, Record

TOLERANCE = 1e-4


class ParityError(AssertionError):
    """The exported model does not reproduce the PyTorch model through the plugin's path."""


def parity_records(records: Sequence[Record], n: int = 48) -> list[Record]:
    """A deterministic spread of ``n`` records over versions and classes (known and "other")."""
    recs = sorted(records, key=lambda r: Path(r.path).name)
    step = max(1, len(recs) // n)
    return recs[::step][:n]


def _plugin_tensor(path: str, contract) -> np.ndarray:
    """What the image CLI feeds the network for ``path``."""
    block, mask = read_image(path)
    return preprocess(block, contract, mask).tensor


def max_prob_delta(onnx_path: str | Path, torch_model: torch.nn.Module, records: Sequence[Record],
                   cache: GrayCache) -> float:
    """max |p_plugin - p_training| over ``records`` and classes."""
    model = load_model(str(onnx_path), "cpu")
    contract = model.contract
    plugin_in = np.stack([_plugin_tensor(r.path, contract) for r in records])
    plugin_p = softmax(model.logits(plugin_in), contract.temperature)
    train_in = np.stack([cache.eval_tensor(r) for r in records])
    torch_model.eval()
    with torch.no_grad():
        train_logits = torch_model(torch.from_numpy(train_in)).double().numpy()
    return float(np.abs(plugin_p - softmax(train_logits, contract.temperature)).max())


def check(onnx_path: str | Path, torch_model: torch.nn.Module, records: Sequence[Record], cache: GrayCache,
          tolerance: float = TOLERANCE) -> float:
    """Raise :class:`ParityError` above ``tolerance``; returns the measured max |Δp|."""
    delta = max_prob_delta(onnx_path, torch_model, records, cache)
    if not delta <= tolerance:
        raise ParityError(f"'{onnx_path}': plugin path and PyTorch disagree by max |dp| = {delta:.2e} "
                          f"> {tolerance:.0e} on {len(records)} real images")
    return delta


def main(argv: list[str] | None = None) -> int:
    from training import checkpoint

    from .common import load_data_for

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("onnx")
    p.add_argument("--run", default="runs/default")
    p.add_argument("--checkpoint", default="last.pt")
    a = p.parse_args(argv)
    model, _, _, _ = checkpoint.load_model(Path(a.run) / a.checkpoint)
    contract = load_model(a.onnx, "cpu").contract
    data = load_data_for(a.run, contract)
    d = check(a.onnx, model, parity_records(data.splits["test"]), data.cache)
    print(f"parity ok: max |dp| = {d:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
