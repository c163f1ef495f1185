"""The out-of-distribution probe set: inputs the model must not label, each with the reason it should give.

Built on the fly (nothing committed): synthetic images (uniform, noise, gradients, stripes, colour "photos" of
shapes) and probes built from the shared rasters: the Dawn Vesta elevation model (DTM), the LOLA shaded-relief
map, the WAC/GLD100 global map (a shape model: heights, see ``core.raster_kind``), the DTM as a paletted
colour-shaded product, and the Dawn VIR camera image (a real image at 163 m/px, 14x coarser than the model's
range). A probe built from a raster keeps the file it came from (``source``), so it goes through the plugin's
raster-kind check (``core.raster_kind``) before the model, as a user's file does; probes derived from the DTM
(colour-shaded, slope, hillshade) are written as the files a user would have (``workdir``).

Each probe carries the reason a correct plugin gives (``expected``): synthetic images are
``out_of_distribution``, elevation / slope / shaded-relief / colour-shaded products ``not_an_image``, the
off-scale camera image ``out_of_scale``. :func:`probe_reason` runs one probe through the plugin's own path.
``held_out`` marks the probes added after the checks were tuned (pink noise, salt and pepper, a JPEG-blocky
image, gdaldem-style slope, hillshade and colour-relief files): reported apart, never tuned on.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from planet_terrain_plugin.core import raster_kind
from planet_terrain_plugin.core.calibrate import Reason, at_scale
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.pipeline import classify_blocks
from planet_terrain_plugin.core.result_schema import gsd_factor

DTM = "demprep__vest64_dtm_specialpixels_downsampled.cub"
#: The shared rasters the probes are cut from: file name -> (family, body, expected reason).
RASTER_PROBES = {
    DTM: ("Vesta DTM (elevation, not an image)", "Vesta", Reason.NOT_AN_IMAGE),
    "Lunar_LRO_LOLA_Shade_MAP2_90.0N20.0_LAMB.tif": ("LOLA shaded relief (3.9 km/px)", "Moon", Reason.NOT_AN_IMAGE),
    "lrowacphomap__WAC_GLD100_V1.0_GLOBAL_with_LOLA_30M_POLE.16bit.reduced.cub":
        ("WAC/GLD100 global map (a shape model, 12.8 km/px)", "Moon", Reason.NOT_AN_IMAGE),
    "isis2pds__dawnEqui1.cub": ("Dawn VIR camera image (163 m/px, off scale)", "Vesta", Reason.OUT_OF_SCALE),
}
SIZE = 128  # side of the synthetic images
OOD = Reason.OUT_OF_DISTRIBUTION


@dataclass(frozen=True)
class Probe:
    name: str
    family: str
    block: np.ndarray  # (H, W) or (bands, H, W)
    mask: np.ndarray | None  # True = nodata
    body: str | None = None  # the body the plugin would pass (None: a plain image, every class allowed)
    expected: Reason = OOD  # the reason a correct plugin gives
    source: str | None = None  # the file the probe was read from (its raster kind is checked first)
    gsd_m: float | None = None  # ground pixel size of the pixels the model sees (None: a plain picture)
    held_out: bool = False  # added after the checks were tuned: reported apart


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


def held_out_synthetic_probes(seed: int = 1) -> Iterator[Probe]:
    """Synthetic probes added after the checks were tuned: pink (1/f) noise, salt and pepper, JPEG-like blocks."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(SIZE), np.fft.fftfreq(SIZE), indexing="ij")
    for i in range(3):
        white = rng.normal(size=(SIZE, SIZE)) + 1j * rng.normal(size=(SIZE, SIZE))
        spectrum = white / np.maximum(np.hypot(fx, fy), 1 / SIZE)
        pink = np.real(np.fft.ifft2(spectrum))
        yield Probe(f"pink noise {i}", "held out: pink (1/f) noise", _to_uint8(pink), None, held_out=True)
    for i, share in enumerate((0.05, 0.2, 0.5)):
        img = np.full((SIZE, SIZE), 128, np.uint8)
        hit = rng.random((SIZE, SIZE)) < share
        img[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)
        yield Probe(f"salt and pepper {share:.0%}", "held out: salt and pepper", img, None, held_out=True)
    for i in range(3):
        blocks = rng.integers(0, 256, (SIZE // 8, SIZE // 8)).astype(np.uint8)
        yield Probe(f"JPEG-blocky {i}", "held out: JPEG-like 8x8 blocks", np.kron(blocks, np.ones((8, 8), np.uint8)),
                    None, held_out=True)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(values, (1, 99))
    return (255 * np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1)).astype(np.uint8)


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


#: A hypsometric colour ramp (blue lowlands to white peaks), as colour-shaded elevation products use.
HYPSOMETRIC = np.array([[0, 0, 130], [0, 160, 255], [0, 200, 60], [240, 230, 0], [200, 60, 0], [255, 255, 255]], float)


def colour_ramp(t: np.ndarray) -> np.ndarray:
    """(..., 3) colours of :data:`HYPSOMETRIC` for values ``t`` in 0..1."""
    idx = np.minimum((t * (len(HYPSOMETRIC) - 1)).astype(int), len(HYPSOMETRIC) - 2)
    frac = (t * (len(HYPSOMETRIC) - 1) - idx)[..., None]
    return HYPSOMETRIC[idx] * (1 - frac) + HYPSOMETRIC[idx + 1] * frac


def _unit(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``values`` stretched to 0..1 between their 1st and 99th percentiles (valid pixels)."""
    v = values.astype(np.float64)
    valid = ~mask if mask is not None else np.ones(v.shape, bool)
    lo, hi = np.percentile(v[valid], (1, 99)) if valid.any() else (0.0, 1.0)
    return np.clip((v - lo) / max(hi - lo, 1e-9), 0, 1)


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


def _pixel_size_m(path: Path) -> float:
    from osgeo import gdal

    return abs(gdal.Open(str(path)).GetGeoTransform()[1])


def raster_probes(rasters: Path, workdir: Path) -> Iterator[Probe]:
    """Probes from the shared rasters, each keeping its file; the DTM also as a paletted colour-shaded product."""
    for name, (family, body, expected) in RASTER_PROBES.items():
        path = rasters / name
        block, mask = read_image(str(path))
        gsd = _pixel_size_m(path) if expected is Reason.OUT_OF_SCALE else None
        for where, b, m in _windows(block, mask):
            yield Probe(f"{name} {where}", family, b, m, body, expected, str(path), gsd)
        if name == DTM:
            paletted = write_paletted(workdir / "vesta_dtm_colour_shaded.tif", path, block, mask)
            rgb, rgb_mask = read_image(str(paletted))
            for where, b, m in _windows(rgb, rgb_mask):
                yield Probe(f"{name} colour-shaded {where}", "colour-shaded DTM (paletted product)", b, m, body,
                            Reason.NOT_AN_IMAGE, str(paletted))


def held_out_raster_probes(rasters: Path, workdir: Path) -> Iterator[Probe]:
    """Products a user makes from the DTM with gdaldem (slope, hillshade, colour relief), as gdaldem writes them:
    no unit or description, the kind in the file name only."""
    path = rasters / DTM
    block, mask = read_image(str(path))
    heights = np.where(mask, np.nan, block.astype(np.float64))
    gy, gx = np.gradient(heights, _pixel_size_m(path))
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    shade = np.nan_to_num(np.clip(255 * (np.cos(np.radians(45)) + np.sin(np.radians(45)) * (gx - gy) / np.sqrt(2))
                                  / np.sqrt(1 + gx ** 2 + gy ** 2), 1, 255), nan=0)
    colour = colour_ramp(_unit(block, mask)).transpose(2, 0, 1)
    products = (("vesta_slope", slope.astype(np.float32), "slope map (gdaldem slope)"),
                ("vesta_hillshade", shade.astype(np.uint8), "hillshade (gdaldem hillshade)"),
                ("vesta_color_relief", colour.astype(np.uint8), "colour relief (gdaldem color-relief)"))
    for stem, values, what in products:
        written = write_like(workdir / f"{stem}.tif", path, values, mask)
        b, m = read_image(str(written))
        for where, wb, wm in _windows(b, m):
            yield Probe(f"{stem}.tif {where}", f"held out: {what}", wb, wm, "Vesta", Reason.NOT_AN_IMAGE,
                        str(written), held_out=True)


def write_like(out: Path, like: Path, values: np.ndarray, mask: np.ndarray | None) -> Path:
    """``values`` ((H, W) or (bands, H, W)) as a GeoTIFF with ``like``'s georeferencing; nodata where ``mask``
    (an alpha band for colour, where 0 is a colour)."""
    from osgeo import gdal, gdal_array

    src = gdal.Open(str(like))
    bands = values if values.ndim == 3 else values[None]
    colour = len(bands) == 3
    kind = gdal_array.NumericTypeCodeToGDALTypeCode(bands.dtype)
    ds = gdal.GetDriverByName("GTiff").Create(str(out), bands.shape[2], bands.shape[1], len(bands) + colour, kind,
                                              ["PHOTOMETRIC=RGB", "ALPHA=YES"] if colour else [])
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    nodata = 0 if bands.dtype == np.uint8 else -9999
    for i, band in enumerate(bands, start=1):
        data = band if colour or mask is None else np.where(mask, nodata, np.nan_to_num(band, nan=nodata))
        ds.GetRasterBand(i).WriteArray(data.astype(bands.dtype))
        if not colour:
            ds.GetRasterBand(i).SetNoDataValue(nodata)
    if colour:
        ds.GetRasterBand(4).WriteArray(np.where(mask, 0, 255).astype(np.uint8) if mask is not None
                                       else np.full(bands.shape[1:], 255, np.uint8))
    ds = None
    return out


def write_paletted(out: Path, like: Path, values: np.ndarray, mask: np.ndarray | None) -> Path:
    """The elevation ``values`` as a paletted GeoTIFF: 255 hypsometric colours, index 0 = nodata."""
    from osgeo import gdal

    indices = (1 + np.round(254 * _unit(values, mask))).astype(np.uint8)
    if mask is not None:
        indices[mask] = 0
    path = write_like(out, like, indices, None)
    ds = gdal.Open(str(path), gdal.GA_Update)
    table = gdal.ColorTable()
    table.SetColorEntry(0, (0, 0, 0, 0))
    for i, (r, g, b) in enumerate(colour_ramp(np.linspace(0, 1, 255)).astype(int).tolist(), start=1):
        table.SetColorEntry(i, (r, g, b, 255))
    band = ds.GetRasterBand(1)
    band.SetRasterColorTable(table)
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    band.SetNoDataValue(0)
    ds = None
    return path


def all_probes(rasters: Path, workdir: Path | None = None, held_out: bool = False) -> list[Probe]:
    """The probe set (``held_out``: with the held-out probes too); derived files go to ``workdir`` (a new
    temporary folder when None)."""
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="planet-terrain-probes-"))
    probes = list(synthetic_probes()) + list(raster_probes(rasters, work))
    if held_out:
        probes += list(held_out_synthetic_probes()) + list(held_out_raster_probes(rasters, work))
    return probes


def probe_reason(model, probe: Probe) -> Reason:
    """What the plugin answers for ``probe``: ``not_an_image`` when its file is refused, else the decision's
    reason (``Reason.NONE`` for a label), with the out-of-scale rule for georeferenced pixels."""
    if probe.source is not None and not raster_kind.judge_file(probe.source).is_image:
        return Reason.NOT_AN_IMAGE
    (result,) = classify_blocks(model, [probe.block], [probe.mask], body=probe.body)
    factor = gsd_factor(probe.gsd_m, model.contract.gsd_range_m) if probe.gsd_m else None
    return at_scale(result.decision, factor).reason
