"""How a run computes on its device: autocast dtype, gradient scaling and memory layout.

Why a module of its own: the choice depends on the hardware, not on the model, and training and pretraining must
make it the same way. On a CPU with native bf16 (AVX512-BF16 / AMX) bf16 autocast with channels-last tensors
trains much faster than float32, so the same wall-clock budget buys more epochs (figures in the model card,
"Training"). Weights, optimiser state, evaluation, calibration and export stay float32 either way.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

#: ``TrainConfig.precision`` values: "auto" picks per device (below), "fp32" never autocasts.
PRECISION_CHOICES = ("auto", "fp32")


@dataclass(frozen=True)
class Precision:
    """``autocast_dtype`` None: plain float32. ``grad_scaler``: float16 needs loss scaling, bfloat16 does not."""

    autocast_dtype: torch.dtype | None
    channels_last: bool
    grad_scaler: bool

    def autocast(self, device: torch.device) -> torch.autocast:
        return torch.autocast(device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def place(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """Move a network to the device, in the memory layout this precision computes fastest in."""
        module.to(device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def make_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        """Loss scaling where the autocast dtype needs it (float16); a pass-through otherwise."""
        return torch.amp.GradScaler(device.type, enabled=self.grad_scaler)

    def describe(self) -> str:
        dtype = str(self.autocast_dtype).replace("torch.", "") if self.autocast_dtype else "float32"
        return f"{dtype}{' autocast' if self.autocast_dtype else ''}{', channels-last' if self.channels_last else ''}"


def cpu_has_native_bf16() -> bool:
    """oneDNN's own test for fast bf16 kernels (AVX512-BW and up); False where torch cannot tell."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision_for(device: torch.device, mode: str = "auto") -> Precision:
    """CUDA: float16 autocast with loss scaling; CPU with native bf16: bfloat16 autocast; otherwise float32.

    Channels-last goes with autocast: it is what makes oneDNN's and cuDNN's reduced-precision convolutions fast.
    """
    if mode not in PRECISION_CHOICES:
        raise ValueError(f"precision {mode!r}; choose one of {PRECISION_CHOICES}")
    if mode == "auto" and device.type == "cuda":
        return Precision(torch.float16, channels_last=True, grad_scaler=True)
    if mode == "auto" and device.type == "cpu" and cpu_has_native_bf16():
        return Precision(torch.bfloat16, channels_last=True, grad_scaler=False)
    return Precision(None, channels_last=False, grad_scaler=False)
