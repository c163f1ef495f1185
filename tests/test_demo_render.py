"""``make demo``'s picture: a classify_grid result rendered over its raster by QGIS, and the demo script itself.

Real raster, real tiny ONNX model, real GeoPackage from the real algorithm, real QGIS layout export; the PNG is
read back and checked for its size, for not being blank and for the palette colours of the classes it shows.
"""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
from qgis.PyQt.QtGui import QColor, QImage

from conftest import APOLLO, raster_path
from planet_terrain_plugin.core import models
from planet_terrain_plugin.qgis_io.export import load_export
from planet_terrain_plugin.qgis_io.style import PALETTE
from scripts import demo, render_map


def image_array(path) -> np.ndarray:
    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not a readable image"
    image = image.convertToFormat(QImage.Format_RGBA8888)
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes() if hasattr(image, "sizeInBytes") else image.byteCount())
    rows = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, :image.width() * 4].reshape(image.height(), image.width(), 4).copy()


def has_colour(pixels: np.ndarray, colour: str, tolerance: int = 12) -> int:
    """How many pixels are within ``tolerance`` (per channel) of ``colour``."""
    c = QColor(colour)
    want = np.array([c.red(), c.green(), c.blue()], np.int16)
    return int((np.abs(pixels[..., :3].astype(np.int16) - want).max(axis=-1) <= tolerance).sum())


@pytest.fixture
def grid_gpkg(terrain_processing, tiny_model, tmp_path):
    import processing

    path = tmp_path / "apollo_grid.gpkg"
    processing.run("planet_terrain:classify_grid", {"INPUT": str(raster_path(APOLLO)), "MODEL": str(tiny_model),
                                                    "CELL_SIZE": 20000, "CELL_UNIT": 0, "OUTPUT": str(path)})
    assert path.is_file()
    return path


def test_render_map_draws_raster_cells_and_legend(grid_gpkg, tiny_model, tmp_path):
    png = tmp_path / "map.png"
    out = render_map.render(raster_path(APOLLO), grid_gpkg, png, tiny_model, width=700, height=500)
    assert out == png and png.is_file() and png.stat().st_size > 10_000
    pixels = image_array(png)
    assert pixels.shape == (500, 700, 4)
    grey = pixels[..., :3].mean(axis=-1)
    assert grey.std() > 20, "the map is blank"
    labels = Counter(f["label"] for f in load_export(str(grid_gpkg)).getFeatures())
    assert labels and set(labels) <= {"crater", "impact ejecta", "unknown"}
    for label in labels:  # each class's outline colour (opaque) is drawn: in the cells and the legend swatch
        assert has_colour(pixels, PALETTE[label]) > 50, label
    for absent in ("dark dune", "spider"):  # Martian classes are neither in the cells nor in the legend
        assert has_colour(pixels, PALETTE[absent], 6) == 0, absent
    # the raster shows: grey terrain around the cells and its texture through their translucent fill
    neutral = (np.ptp(pixels[..., :3].astype(np.int16), axis=-1) < 6) & (grey > 30) & (grey < 225)
    assert neutral.sum() > 0.01 * grey.size
    colours = np.unique(pixels[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 1000


def test_renderer_lists_only_present_classes_with_counts(grid_gpkg, tiny_model):
    from planet_terrain_plugin.core.contract import read_contract

    layer = load_export(str(grid_gpkg))
    renderer, counts = render_map.class_renderer(layer, read_contract(str(tiny_model)))
    assert sum(counts.values()) == layer.featureCount()
    assert sorted(c.label() for c in renderer.categories()) == sorted(f"{k} ({v})" for k, v in counts.items())


@pytest.mark.slow
def test_demo_runs_headless_and_writes_extent_grid_and_map(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # demo.main extends it: restored after
    aux_before = {f for f in os.listdir(raster_path(APOLLO).parent) if f.endswith(".aux.xml")}  # shipped ones
    rc = demo.main(["--raster", str(raster_path(APOLLO)), "--out", str(tmp_path), "--model", str(tiny_model)])
    out = capsys.readouterr().out
    assert rc == 0, out
    stem = raster_path(APOLLO).stem
    extent, grid, png = (tmp_path / f"{stem}_terrain.gpkg", tmp_path / f"{stem}_grid.gpkg",
                         tmp_path / f"{stem}_grid.png")
    assert extent.is_file() and grid.is_file() and png.is_file()
    from qgis.core import QgsRasterLayer

    cells = load_export(str(grid))
    raster = QgsRasterLayer(str(raster_path(APOLLO)), "apollo")
    assert cells.crs() == raster.crs()  # the planetary CRS survived the GeoPackage
    assert cells.featureCount() > 50 and "20 km cells" in out and f"Wrote {png}" in out
    assert image_array(png).shape[:2] == (1000, 1400)
    assert {f for f in os.listdir(raster_path(APOLLO).parent) if f.endswith(".aux.xml")} == aux_before
    # and again into the same folder: the outputs are replaced, not refused
    before = png.stat().st_mtime_ns
    assert demo.main(["--raster", str(raster_path(APOLLO)), "--out", str(tmp_path), "--model", str(tiny_model),
                      "--no-map"]) == 0
    assert grid.is_file() and png.stat().st_mtime_ns == before


def test_demo_without_a_model_stops_with_the_message(tmp_path, capsys, monkeypatch):
    if models.installed_variants():
        pytest.skip("a default model is installed in the plugin")
    monkeypatch.delenv(models.ENV_MODEL, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    rc = demo.main(["--raster", str(raster_path(APOLLO)), "--out", str(tmp_path)])
    assert rc == 2
    assert "No default model is installed" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
