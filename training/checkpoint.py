"""Saving and loading run checkpoints: weights plus the config and contract that give them meaning."""
from __future__ import annotations

import shutil
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
    try:
        torch.save(state, tmp)
    except RuntimeError as e:  # a short write (full disk, file-size limit) surfaces as "unexpected pos"
        tmp.unlink(missing_ok=True)
        free_mb = shutil.disk_usage(tmp.parent).free / 1e6
        raise OSError(f"could not write the checkpoint {path} ({free_mb:.0f} MB free on its disk): free some space "
                      f"or point the run at another folder ({e})") from e
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
