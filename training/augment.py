"""Online augmentation on the cached 8-bit images, ending in the plugin's own resize and normalisation.

Why these: a user's extent is not a centred landmark crop (random crop of scale and position, then the same
per-image stretch the plugin applies to whatever extent it gets); orbital images have no canonical "up"
(the 8 rotations/flips); illumination, sensor noise and focus vary (brightness/contrast, Gaussian noise, blur).
Geometry and stretch run through :mod:`planet_terrain_plugin.core.preprocess`, so interpolation is identical
to inference.
"""
from __future__ import annotations

import math

import numpy as np

from planet_terrain_plugin.core.contract import ModelContract
from planet_terrain_plugin.core.preprocess import normalise, resize, stretched_gray

from .config import TrainConfig


def random_crop_box(h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float],
                    rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) covering a random area share and aspect ratio (torchvision's recipe)."""
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    return 0, 0, h, w


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0..7) element of the dihedral group on the last two axes: 4 rotations, each optionally flipped."""
    x = np.rot90(x, k % 4, axes=(-2, -1))
    return np.flip(x, axis=-1) if k >= 4 else x


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D image with edge replication."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(np.asarray(x, dtype=np.float64), radius, mode="edge")
    rows = sum(w * pad[:, i:i + x.shape[1]] for i, w in enumerate(k))
    return sum(w * rows[i:i + x.shape[0], :] for i, w in enumerate(k))


def augment(gray8: np.ndarray, contract: ModelContract, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """A cached 8-bit image -> one random float32 (3, S, S) training input."""
    top, left, ch, cw = random_crop_box(*gray8.shape, cfg.crop_scale, cfg.crop_ratio, rng)
    crop, _ = stretched_gray(gray8[top:top + ch, left:left + cw], contract)  # the plugin stretches its extent
    x = resize(crop, contract.input_size) / 255.0
    if cfg.dihedral:
        x = dihedral(x, int(rng.integers(0, 8)))
    if cfg.blur_p and rng.random() < cfg.blur_p:
        x = gaussian_blur(x, rng.uniform(*cfg.blur_sigma))
    if cfg.contrast:
        c = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
        x = (x - x.mean()) * c + x.mean()
    if cfg.brightness:
        x = x + rng.uniform(-cfg.brightness, cfg.brightness) * 0.5
    if cfg.noise_p and rng.random() < cfg.noise_p:
        x = x + rng.normal(0.0, cfg.noise_std, x.shape)
    return normalise(np.clip(x, 0.0, 1.0), contract)
