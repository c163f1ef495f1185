"""Where the shipped models live and which variant suits the active execution provider.

``export/`` writes ``<name>.fp32.onnx``, ``<name>.int8.onnx`` and ``<name>.fp16.onnx`` variants; the plugin
ships the ones that fit and picks: int8 on CPU when its recorded macro-F1 is within
:data:`INT8_TOLERANCE` of fp32 (the contract's ``variant`` says so), else fp32 (or fp16, which onnxruntime's CPU
provider computes in fp32); fp16/fp32 on GPUs.
"""
from __future__ import annotations

import os
from pathlib import Path

from .contract import ModelContract, VariantInfo, read_contract

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL_NAME = "planet_terrain_resnet50"
#: Largest macro-F1 loss (absolute) accepted for the int8 variant to be the CPU default.
INT8_TOLERANCE = 0.005
#: Smallest share of test images on which int8 must give fp32's decision (label or unknown).
INT8_MIN_AGREEMENT = 0.98
ENV_MODEL = "PLANET_TERRAIN_MODEL"


class NoModelError(FileNotFoundError):
    """No model is installed; the message says how to get one."""


def variant_path(variant: str, models_dir: Path = MODELS_DIR, name: str = DEFAULT_MODEL_NAME) -> Path:
    return models_dir / f"{name}.{variant}.onnx"


def installed_variants(models_dir: Path = MODELS_DIR, name: str = DEFAULT_MODEL_NAME) -> dict[str, Path]:
    """The variants present on disk, by variant name (fp32, int8, fp16)."""
    return {v: variant_path(v, models_dir, name) for v in ("fp32", "int8", "fp16")
            if variant_path(v, models_dir, name).is_file()}


def int8_is_acceptable(variant: VariantInfo) -> bool:
    """int8 is the CPU default only if export recorded both: its macro-F1 loss against fp32 within tolerance,
    and the same user-visible decision (label or unknown) as fp32 on at least :data:`INT8_MIN_AGREEMENT` of the
    test images. Macro-F1 alone can hide a model that changes many answers while scoring the same."""
    delta, agreement = variant.macro_f1_delta_vs_fp32, variant.decision_agreement_vs_fp32
    return (delta is not None and agreement is not None
            and delta >= -INT8_TOLERANCE and agreement >= INT8_MIN_AGREEMENT)


def default_model_path(provider_hint: str = "CPUExecutionProvider", models_dir: Path = MODELS_DIR) -> Path:
    """The shipped model file to use, or :class:`NoModelError` explaining how to install one.

    ``PLANET_TERRAIN_MODEL`` overrides everything (a user's own export). On GPU providers fp16, then fp32;
    on CPU int8 when acceptable, else fp32, else whatever is there.
    """
    env = os.environ.get(ENV_MODEL)
    if env:
        return Path(env)
    found = installed_variants(models_dir)
    if not found:
        raise NoModelError(
            f"No default model is installed in {models_dir}. Train and export one with `make train export` "
            "(see README, 'The model'), download or install one with 'Planet Terrain > Manage models…' / "
            "'Install model file…', or give one in the Processing algorithm's model parameter.")
    if provider_hint != "CPUExecutionProvider":
        order = ["fp16", "fp32", "int8"]
    else:
        # fp16 weights run in fp32 arithmetic on onnxruntime's CPU provider: fp32's accuracy and speed in half
        # the file, so it stands in for fp32 when that is not shipped; int8 only within tolerance.
        order = ["fp32", "fp16", "int8"]
        if "int8" in found and int8_is_acceptable(read_contract(str(found["int8"])).variant):
            order = ["int8", "fp32", "fp16"]
    return next(found[v] for v in order if v in found)


def variant_note(contract: ModelContract, provider: str = "CPUExecutionProvider") -> str:
    """One line saying which variant runs and why, from the figures export recorded in its contract."""
    variant = contract.variant
    parts = [variant.name or "unknown variant"]
    macro_f1 = contract.metrics.get("macro_f1")
    if isinstance(macro_f1, (int, float)) and not isinstance(macro_f1, bool):
        parts.append(f"test macro-F1 {float(macro_f1):.3f}")
    if variant.macro_f1_delta_vs_fp32 is not None:
        parts.append(f"{variant.macro_f1_delta_vs_fp32 * 100:+.1f} pt vs fp32")
    if variant.decision_agreement_vs_fp32 is not None:
        parts.append(f"same decision as fp32 on {variant.decision_agreement_vs_fp32:.0%} of test images")
    if variant.name == "int8" and provider == "CPUExecutionProvider":
        ok = int8_is_acceptable(variant)
        parts.append(f"{'meets' if ok else 'misses'} the bar for the CPU default ({INT8_TOLERANCE * 100:.1f} pt, "
                     f"{INT8_MIN_AGREEMENT:.0%} agreement)")
    return ", ".join(parts)
