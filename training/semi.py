"""Semi-supervised training (issue 20, lever 3): FixMatch-style consistency on unlabeled crops.

The labels are few (about a thousand known-class images train a fold) while unlabeled terrain is plentiful: the
training split's "other" crops (HiRISE v3 class 0, v1 "other"/"edge") and crops cut from the shared rasters of
every body. FixMatch (Sohn et al. 2020): the network labels a weakly augmented view of each unlabeled crop, and
where its top probability reaches ``semi_threshold`` that label teaches a strongly augmented view of the same
crop. Crops the network is unsure of teach nothing, and the labelled "other" pool keeps its own outlier loss,
so "other" stays an outlier to abstain on rather than becoming a class. Validation and test images never join
the pool. The raster crops are cut as the pretraining pool cuts them (``ssl_raster_dir``,
``ssl_crops_per_raster``, ``ssl_crop_pixels``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment
from .config import TrainConfig
from .rundata import RunData

#: Side of the strong view's cut-out square, as a share of the input side (at most).
CUTOUT_MAX = 0.5


def semi_pool(cfg: TrainConfig, data: RunData, rng: np.random.Generator) -> list[np.ndarray]:
    """Unlabeled 8-bit crops: the training split's "other" images and crops of the shared rasters."""
    from .pretrain import raster_crops

    pool = [data.cache.gray(r) for r in data.other("train")]
    if cfg.ssl_raster_dir:
        pool += raster_crops(cfg.ssl_raster_dir, cfg.ssl_crops_per_raster, tuple(cfg.ssl_crop_pixels),
                             data.contract, rng)
    return pool


def weak_view(gray8: np.ndarray, contract, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """A near-whole crop, rotated or flipped: the view whose prediction becomes the pseudo-label."""
    weak = dataclasses.replace(cfg, crop_scale=(0.8, 1.0), blur_p=0.0, contrast=0.0, brightness=0.0, noise_p=0.0)
    return augment(gray8, contract, weak, rng)


def strong_view(gray8: np.ndarray, contract, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """The training augmentation at twice its photometric strength, always blurred or noised, and a square cut
    out (filled with the normalised mean, 0)."""
    strong = dataclasses.replace(cfg, contrast=min(0.9, 2 * cfg.contrast), brightness=2 * cfg.brightness,
                                 blur_p=0.5, noise_p=0.5)
    x = augment(gray8, contract, strong, rng)
    s = x.shape[-1]
    side = int(rng.integers(1, max(2, int(CUTOUT_MAX * s)) + 1))
    top, left = int(rng.integers(0, s - side + 1)), int(rng.integers(0, s - side + 1))
    x[..., top:top + side, left:left + side] = 0.0
    return x


class _WeakStrong(torch.utils.data.Dataset):
    """``n`` pool crops drawn for one epoch, each as (weak, strong); seeded by (seed, epoch, index)."""

    def __init__(self, pool: list[np.ndarray], cfg: TrainConfig, contract, epoch: int, n: int):
        self.pool, self.cfg, self.contract, self.epoch = pool, cfg, contract, epoch
        self.pick = np.random.default_rng([cfg.seed, epoch, 55]).integers(0, len(pool), n)

    def __len__(self) -> int:
        return len(self.pick)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.cfg.seed, self.epoch, i, 5])
        g = self.pool[self.pick[i]]
        return (torch.from_numpy(weak_view(g, self.contract, self.cfg, rng)),
                torch.from_numpy(strong_view(g, self.contract, self.cfg, rng)))


class Paired(NamedTuple):
    """One step's labelled batch and its unlabeled views."""

    labelled: Any
    weak: torch.Tensor
    strong: torch.Tensor


class WithUnlabeled:
    """An epoch's labelled batches, each paired with a batch of unlabeled (weak, strong) views."""

    def __init__(self, labelled: torch.utils.data.DataLoader, pool: list[np.ndarray], cfg: TrainConfig, contract,
                 epoch: int):
        per_batch = max(1, round(cfg.semi_ratio * cfg.batch_size))
        self.labelled = labelled
        self.unlabeled = torch.utils.data.DataLoader(
            _WeakStrong(pool, cfg, contract, epoch, per_batch * len(labelled)), batch_size=per_batch,
            shuffle=False, num_workers=cfg.loader_workers, drop_last=False)

    def __len__(self) -> int:
        return len(self.labelled)

    def __iter__(self) -> Iterator[Paired]:
        return (Paired(b, weak, strong) for b, (weak, strong) in zip(self.labelled, self.unlabeled))


def fixmatch_loss(strong_logits: torch.Tensor, weak_logits: torch.Tensor,
                  threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the strong views against the confident weak views' labels, averaged over every unlabeled
    image (the unsure count as zero); returns (loss, mask of the images that taught)."""
    conf, pseudo = F.softmax(weak_logits.detach().float(), dim=1).max(1)
    mask = conf >= threshold
    per_image = F.cross_entropy(strong_logits, pseudo, reduction="none")
    return (per_image * mask).mean(), mask
