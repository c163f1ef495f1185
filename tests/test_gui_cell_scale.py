"""Scale as a first-class input in the panel (issue 16, item 3): the cell size is shown in metres on the ground
and at the model's scale, whatever unit it is given in, so the same click is not silently 24 m on a HiRISE
product and 16 km on Apollo."""
from __future__ import annotations

import re

import pytest
from qgis.core import QgsProject

from paths import RASTERS
from test_gui_dock import apollo, dock, no_model_setting, plugin  # noqa: F401

HIRISE = RASTERS / "hidtmgen__ortho__PSP_002118_1510_25cm_o_forPDS_cropped.cub"


def metres(text: str) -> list[float]:
    """The ground sizes a hint names: '4.9 km' -> 4900, '8 m' -> 8."""
    out = []
    for value, unit in re.findall(r"([\d.,]+) (km|m)\b", text):
        out.append(float(value.replace(",", "")) * (1000 if unit == "km" else 1))
    return out


def test_the_default_cell_is_shown_in_metres_and_at_the_models_scale(dock, apollo):
    box = dock.run_box
    box.layer_combo.setLayer(apollo)
    hint = box.cell_hint.text()
    # Apollo: ~171 m/px, the tiny model's 32 px input: ~5.5 km cells, read at the raster's own pixel size, far
    # coarser than the model's 0.25-6 m/px
    cell_m, per_pixel = metres(hint)[:2]
    assert cell_m == pytest.approx(32 * per_pixel, rel=0.02)
    assert 150 < per_pixel < 180 and "coarser" in hint, hint
    assert box.cell_hint.isVisibleTo(dock)


def test_a_fine_raster_is_read_at_the_models_scale_and_metres_follow_the_unit(dock, raster_layer):
    box = dock.run_box
    layer = raster_layer(HIRISE)
    QgsProject.instance().addMapLayer(layer)
    try:
        box.layer_combo.setLayer(layer)
        cell_m, per_pixel = metres(box.cell_hint.text())[:2]
        assert per_pixel == pytest.approx(0.25, rel=0.02) and cell_m == pytest.approx(8, rel=0.02)
        assert "coarser" not in box.cell_hint.text() and "finer" not in box.cell_hint.text()
        box.cell_unit_combo.setCurrentText("metres")
        box.cell_size_spin.setValue(100)
        cell_m, per_pixel = metres(box.cell_hint.text())[:2]
        assert cell_m == 100 and per_pixel == pytest.approx(100 / 32, rel=0.01)
        box.cell_size_spin.setValue(1000)  # 31 m per model pixel: 5x coarser than the model's 6 m/px
        assert "coarser" in box.cell_hint.text()
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_the_legend_names_the_threshold_the_result_was_classified_at(dock, apollo):
    """A run at 0.99 whose slider never emitted (set programmatically, or a model's own threshold) must not be
    summed up as 'at threshold 0.300' (the model's)."""
    from test_gui_dock import choose, run_and_wait
    from planet_terrain_plugin.gui import run_panel
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    dock.run_box.set_threshold(0.99)
    assert run_and_wait(dock)
    assert "at threshold 0.990" in dock.result_box.total_label.text(), dock.result_box.total_label.text()
