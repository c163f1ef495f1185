"""The out-of-distribution probe set: inputs the model must abstain on, built on the fly (nothing committed).

Synthetic images (uniform, noise, gradients, stripes, a colour "photo" of shapes) and crops of the shared
rasters that are not HiRISE-like images: a Dawn Vesta elevation model (DTM), the LOLA shaded-relief map, the
global WAC mosaic at 12.8 km/px, and colour-shaded (paletted) renderings of the DTM. Each probe is a raw block
as a reader would hand it to :func:`planet_terrain_plugin.core.preprocess.preprocess` (bands first for colour),
with its nodata mask, a family name and the body the plugin would be told. Every probe should be abstained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from planet_terrain_plugin.core.images import read_image

#: The shared rasters the probes are cut from: file name -> (family, body the raster is of).
RASTER_PROBES = {
    "demprep__vest64_dtm_specialpixels_downsampled.cub": ("Vesta DTM (elevation, not an image)", "Vesta"),
    "Lunar_LRO_LOLA_Shade_MAP2_90.0N20.0_LAMB.tif": ("LOLA shaded relief (3.9 km/px)", "Moon"),
    "lrowacphomap__WAC_GLD100_V1.0_GLOBAL_with_LOLA_30M_POLE.16bit.reduced.cub": ("WAC global map (12.8 km/px)", "Moon"),
}
SIZE = 128  # side of the synthetic images


@dataclass(frozen=True)
class Probe:
    name: str
    family: str
    block: np.ndarray  # (H, W) or (bands, H, W)
    mask: np.ndarray | None  # True = nodata
    body: str | None = None  # the body the plugin would pass (None: a plain image, every class allowed)


def synthetic_probes(seed: int = 0) -> Iterator[Probe]:
    """Images no planetary camera takes: flat, noise, ramps, stripes, checkerboards, colour shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    for level in (0, 60, 128, 200, 255):
        yield Probe(f"uniform {level}", "uniform", np.full((SIZE, SIZE), level, np.uint8), None)
    for i in range(4):
        yield Probe(f"white noise {i}", "noise", rng.integers(0, 256, (SIZE, SIZE)).astype(np.uint8), None)
        yield Probe(f"gaussian noise {i}", "noise", np.clip(rng.normal(128, 40, (SIZE, SIZE)), 0, 255).astype(np.uint8), None)
    for name, ramp in (("horizontal", xx), ("vertical", yy), ("diagonal", (xx + yy) / 2),
                       ("radial", np.hypot(xx - 0.5, yy - 0.5)), ("sine", 0.5 + 0.5 * np.sin(12 * xx))):
        yield Probe(f"gradient {name}", "gradient", (255 * ramp).astype(np.uint8), None)
    for period in (4, 16):
        yield Probe(f"stripes {period} px", "pattern", (255 * ((np.arange(SIZE) // period) % 2))[None].repeat(SIZE, 0).astype(np.uint8), None)
        checker = ((np.arange(SIZE)[:, None] // period + np.arange(SIZE)[None] // period) % 2) * 255
        yield Probe(f"checkerboard {period} px", "pattern", checker.astype(np.uint8), None)
    for i in range(4):
        yield Probe(f"colour shapes photo {i}", "non-planetary photo-like", _shapes_photo(rng), None)


def _shapes_photo(rng: np.random.Generator) -> np.ndarray:
    """An RGB 'photo' of a sky gradient, a ground band and a few flat-coloured rectangles and discs."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = np.empty((3, SIZE, SIZE), np.float64)
    sky, ground = rng.uniform(120, 255, 3), rng.uniform(20, 140, 3)
    horizon = rng.integers(SIZE // 3, 2 * SIZE // 3)
    for c in range(3):
        img[c] = np.where(yy < horizon, sky[c] * (0.6 + 0.4 * yy / horizon), ground[c])
    for _ in range(6):
        colour = rng.uniform(0, 255, 3)
        cx, cy, r = rng.integers(10, SIZE - 10, 2).tolist() + [int(rng.integers(5, 25))]
        shape = np.hypot(xx - cx, yy - cy) < r if rng.random() < 0.5 else (abs(xx - cx) < r) & (abs(yy - cy) < r // 2)
        img[:, shape] = colour[:, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def colour_relief(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """An elevation grid rendered as a colour (hypsometric, paletted-like) RGB product."""
    v = values.astype(np.float64)
    valid = ~mask if mask is not None else np.ones(v.shape, bool)
    lo, hi = np.percentile(v[valid], (1, 99)) if valid.any() else (0.0, 1.0)
    t = np.clip((v - lo) / max(hi - lo, 1e-9), 0, 1)
    palette = np.array([[0, 0, 130], [0, 160, 255], [0, 200, 60], [240, 230, 0], [200, 60, 0], [255, 255, 255]], float)
    idx = np.minimum((t * (len(palette) - 1)).astype(int), len(palette) - 2)
    frac = (t * (len(palette) - 1) - idx)[..., None]
    rgb = palette[idx] * (1 - frac) + palette[idx + 1] * frac
    return rgb.transpose(2, 0, 1).astype(np.uint8)


def _windows(block: np.ndarray, mask: np.ndarray | None) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
    """The whole raster, then windows of half its short side (a handful per raster, whatever its size)."""
    h, w = block.shape[-2:]
    size = min(h, w) // 2
    if mask is None or mask.mean() <= 0.5:  # a mostly-nodata raster is refused before the model sees it
        yield "whole", block, mask
    for y in range(0, h - size + 1, size):
        for x in range(0, w - size + 1, size):
            m = None if mask is None else mask[y:y + size, x:x + size]
            if m is not None and m.mean() > 0.5:
                continue
            yield f"window {y},{x}", block[..., y:y + size, x:x + size], m


def raster_probes(rasters: Path) -> Iterator[Probe]:
    """Crops of the shared non-image and off-scale rasters, and the DTM rendered in colour."""
    for name, (family, body) in RASTER_PROBES.items():
        block, mask = read_image(str(rasters / name))
        for where, b, m in _windows(block, mask):
            yield Probe(f"{name} {where}", family, b, m, body)
        if "dtm" in name:
            rgb = colour_relief(block, mask)
            for where, b, m in _windows(rgb, mask):
                yield Probe(f"{name} colour-shaded {where}", "colour-shaded DTM (paletted product)", b, m, body)


def all_probes(rasters: Path) -> list[Probe]:
    return list(synthetic_probes()) + list(raster_probes(rasters))
