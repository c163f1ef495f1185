"""Every knob of a training run in one dataclass, read from and written to JSON beside each run.

Why one place: the shipped model must be reproducible from ``training/configs/default.json`` alone, and the
numbers that end up inside the ONNX contract (normalisation, stretch percentiles, input size) must have exactly
one origin. :meth:`TrainConfig.base_contract` turns them into a :class:`ModelContract`; nothing else in the
training tree restates them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planet_terrain_plugin.core.contract import HIRISE_LANDFORMS, KNOWN_BODIES, ModelContract

from .precision import PRECISION_CHOICES


@dataclass
class TrainConfig:
    """A whole run: data, split, model, schedule, augmentation, balancing and the contract's fixed facts."""

    # -- data ------------------------------------------------------------------------------------------------
    data_root: str = "../shared/data/hirise-map-proj-v3"
    v1_root: str = "../shared/data/hirise-map-proj-v1"
    use_v1: bool = True
    #: Cap on images per version (0 = all); only the smoke config uses it.
    max_images: int = 0
    split_fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    split_seed: int = 0
    #: Existing split file to reuse (else one is computed and written into the run directory).
    split_file: str = ""

    # -- model and input -------------------------------------------------------------------------------------
    arch: str = "resnet50"
    input_size: int = 96
    #: Mean and std of stretched training pixels (measured on every 40th image: 0.51 and 0.244), rounded.
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    stretch_percentiles: tuple[float, float] = (0.5, 99.5)
    #: Local torchvision-format state dict; enables the two-stage (linear probe, then fine-tune) schedule.
    init: str = ""
    probe_epochs: int = 2

    # -- schedule ----------------------------------------------------------------------------------------------
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    probe_lr: float = 1e-2
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    label_smoothing: float = 0.05
    seed: int = 0
    num_threads: int = 2
    #: Processes preparing augmented batches while the network trains (0 = in the training process).
    loader_workers: int = 1
    #: Stop starting new epochs after this many minutes (0 = no limit); the last finished epoch is kept.
    time_budget_min: float = 0.0
    #: "auto": float16 autocast on CUDA, bfloat16 autocast on CPUs with native bf16, else float32 (see
    #: ``training.precision``); "fp32": never autocast.
    precision: str = "auto"

    # -- class balance and "other" -------------------------------------------------------------------------
    #: "sampler" (class-balanced WeightedRandomSampler), "loss_weights" (inverse-frequency CE weights),
    #: "class_balanced" (effective-number CE weights, ``cb_beta``), "none".
    balance: str = "sampler"
    #: Known-class samples drawn per epoch when balancing with the sampler (0 = number of known train images).
    samples_per_epoch: int = 0
    #: Outlier exposure (Hendrycks et al. 2019): train-split "other" images pushed towards a uniform softmax,
    #: so the max-probability abstention rejects them. Weight of that loss term, 0 disables it.
    outlier_weight: float = 0.5
    #: "other" images per known image in each epoch.
    outlier_ratio: float = 0.5
    #: How "other" is taught (issue 5 compares them): "uniform" (outlier exposure, above), "class" (an extra
    #: output trained on "other" with weight ``outlier_weight``; abstention reads the known classes' share).
    #: ``outlier_weight`` 0 means abstention by the threshold alone.
    outlier_mode: str = "uniform"
    #: Sampler weight of an image = (its class's train count) ** -sampler_power: 1 balances the classes,
    #: above 1 over-samples the rare ones further (their copies differ by the online augmentation).
    sampler_power: float = 1.0
    #: With ``balance`` "class_balanced": loss weights from the effective number of samples (Cui et al. 2019).
    cb_beta: float = 0.999
    #: Focal-loss exponent on the known-class loss (0 = plain cross-entropy).
    focal_gamma: float = 0.0
    #: Mixup / CutMix on the known images of a batch: Beta(alpha, alpha) mixing, 0 disables each; when both are
    #: on, each mixed batch picks one at random. ``mix_p`` is the share of batches mixed.
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_p: float = 0.5
    #: Members averaged into one network (written by ``training.ensemble``; 1 = a single network).
    ensemble_size: int = 1

    # -- distillation (training.distill) ----------------------------------------------------------------------
    #: Teacher checkpoint ("" = none); in CV, "{fold}" is replaced by the fold number.
    distill_teacher: str = ""
    #: Dihedral views the teacher's logits are averaged over (1, 2, 4 or 8).
    distill_views: int = 4
    #: Share of the loss that matches the teacher; the rest is the labels' (and "other"'s) own loss.
    distill_weight: float = 0.5
    distill_temperature: float = 2.0

    # -- semi-supervised (training.semi) ------------------------------------------------------------------------
    #: Weight of FixMatch's consistency loss on unlabeled crops (0 = off).
    semi_weight: float = 0.0
    #: A weak view's top probability must reach this for its label to teach the strong view.
    semi_threshold: float = 0.95
    #: Unlabeled crops per labelled image in each batch.
    semi_ratio: float = 1.0

    # -- augmentation ------------------------------------------------------------------------------------------
    crop_scale: tuple[float, float] = (0.35, 1.0)
    crop_ratio: tuple[float, float] = (0.8, 1.25)
    dihedral: bool = True
    brightness: float = 0.2
    contrast: float = 0.25
    noise_std: float = 0.04
    noise_p: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    blur_p: float = 0.3

    # -- self-supervised pretraining (training.pretrain) --------------------------------------------------------
    #: "simclr" (contrastive, NT-Xent) or "byol" (momentum target, no negatives).
    ssl_method: str = "simclr"
    ssl_epochs: int = 10
    #: Stop starting new pretraining epochs after this many minutes (0 = no limit).
    ssl_time_budget_min: float = 0.0
    ssl_batch_size: int = 32
    ssl_lr: float = 3e-4
    #: NT-Xent temperature (SimCLR).
    ssl_temperature: float = 0.2
    ssl_proj_dim: int = 128
    #: EMA rate of BYOL's target network.
    ssl_momentum: float = 0.99
    #: Splits whose HiRISE crops (landforms and "other" alike, labels unused) join the unlabeled pool; the test
    #: split stays out, so its scores stay those of images the network never saw in any form.
    ssl_splits: tuple[str, ...] = ("train", "val")
    #: Folder of planetary rasters (every body) cut into extra unlabeled crops; "" = HiRISE crops only.
    ssl_raster_dir: str = "../shared/data/rasters"
    ssl_crops_per_raster: int = 200
    #: Crop side range in raster pixels for those crops.
    ssl_crop_pixels: tuple[int, int] = (48, 256)
    #: Views: random crop area share (wider than supervised training: SSL needs harder views).
    ssl_crop_scale: tuple[float, float] = (0.2, 1.0)
    #: Start pretraining from these weights (e.g. a supervised run's checkpoint) instead of random ones.
    ssl_init: str = ""

    # -- contract facts (everything else in the contract is measured) ----------------------------------------
    model_name: str = "planet_terrain_resnet50"
    model_version: str = "1.1.0"
    bodies: tuple[str, ...] = KNOWN_BODIES
    #: Ground sampling the crops represent (an estimate, see MODEL_CARD.md): HiRISE RED is 0.25-1.3 m/px at
    #: full resolution; the browse images the crops come from are downsampled (~2-6 m/px assumed), and each
    #: landmark box (+30 px margins) was rescaled to 227 px, by factors of roughly 0.3-2.
    gsd_range_m: tuple[float, float] = (0.5, 12.0)

    # -- calibration -------------------------------------------------------------------------------------------
    #: Share of the validation "other" pool the abstention threshold must reject.
    target_other_rejection: float = 0.90

    out_dir: str = "runs/default"

    # ----------------------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        """Refuse a misspelt choice now, not after an hour of training."""
        choices = {"balance": ("sampler", "loss_weights", "class_balanced", "none"),
                   "outlier_mode": ("uniform", "class"), "ssl_method": ("simclr", "byol"),
                   "precision": PRECISION_CHOICES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"config '{name}' is {getattr(self, name)!r}; choose one of {allowed}")
        if not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0:
            raise ValueError(f"config distill_weight {self.distill_weight} must lie in [0, 1] and "
                             f"distill_temperature {self.distill_temperature} be positive")

    def base_contract(self, **measured: Any) -> ModelContract:
        """The contract this run's preprocessing uses; temperature/threshold/metrics are filled in later."""
        fields = dict(model_name=self.model_name, model_version=self.model_version, classes=HIRISE_LANDFORMS,
                      input_size=self.input_size, mean=tuple(self.mean), std=tuple(self.std), temperature=1.0,
                      threshold=0.0, bodies=tuple(self.bodies), gsd_range_m=tuple(self.gsd_range_m),
                      stretch_percentiles=tuple(self.stretch_percentiles))
        fields.update(measured)
        return ModelContract(**fields)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict, refusing unknown keys (a typo in a config must not be silently ignored)."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known: {sorted(names)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kw)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        data = json.loads(Path(path).read_text())
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)


def run_parser(description: str, default_config: str, checkpoint_name: str) -> argparse.ArgumentParser:
    """The command-line options every run script shares (config, output, data roots, resume, progress)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", default=default_config)
    p.add_argument("--out", help="run directory (default: the config's out_dir)")
    p.add_argument("--data-root", help="HiRISE map-proj-v3 root (overrides the config)")
    p.add_argument("--v1-root", help="HiRISE map-proj v1 root (overrides the config)")
    p.add_argument("--resume", action="store_true", help=f"continue from <out>/{checkpoint_name}")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """The config named by ``args`` with the command line's overrides and its output directory."""
    cfg = TrainConfig.load(args.config, data_root=args.data_root, v1_root=args.v1_root, **overrides)
    cfg.out_dir = args.out or cfg.out_dir
    return cfg
