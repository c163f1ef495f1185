"""The panel's "Why this label" section on a real result: the shipped int8 model's 20 km grid over the Apollo 15
frame (as ``make demo`` runs it), a cell it labels crater, its probability bars, its occlusion heatmap as a raster
layer over the cell, and its nearest training examples from a gallery built from the shared data (issue 16 item 5).
"""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProject, QgsRasterLayer, QgsSingleBandPseudoColorRenderer

from conftest import wait_until
from export import gallery as builder
from paths import HIRISE_V3
from planet_terrain_plugin.core import explain
from planet_terrain_plugin.core.contract import read_contract
from planet_terrain_plugin.core.gallery import NO_GALLERY, gallery_path
from planet_terrain_plugin.core.models import variant_path
from planet_terrain_plugin.gui import run_panel
from planet_terrain_plugin.gui.messages import abstention_words
from planet_terrain_plugin.qgis_io import explain as qgis_explain
from planet_terrain_plugin.qgis_io.model_choice import install_model_setting
from planet_terrain_plugin.qgis_io.raster_read import raster_source
from test_gui_dock import apollo, choose, no_model_setting, plugin, run_and_wait  # noqa: F401
from test_gui_panel_fit import DOCK_WIDTH, app_font, clipped, show_at  # noqa: F401


@pytest.fixture(scope="module")
def gallery_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("why-gallery")
    fp16 = variant_path("fp16")
    builder.build(fp16, str(HIRISE_V3), gallery_path(folder, "planet_terrain_resnet50"))
    return folder


@pytest.fixture
def why_dock(plugin, no_model_setting, apollo):  # noqa: F811
    install_model_setting(str(variant_path("int8")))
    plugin.dock_action.trigger()
    dock = plugin.dock
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(dock, 300)
    return dock


def cell_labelled(layer, label: str):
    found = [f for f in layer.getFeatures() if f["label"] == label]
    assert found, f"the 20 km Apollo grid has no '{label}' cell"
    return found[0]


def select(dock, feature) -> None:
    layer = dock.result_layer()
    layer.selectByIds([feature.id()])
    wait_until(lambda: dock.why_box.feature is not None and dock.why_box.feature.id() == feature.id(), 5)


def test_bars_show_every_class_the_label_and_the_reason(why_dock):
    box, layer, contract = why_dock.why_box, why_dock.result_layer(), why_dock.model.contract
    assert box.isCollapsed()
    crater = cell_labelled(layer, "crater")
    select(why_dock, crater)
    assert [name for name, _ in box.bars.rows] == list(contract.class_names)
    assert [p for _, p in box.bars.rows] == pytest.approx([crater[c.field_name] for c in contract.classes])
    assert box.bars.label == "crater" and "crater, confidence" in box.summary.text()
    unknown = cell_labelled(layer, "unknown")
    select(why_dock, unknown)
    words = abstention_words(unknown["reason"], unknown["confidence"], why_dock.threshold())
    assert f"unknown, because {words}" in box.summary.text()
    layer.removeSelection()
    assert wait_until(lambda: box.feature is None, 5) and "Select a cell" in box.summary.text()


def test_the_heatmap_lies_on_the_cell_in_the_rasters_crs(why_dock, apollo):  # noqa: F811
    box, layer, model = why_dock.why_box, why_dock.result_layer(), why_dock.model
    crater = cell_labelled(layer, "crater")
    select(why_dock, crater)
    task = box.start_heatmap()
    assert task is not None and box.heatmap_button.text() == "Cancel heatmap"
    assert wait_until(lambda: box.task is None, 60), "the heatmap task did not finish"
    heat = box.heatmap_layer
    assert isinstance(heat, QgsRasterLayer) and heat.isValid() and QgsProject.instance().mapLayer(heat.id())
    assert heat.name() == f"why crater (cell {crater.id()})"
    assert heat.crs() == apollo.crs()
    cell = crater.geometry().boundingBox()
    got = heat.extent()
    for a, b in ((got.xMinimum(), cell.xMinimum()), (got.xMaximum(), cell.xMaximum()),
                 (got.yMinimum(), cell.yMinimum()), (got.yMaximum(), cell.yMaximum())):
        assert a == pytest.approx(b, abs=1e-9 * max(1.0, abs(b)))
    assert isinstance(heat.renderer(), QgsSingleBandPseudoColorRenderer)
    # the layer holds the core's occlusion map of the very input the classification read
    source = raster_source(apollo)
    expected = explain.occlusion_map(model, qgis_explain.cell_input(source, crater, model).tensor,
                                     model.contract.class_names.index("crater"), crater["body"])
    assert expected.base_probability == pytest.approx(crater["p_crater"], abs=1e-4)
    block = heat.dataProvider().block(1, heat.extent(), heat.width(), heat.height())
    values = np.array([[block.value(r, c) for c in range(heat.width())] for r in range(heat.height())])
    assert values.shape == expected.drop.shape == (24, 24)
    assert np.allclose(values, expected.drop, atol=1e-6)
    path = heat.source()
    assert path.startswith("/vsimem/")  # nothing written beside the user's files
    QgsProject.instance().removeMapLayer(heat.id())
    assert gdal.VSIStatL(path) is None  # freed with the layer


def test_cancelling_the_heatmap_stops_it_and_adds_nothing(why_dock, bar):
    box, layer = why_dock.why_box, why_dock.result_layer()
    select(why_dock, cell_labelled(layer, "crater"))
    before = set(QgsProject.instance().mapLayers())
    task = box.start_heatmap()
    assert wait_until(lambda: task.done_percent > 0, 30), "the heatmap task never started"
    box.heatmap_clicked()  # the button reads "Cancel heatmap" while it runs
    assert wait_until(lambda: box.task is None, 30)
    assert task.cancelled and task.occlusion is None and task.done_percent < 100
    assert set(QgsProject.instance().mapLayers()) == before
    assert box.heatmap_button.text() == "Heatmap"
    texts = [m for level in bar.messages.values() for m in level]
    assert any("cancelled; no heatmap was made" in t for t in texts), texts


def test_nearest_training_examples_and_the_citation(why_dock, gallery_dir, tmp_path):
    box, layer = why_dock.why_box, why_dock.result_layer()
    select(why_dock, cell_labelled(layer, "crater"))
    box.gallery_dir = tmp_path  # no gallery there
    box.setCollapsed(False)
    assert box.neighbours == [] and box.note.text() == NO_GALLERY
    box.gallery_dir = gallery_dir
    box.refresh()
    assert len(box.neighbours) == 5
    sims = [n.similarity for n in box.neighbours]
    assert sims == sorted(sims, reverse=True) and all(-1.0 <= s <= 1.0 for s in sims)
    assert box.examples.count() == 10  # a thumbnail and its words per example
    words = box.examples.itemAtPosition(0, 1).widget().text()
    first = box.neighbours[0]
    assert first.label in words and first.source in words.replace("\u200b", "") and f"{first.similarity:.2f}" in words
    assert "10.5281/zenodo.2538136" in box.note.text() and "CC BY 4.0" in box.note.text()


def test_the_open_section_fits_280_px(app_font, why_dock, gallery_dir, tmp_path):  # noqa: F811
    box = why_dock.why_box
    box.gallery_dir = gallery_dir
    select(why_dock, cell_labelled(why_dock.result_layer(), "crater"))
    box.setCollapsed(False)
    scroll = show_at(why_dock, DOCK_WIDTH)
    assert clipped(scroll) == [], "\n".join(clipped(scroll))
    scroll.ensureWidgetVisible(box)
    why_dock.grab().save(str(tmp_path / f"why-{app_font}.png"))
    print(f"\nsaved {tmp_path / f'why-{app_font}.png'}")


def test_a_cell_of_another_model_or_without_its_raster_is_not_run(why_dock, apollo, tiny_model, bar):  # noqa: F811
    box, layer = why_dock.why_box, why_dock.result_layer()
    select(why_dock, cell_labelled(layer, "crater"))
    assert box.heatmap_button.isEnabled()
    install_model_setting(str(tiny_model))
    why_dock.refresh_model()
    assert not box.heatmap_button.isEnabled()
    shipped = read_contract(str(variant_path("int8")))
    assert f"classified by {shipped.model_name} {shipped.model_version}" in box.explain_problem()
    assert box.start_heatmap() is None
    texts = [m for level in bar.messages.values() for m in level]
    assert any("choose that model in the Model box" in t for t in texts), texts
    install_model_setting(str(variant_path("int8")))
    why_dock.refresh_model()
    QgsProject.instance().removeMapLayer(apollo.id())
    box.refresh()
    assert "raster of this result is not in the project" in box.explain_problem()
    assert box.bars.rows  # the probabilities need no raster
