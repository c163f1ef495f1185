"""The panel's Review box on the real plugin, canvas and task manager: correct cells with a click, move the
threshold slider (the corrections stay), export the reviewed cells as training data."""
from __future__ import annotations

import os

from qgis.core import Qgis
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest

from planet_terrain_plugin.gui import run_panel
from planet_terrain_plugin.qgis_io import relabel, review
from test_gui_dock import apollo, choose, click, dock, no_model_setting, plugin, run_and_wait  # noqa: F401
from training import dataset


def test_correct_three_cells_in_the_panel_and_the_slider_keeps_them(dock, apollo, tmp_path):
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(dock)
    layer = dock.result_layer()
    box = dock.review_box
    assert not box.export_button.isEnabled() and box.counts_label.text() == "0 reviewed"
    ids = sorted(f.id() for f in layer.getFeatures())[:3]
    layer.selectByIds(ids)
    box.label_combo.setCurrentText("impact ejecta")
    click(box.correct_button)
    assert box.counts_label.text() == "3 reviewed: impact ejecta 3"
    assert dock.result_box.legend_counts() == relabel.label_counts(layer)  # the legend follows the review
    for value in (0, 1000, 600, 300):
        dock.run_box.threshold_slider.setValue(value)
        got = {f.id(): (f["label"], f["reviewed"]) for f in layer.getFeatures()}
        assert all(got[i] == ("impact ejecta", True) for i in ids)
    assert dock.result_box.legend_counts()["impact ejecta"] >= 3
    other = sorted(f.id() for f in layer.getFeatures())[3]
    layer.selectByIds([other])
    label = layer.getFeature(other)["label"]
    QTest.keyClick(box.accept_button, Qt.Key_Space)  # the key of a focused button, as a keyboard user presses it
    assert review.reviewed_counts(layer).get(label, 0) >= 1 and box.export_button.isEnabled()
    result = box.export_training_data(str(tmp_path / "harvest"))
    assert result is not None and result["IMAGES"] == 4
    records = dataset.read_records(tmp_path / "harvest", "v3")
    assert sum(r.label == 5 for r in records) == 3 + (label == "impact ejecta")
    assert all(os.path.isfile(r.path) for r in records)


def test_review_without_a_selection_says_what_to_do(dock, apollo, bar):
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(dock)
    dock.result_layer().removeSelection()
    assert dock.review_box.review(None) == 0
    assert any("select the cells to accept or correct" in m for m in bar.get_messages(Qgis.Warning))
