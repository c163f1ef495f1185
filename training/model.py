"""The network: torchvision ResNet-50 (no pretrained download) with a head sized to the contract's classes.

Also the two variants the ablation compares: an extra "other" output (``outlier_mode`` "class"), and a deep ensemble
of several such networks averaged into one module, so calibration, evaluation and ONNX export treat it exactly
like a single network.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torchvision

from planet_terrain_plugin.core.calibrate import softmax


def output_count(cfg, n_classes: int) -> int:
    """Outputs of the network a config trains: the known classes, plus one for "other" in "class" mode."""
    return n_classes + (1 if cfg.outlier_mode == "class" else 0)


def class_probs(logits: np.ndarray, temperature: float, n_classes: int) -> np.ndarray:
    """(N, n_classes) probabilities of the known classes: the softmax over every output, extra "other" output
    dropped (so with one, rows sum to less than 1 and the top probability is what abstention reads)."""
    return softmax(np.asarray(logits, float), temperature)[:, :n_classes]


class Ensemble(torch.nn.Module):
    """Members' softmax averaged; returns the log of that mean, so softmax(output / T) is the (tempered)
    ensemble probability and the plugin's contract (logits in, temperature-scaled softmax) is unchanged."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    @property
    def fc(self) -> torch.nn.Module:
        return self.members[0].fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m(x), 1) for m in self.members])
        return torch.logsumexp(logp, 0) - math.log(len(self.members))

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(members, N, outputs): for the spread between members."""
        return torch.stack([m(x) for m in self.members])


def build_model(num_outputs: int, arch: str = "resnet50", ensemble_size: int = 1) -> torch.nn.Module:
    """``weights=None`` always: nothing may download at run time. Local weights come through :func:`load_init`."""
    ctor = getattr(torchvision.models, arch)
    if ensemble_size > 1:
        return Ensemble([ctor(weights=None, num_classes=num_outputs) for _ in range(ensemble_size)])
    return ctor(weights=None, num_classes=num_outputs)


def load_init(model: torch.nn.Module, path: str) -> list[str]:
    """Load a local torchvision-format state dict, skipping a missing or differently sized ``fc``.

    Returns the keys left at their random initialisation (only ``fc.*`` is acceptable; anything else raises,
    because a silently half-loaded backbone would waste the whole run).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = sorted(set(own) - set(usable))
    bad = [k for k in missing if not k.startswith("fc.")]
    if bad:
        raise ValueError(f"init weights '{path}' lack or mis-shape backbone keys {bad[:5]} ({len(bad)} in all)")
    model.load_state_dict(usable, strict=False)
    return missing


def set_backbone_trainable(model: torch.nn.Module, trainable: bool) -> None:
    """Freeze (linear probe) or unfreeze everything but the ``fc`` head."""
    for name, p in model.named_parameters():
        p.requires_grad = trainable or name.startswith("fc.")
