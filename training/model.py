"""The network: torchvision ResNet-50 (no pretrained download) with a head sized to the contract's classes."""
from __future__ import annotations

import torch
import torchvision


def build_model(num_classes: int, arch: str = "resnet50") -> torch.nn.Module:
    """``weights=None`` always: nothing may download at run time. Local weights come through :func:`load_init`."""
    ctor = getattr(torchvision.models, arch)
    return ctor(weights=None, num_classes=num_classes)


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
