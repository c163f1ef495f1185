"""Issue 15's hostile input to the image command line (``python -m planet_terrain_plugin.core classify``).

Every test runs the real command in a subprocess, as users and ``make score`` do, on files written here into
``tmp_path`` (huge images of one colour are tiny on disk), real HiRISE crops from the shared data and real ONNX
models: the shipped one and tiny ones from ``model_factory``. What must hold: one bad file gives one JSON error
line and the batch goes on; memory stays bounded however large the image claims to be; every line is strict
JSON; palettes and transparency mean what they mean in a TIFF.
"""
from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from osgeo import gdal
from PIL import Image

from model_factory import build_tiny_model, tiny_contract, write_valid_model
from paths import HIRISE_V3, REPO
from planet_terrain_plugin.core import models
from planet_terrain_plugin.core.calibrate import INVALID_OUTPUT_NOTE
from planet_terrain_plugin.core.limits import MIN_EXTENT_PIXELS

#: A dark dune crop (HiRISE map-proj-v3 label 2) the shipped model names "dark dune" with confidence ~1; one
#: without a black border, which the GDAL reader (TIFF) takes for a nodata collar and Pillow (PNG) does not.
DUNE = HIRISE_V3 / "map-proj-v3" / "ESP_018720_2655_RED-0023.jpg"
#: Runs a command and reports its peak resident memory (kB) as the last line of stderr: the wrapper's only
#: child is the command, so RUSAGE_CHILDREN is that command's own peak, not any other test's.
MEASURE = ("import resource, subprocess, sys\n"
           "rc = subprocess.call(sys.argv[1:])\n"
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
           "sys.exit(rc)\n")


class Run:
    """One run of the command line: exit status, the JSON records, stderr and peak memory."""

    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.returncode = proc.returncode
        *err, peak = proc.stderr.rstrip("\n").split("\n")
        self.stderr = "\n".join(err)
        self.peak_mb = int(peak) / 1024
        self.records = [json.loads(line, parse_constant=_not_json) for line in proc.stdout.splitlines()]


def _not_json(token: str):
    raise ValueError(f"{token} is not JSON")


#: The command line in a Python where GDAL's bindings cannot be imported (Pillow only).
WITHOUT_GDAL = ("import runpy, sys; sys.modules['osgeo'] = None; "
                "runpy.run_module('planet_terrain_plugin.core', run_name='__main__', alter_sys=True)")


def classify(*args: str | Path, model: Path, timeout: int = 180, gdal_present: bool = True) -> Run:
    entry = ["-m", "planet_terrain_plugin.core"] if gdal_present else ["-c", WITHOUT_GDAL]
    cmd = [sys.executable, *entry, "classify", *map(str, args), "--model", str(model)]
    proc = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, check=False)
    return Run(proc)


@pytest.fixture(scope="module")
def shipped_model() -> Path:
    found = models.installed_variants()
    if not found:
        pytest.skip("no shipped model in planet_terrain_plugin/models (a clone without the model file)")
    return next(iter(found.values()))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_valid_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def dune() -> np.ndarray:
    if not DUNE.is_file():
        pytest.fail(f"shared HiRISE crop {DUNE} is missing")
    return np.asarray(Image.open(DUNE).convert("L"))


def write_flat_png(path: Path, width: int, height: int, channels: int = 1, value: int = 100) -> Path:
    """An 8-bit PNG of one colour, streamed row by row: tiny on disk, never whole in this process's memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    packer = zlib.compressobj(9)
    row = b"\x00" + bytes([value]) * (width * channels)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def write_vrt(path: Path, width: int, height: int, source: Path, source_size: int) -> Path:
    """A VRT of ``width`` x ``height`` pixels whose one source (``source``, of ``source_size``² px) fills a corner."""
    path.write_text(f"""<VRTDataset rasterXSize="{width}" rasterYSize="{height}">
  <VRTRasterBand dataType="Float32" band="1">
    <SimpleSource>
      <SourceFilename relativeToVRT="0">{source}</SourceFilename>
      <SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="{source_size}" ySize="{source_size}"/>
      <DstRect xOff="0" yOff="0" xSize="{source_size}" ySize="{source_size}"/>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>
""")
    return path


def assert_same_decision(a: dict, b: dict, tolerance: float = 0.02) -> None:
    assert "error" not in a and "error" not in b, (a, b)
    assert a["label"] == b["label"], (a, b)
    assert max(abs(a["probs"][k] - b["probs"][k]) for k in a["probs"]) < tolerance, (a["probs"], b["probs"])


# -- item 4: one bad file, one error line; bounded memory ---------------------------------------------------------
def test_a_vrt_with_a_missing_source_is_one_error_line_and_the_batch_goes_on(tiny, tmp_path):
    Image.fromarray(dune()).save(tmp_path / "img1.png")
    Image.fromarray(dune()[::-1]).save(tmp_path / "img2.png")
    bad = write_vrt(tmp_path / "bad.vrt", 64, 64, tmp_path / "gone.tif", 64)
    run = classify(tmp_path / "img1.png", bad, tmp_path / "img2.png", model=tiny)
    assert [r["image"] for r in run.records] == [str(tmp_path / n) for n in ("img1.png", "bad.vrt", "img2.png")]
    first, broken, last = run.records
    assert "label" in first and "label" in last and "error" not in last
    assert set(broken) == {"image", "error"}
    assert "gone.tif" in broken["error"] and "check that the files it refers to exist" in broken["error"]
    assert run.returncode == 1  # non-zero at the end: something was not classified


@pytest.mark.parametrize("kind", ["12000² RGB PNG", "13500² PNG (over Pillow's bomb limit)", "400000² VRT"])
def test_huge_images_are_read_reduced_in_bounded_memory(tiny, tmp_path, kind):
    if kind.startswith("12000"):
        path = write_flat_png(tmp_path / "big.png", 12000, 12000, channels=3)
    elif kind.startswith("13500"):
        path = write_flat_png(tmp_path / "bomb.png", 13500, 13500)
    else:
        Image.fromarray(dune()).save(tmp_path / "corner.tif")
        path = write_vrt(tmp_path / "huge.vrt", 400000, 400000, tmp_path / "corner.tif", dune().shape[0])
    run = classify(path, model=tiny)
    (record,) = run.records
    assert record["image"] == str(path)
    assert "label" in record or "only 0% of the pixels are valid" in record["error"], record
    assert run.peak_mb < 600, f"{kind}: peak memory {run.peak_mb:.0f} MB"


@pytest.mark.parametrize("kind", ["12000² grey PNG", "13500² PNG (over Pillow's bomb limit)", "6000² JPEG"])
def test_without_gdal_pillow_reads_large_images_reduced_or_says_what_to_do(tiny, tmp_path, kind):
    if kind.startswith("12000"):
        path = write_flat_png(tmp_path / "big.png", 12000, 12000)
    elif kind.startswith("13500"):
        path = write_flat_png(tmp_path / "bomb.png", 13500, 13500)
    else:
        path = tmp_path / "big.jpg"
        Image.fromarray(np.add.outer(np.arange(6000) // 24, np.arange(6000) // 48).astype(np.uint8)).save(path)
    run = classify(path, model=tiny, gdal_present=False)
    (record,) = run.records
    if kind.startswith("13500"):
        assert record["error"].startswith(f"'{path}' has more pixels than Pillow will decode")
        assert record["error"].endswith("install GDAL's Python bindings, which read it reduced, or reduce the "
                                        "image first")
    else:
        assert "label" in record, record
    assert run.peak_mb < 600, f"{kind}: peak memory {run.peak_mb:.0f} MB"


# -- item 9: --body, tiny images ----------------------------------------------------------------------------------
def test_body_is_case_insensitive(tiny, tmp_path):
    Image.fromarray(dune()).save(tmp_path / "d.png")
    lower, upper = (classify(tmp_path / "d.png", "--body", b, model=tiny).records[0] for b in ("moon", "Moon"))
    assert lower["body_renormalised"] and lower == upper
    assert lower["probs"]["dark dune"] == 0.0  # dunes cannot form on the Moon


@pytest.mark.parametrize("body, bodies", [("Mercury", ("Mars", "Moon", "Vesta")), ("Earth", ("Mars", "Moon", "Vesta")),
                                          ("vesta", ("Mars",))])
def test_a_body_the_model_does_not_serve_is_refused(tmp_path, body, bodies):
    model = write_valid_model(tmp_path / "m.onnx", bodies=bodies)
    Image.fromarray(dune()).save(tmp_path / "d.png")
    run = classify(tmp_path / "d.png", "--body", body, model=model)
    assert run.returncode == 2 and run.records == []
    assert f"'{body}'" in run.stderr and f"serves {', '.join(bodies)}" in run.stderr, run.stderr


@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "nan"])
def test_a_threshold_outside_0_to_1_is_refused_before_any_image(tiny, tmp_path, threshold):
    Image.fromarray(dune()).save(tmp_path / "d.png")
    run = classify(tmp_path / "d.png", tmp_path / "missing.png", "--threshold", threshold, model=tiny)
    assert run.returncode == 2 and run.records == []
    assert f"--threshold {threshold}: give a number between 0 and 1" in run.stderr, run.stderr


def test_a_missing_file_is_its_own_line(tiny, tmp_path):
    Image.fromarray(dune()).save(tmp_path / "d.png")
    missing, found = classify(tmp_path / "missing.png", tmp_path / "d.png", model=tiny).records
    assert missing == {"image": str(tmp_path / "missing.png"),
                       "error": f"image '{tmp_path / 'missing.png'}' does not exist; check the path"}
    assert "label" in found


@pytest.mark.parametrize("side", [1, 2, 4, MIN_EXTENT_PIXELS - 1])
def test_images_below_the_minimum_size_are_refused(tiny, tmp_path, side):
    noise = np.random.default_rng(side).integers(0, 256, (side, side + 5), np.uint8)
    Image.fromarray(noise).save(tmp_path / "small.png")
    Image.fromarray(dune()[:MIN_EXTENT_PIXELS, :MIN_EXTENT_PIXELS]).save(tmp_path / "enough.png")
    small, enough = classify(tmp_path / "small.png", tmp_path / "enough.png", model=tiny).records
    assert set(small) == {"image", "error"}
    assert small["error"] == (f"the image is {side + 5} x {side} pixels; at least {MIN_EXTENT_PIXELS} x "
                              f"{MIN_EXTENT_PIXELS} are needed to show terrain (a smaller one would reach the model as "
                              "an upsampled blur). Use a larger image, or a larger crop of it.")
    assert "label" in enough


# -- item 10: palettes ---------------------------------------------------------------------------------------------
def shuffled_palette(gray: np.ndarray, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(indices, RGB palette (256, 3)) showing exactly ``gray``, with indices that are not grey values."""
    perm = np.random.default_rng(seed).permutation(256)
    palette = np.zeros((256, 3), np.uint8)
    palette[perm] = np.arange(256, dtype=np.uint8)[:, None]
    return perm[gray].astype(np.uint8), palette


def write_paletted_tif(path: Path, indices: np.ndarray, palette: np.ndarray, geotransform=None,
                       wkt: str | None = None, nodata: int | None = None) -> Path:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), indices.shape[1], indices.shape[0], 1, gdal.GDT_Byte)
    if geotransform:
        ds.SetGeoTransform(geotransform)
        ds.SetProjection(wkt)
    table = gdal.ColorTable()
    for i, (r, g, b) in enumerate(palette.tolist()):
        table.SetColorEntry(i, (r, g, b, 255))
    band = ds.GetRasterBand(1)
    band.SetRasterColorTable(table)
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(indices)
    ds = None
    return path


def test_paletted_images_are_classified_on_their_colours(shipped_model, tmp_path):
    gray = dune()
    indices, palette = shuffled_palette(gray)
    Image.fromarray(gray).save(tmp_path / "plain.png")
    Image.fromarray(gray).save(tmp_path / "plain.tif")
    paletted = Image.fromarray(indices, "P")
    paletted.putpalette(palette.ravel().tolist())
    paletted.save(tmp_path / "paletted.png")
    paletted.save(tmp_path / "paletted.gif")
    write_paletted_tif(tmp_path / "paletted.tif", indices, palette)
    names = ["plain.png", "plain.tif", "paletted.png", "paletted.gif", "paletted.tif"]
    run = classify(*(tmp_path / n for n in names), model=shipped_model)
    plain = run.records[0]
    assert plain["label"] == "dark dune" and plain["confidence"] > 0.9, plain
    for name, record in zip(names[1:], run.records[1:]):
        assert_same_decision(plain, record), name


# -- item 17: transparency is nodata, as in a TIFF ----------------------------------------------------------------
def transparent_dune(transparent_share: float) -> tuple[np.ndarray, np.ndarray]:
    gray = dune()
    alpha = np.full(gray.shape, 255, np.uint8)
    alpha[:, : round(gray.shape[1] * transparent_share)] = 0
    return gray, alpha


def write_transparent_versions(folder: Path, gray: np.ndarray, alpha: np.ndarray) -> list[Path]:
    """The same picture with the same transparency: RGBA TIFF (GDAL alpha band), RGBA, LA and paletted+tRNS PNG."""
    rgb = np.stack([gray, gray, gray])
    tif = folder / "rgba.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(tif), gray.shape[1], gray.shape[0], 4, gdal.GDT_Byte,
                                              ["PHOTOMETRIC=RGB", "ALPHA=YES"])
    for i, arr in enumerate([*rgb, alpha], start=1):
        ds.GetRasterBand(i).WriteArray(arr)
    ds = None
    Image.fromarray(np.dstack([*rgb, alpha]), "RGBA").save(folder / "rgba.png")
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(folder / "la.png")
    indices, palette = shuffled_palette(gray)
    clear = int(np.setdiff1d(np.arange(256), indices[alpha > 0])[0])  # an index no opaque pixel uses
    indices = np.where(alpha == 0, clear, indices).astype(np.uint8)
    paletted = Image.fromarray(indices, "P")
    paletted.putpalette(palette.ravel().tolist())
    paletted.save(folder / "trns.png", transparency=clear)
    return [tif, folder / "rgba.png", folder / "la.png", folder / "trns.png"]


def test_png_transparency_is_nodata_like_tiff(shipped_model, tmp_path):
    mostly_clear = tmp_path / "clear"
    mostly_clear.mkdir()
    runs = classify(*write_transparent_versions(mostly_clear, *transparent_dune(0.7)), model=shipped_model)
    errors = {r["error"] for r in runs.records}
    assert len(runs.records) == 4 and len(errors) == 1, runs.records
    assert errors.pop().startswith("only 30% of the pixels are valid data")
    partly = tmp_path / "partly"
    partly.mkdir()
    tif, *pngs = classify(*write_transparent_versions(partly, *transparent_dune(0.2)), model=shipped_model).records
    for png in pngs:
        assert_same_decision(tif, png)


# -- item 8 (CLI half): strict JSON ----------------------------------------------------------------------------------
def test_a_model_answering_nan_still_gives_strict_json(tmp_path):
    model = build_tiny_model()
    for init in model.graph.initializer:
        if init.name == "B":
            init.CopyFrom(numpy_helper.from_array(np.full(7, np.nan, np.float32), "B"))
    for key, value in tiny_contract().to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(tmp_path / "nan.onnx"))
    Image.fromarray(dune()).save(tmp_path / "d.png")
    run = classify(tmp_path / "d.png", model=tmp_path / "nan.onnx")  # parse_constant refuses NaN / Infinity
    (record,) = run.records
    assert record["abstained"] is True and record["label"] == "unknown" and record["reason"] == "invalid_output"
    assert record["error"] == INVALID_OUTPUT_NOTE
    assert all(p is None or math.isfinite(p) for p in [record["confidence"], *record["probs"].values()]), record
    assert run.returncode == 1
