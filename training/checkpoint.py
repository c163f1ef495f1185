"""Saving and loading run checkpoints: weights plus the config and contract that give them meaning."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from planet_terrain_plugin.core.contract import ModelContract

from .config import TrainConfig
from .model import build_model, output_count


def save(path: str | Path, **state: Any) -> None:
    """Atomic write (temp file + rename), so a run killed mid-save never leaves a truncated checkpoint."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only: never code


def load_model(path: str | Path) -> tuple[torch.nn.Module, TrainConfig, ModelContract, dict[str, Any]]:
    """Checkpoint -> (eval-mode CPU model, config, contract, raw checkpoint)."""
    ckpt = load(path)
    cfg = TrainConfig.from_dict(ckpt["config"])
    contract = ModelContract.from_metadata(ckpt["contract"], str(path))
    model = build_model(output_count(cfg, contract.num_classes), cfg.arch, cfg.ensemble_size)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, cfg, contract, ckpt
