"""The Planet Terrain panel, driven through its widgets on the real canvas and QGIS's real task manager.

The plugin is loaded on pytest-qgis's interface, the panel opened with its toolbar action, and every step is a
widget action (combo selection, spin box, slider, button click, the real file dialogs filled in by a timer).
Grid runs go through ``planet_terrain:classify_grid`` in a ``QgsProcessingAlgRunnerTask``; waits are bounded
loops that process events, so a hang fails instead of blocking.
"""
from __future__ import annotations

import pytest
from qgis.core import Qgis, QgsApplication, QgsFeature, QgsGeometry, QgsProject, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtCore import QPoint, Qt, QTimer
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication, QDialogButtonBox, QFileDialog, QLineEdit

from conftest import APOLLO, wait_until
from planet_terrain_plugin import classFactory
from planet_terrain_plugin.core import grid as core_grid
from planet_terrain_plugin.gui import run_panel
from planet_terrain_plugin.qgis_io import export, relabel
from planet_terrain_plugin.qgis_io.model_choice import SETTING_MODEL, install_model_setting
from test_plugin_task import drag
from test_qgis_raster_read import pixel_rect

GRID = "planet_terrain:classify_grid"
MOON_RADIUS = 1737400.0  # the Apollo GeoTIFF's own sphere


@pytest.fixture
def no_model_setting():
    QgsSettings().remove(SETTING_MODEL)
    yield
    QgsSettings().remove(SETTING_MODEL)


@pytest.fixture
def apollo(qgis_iface, qgis_new_project, raster_layer):
    layer = raster_layer(APOLLO)
    QgsProject.instance().addMapLayer(layer)
    yield layer
    QgsProject.instance().removeAllMapLayers()


@pytest.fixture
def plugin(qgis_iface, qgis_parent, qgis_processing, monkeypatch):
    """The real plugin (its provider registers classify_grid), as in test_plugin_task."""
    monkeypatch.setattr(qgis_iface, "removePluginMenu", lambda menu, action: None, raising=False)
    qgis_parent.show()
    QgsApplication.processEvents()
    p = classFactory(qgis_iface)
    p.initGui()
    yield p
    if p.actions:
        p.unload()
    qgis_parent.hide()


@pytest.fixture
def dock(plugin, no_model_setting, tiny_model):
    """The panel opened from its toolbar action with the tiny model installed."""
    install_model_setting(str(tiny_model))
    plugin.dock_action.trigger()
    assert plugin.dock.isVisible()
    return plugin.dock


def click(button) -> None:
    assert button.isEnabled(), f"'{button.text()}' is disabled"
    QTest.mouseClick(button, Qt.LeftButton)


def choose(dock, raster, mode: str, size: float | None = None, unit: str = "metres") -> None:
    dock.run_box.layer_combo.setLayer(raster)
    dock.run_box.mode_combo.setCurrentIndex(dock.run_box.mode_combo.findData(mode))
    if size is not None:
        dock.run_box.cell_unit_combo.setCurrentText(unit)
        dock.run_box.cell_size_spin.setValue(size)


def run_and_wait(dock, timeout: float = 120) -> bool:
    finished = []
    dock.runFinished.connect(finished.append)
    try:
        click(dock.run_box.run_button)
        assert wait_until(lambda: bool(finished), timeout), "the grid run did not finish in time"
    finally:
        dock.runFinished.disconnect(finished.append)
    return finished[0]


def fresh_grid(raster, tiny_model, threshold: float | None = None, **params):
    """classify_grid run directly (not through the panel): the reference the panel must agree with."""
    import processing  # importable once the qgis_processing fixture has set Processing up

    params = dict(INPUT=raster, MODEL=str(tiny_model), OUTPUT="memory:", **params)
    if threshold is not None:
        params["THRESHOLD"] = threshold
    return processing.run(GRID, params)


def by_cell(layer) -> dict[tuple[int, int], tuple]:
    return {(f["row"], f["col"]): (f["label"], f["class_id"], bool(f["abstained"]), f["confidence"])
            for f in layer.getFeatures()}


def grid_layers():
    return [lyr for lyr in QgsProject.instance().mapLayers().values()
            if isinstance(lyr, QgsVectorLayer) and lyr.name().startswith("Terrain classes grid")]


def test_panel_shows_the_model_and_its_provider(dock, apollo):
    text = dock.model_box.label.text()
    assert "tiny-test-model" in text and "0.0.1-test" in text and "crater" in text and "spider" in text
    assert "Mars, Moon, Vesta" in text and "runs on CPU" in text
    assert "CPUExecutionProvider" in dock.model_box.label.toolTip()  # the details, out of the main text
    assert not dock.model_box.install_button.isVisibleTo(dock)
    assert dock.threshold() == pytest.approx(0.3)  # the model's threshold
    dock.run_box.layer_combo.setLayer(apollo)
    # the default cell size is classify_grid's: the model input size (32 px), the raster being coarser
    assert (dock.run_box.cell_size_spin.value(), dock.run_box.cell_unit_combo.currentText()) == (32, "pixels")


def test_grid_run_gives_the_cells_and_a_legend_that_sums_to_them(dock, apollo, bar, tiny_model):
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(dock) is True
    (layer,) = grid_layers()
    assert dock.result_layer() is layer and dock.run_box.progress.value() == 100
    ref = fresh_grid(str(apollo.source()), tiny_model, threshold=0.3, CELL_SIZE=20000, CELL_UNIT=0)
    # the grid the algorithm promises: 20 km cells on the Moon over the snapped layer extent
    size = core_grid.cell_size_from_metres(20000, True, MOON_RADIUS)
    ext = apollo.extent()
    expected_total = core_grid.Grid(core_grid.Extent(ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()),
                                    size, 0.0, edge="extend").count
    assert ref["CELLS_TOTAL"] == expected_total
    assert layer.featureCount() == ref["CELLS_CLASSIFIED"] > 0
    assert by_cell(layer) == by_cell(ref["OUTPUT"])
    counts = dock.result_box.legend_counts()
    assert sum(counts.values()) == layer.featureCount()
    assert counts == relabel.label_counts(layer)
    assert set(counts) <= {"crater", "impact ejecta", "unknown"}  # Moon: Martian classes renormalised away
    assert layer.renderer().type() == "categorizedSymbol"
    (success,) = bar.get_messages(Qgis.Success)
    assert f"{layer.featureCount()} cell(s) classified" in success


def test_threshold_slider_relabels_like_a_fresh_run(dock, apollo, tiny_model):
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(dock)
    layer = dock.result_layer()
    before = by_cell(layer)
    confidences = sorted(v[3] for v in before.values())
    t = round(confidences[len(confidences) // 2], 3)  # about half the cells fall below it
    dock.run_box.threshold_slider.setValue(int(round(t * run_panel.SLIDER_STEPS)))
    assert dock.threshold() == t and dock.run_box.threshold_label.text() == f"{t:.3f}"
    after = by_cell(layer)
    assert after != before and sum(1 for v in after.values() if v[0] == "unknown") > 0
    assert all(after[k][3] == before[k][3] for k in before)  # confidences untouched
    assert not layer.isEditable() and layer.featureCount() == len(before)
    counts = dock.result_box.legend_counts()
    assert counts == relabel.label_counts(layer) and sum(counts.values()) == layer.featureCount()
    assert counts.get("unknown", 0) == sum(1 for v in after.values() if v[0] == "unknown")
    ref = fresh_grid(str(apollo.source()), tiny_model, threshold=t, CELL_SIZE=20000, CELL_UNIT=0)
    assert after == by_cell(ref["OUTPUT"])
    # and back: the model's threshold gives the first labels again
    dock.run_box.threshold_slider.setValue(300)
    assert by_cell(layer) == before


def test_cancel_mid_run_leaves_a_valid_partial_layer_or_nothing(dock, apollo, bar):
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 8, "pixels")  # ~25,000 cells: minutes if not cancelled
    finished = []
    dock.runFinished.connect(finished.append)
    click(dock.run_box.run_button)
    assert not dock.run_box.run_button.isEnabled() and dock.run_box.cancel_button.isEnabled()
    assert wait_until(lambda: dock.run_box.progress.value() > 0 or bool(finished), 60), "no progress reached the bar"
    assert not finished, f"the run ended before it could be cancelled: {bar.messages}"
    click(dock.run_box.cancel_button)
    assert wait_until(lambda: bool(finished), 60), "cancel did not stop the run"
    dock.runFinished.disconnect(finished.append)
    layers = grid_layers()
    if finished[0]:
        (layer,) = layers
        assert layer.isValid() and 0 < layer.featureCount() < 20000
        assert "partial" in layer.name()
        assert sum(dock.result_box.legend_counts().values()) == layer.featureCount()
        assert any("cancelled" in m for m in bar.get_messages(Qgis.Info))
    else:
        assert layers == []
        assert any("cancelled" in m for m in bar.get_messages(Qgis.Info))
    assert dock.run_box.run_button.isEnabled() and not dock.run_box.cancel_button.isEnabled() and dock.grid_run is None


def test_gsd_warning_is_in_the_runs_one_message_and_under_the_legend(dock, apollo, bar):
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(dock)
    layer = dock.result_layer()
    gsd = next(layer.getFeatures())["gsd_m"]
    assert all(f["gsd_warn"] is True for f in layer.getFeatures())  # 177 m/px vs the model's 0.25-6 m
    factor = f"{gsd / 6.0:.0f}x coarser"
    (message,) = bar.get_messages(Qgis.Success)  # one message per run: the scale note rides on it
    assert f"{factor} than the model's" in message and bar.get_messages(Qgis.Warning) == []
    assert dock.result_box.warning_label.isVisibleTo(dock) and factor in dock.result_box.warning_label.text()
    # moving the threshold, or choosing the layer again, adds no message; the label follows the layer
    dock.run_box.threshold_slider.setValue(500)
    dock.result_box.result_combo.setLayer(None)
    assert not dock.result_box.warning_label.isVisibleTo(dock)
    dock.result_box.result_combo.setLayer(layer)
    assert dock.result_box.warning_label.isVisibleTo(dock)
    assert len(bar.get_messages(Qgis.Success)) == 1 and bar.get_messages(Qgis.Warning) == []
    # a new run: one more message
    assert run_and_wait(dock)
    assert len(grid_layers()) == 2 and len(bar.get_messages(Qgis.Success)) == 2


def test_polygon_mode_classifies_only_cells_under_the_selected_polygon(dock, apollo, tiny_model):
    polygons = QgsVectorLayer("Polygon", "areas", "memory")
    polygons.setCrs(apollo.crs())
    feats = []
    for rect in (pixel_rect(apollo, 500, 400, 200, 150), pixel_rect(apollo, 100, 900, 100, 100)):
        f = QgsFeature()
        f.setGeometry(QgsGeometry.fromRect(rect))
        feats.append(f)
    polygons.dataProvider().addFeatures(feats)
    QgsProject.instance().addMapLayer(polygons)
    first = next(polygons.getFeatures()).id()
    polygons.selectByIds([first])
    choose(dock, apollo, run_panel.MODE_POLYGONS, 64, "pixels")
    dock.run_box.polygon_combo.setLayer(polygons)
    dock.run_box.selected_only.setChecked(True)
    assert run_and_wait(dock)
    layer = dock.result_layer()
    only_first = QgsVectorLayer("Polygon", "first", "memory")
    only_first.setCrs(apollo.crs())
    only_first.dataProvider().addFeatures([next(polygons.getFeatures())])
    ref = fresh_grid(str(apollo.source()), tiny_model, threshold=0.3, CELL_SIZE=64, CELL_UNIT=1, POLYGONS=only_first)
    assert layer.featureCount() == ref["CELLS_CLASSIFIED"] > 0
    assert by_cell(layer) == by_cell(ref["OUTPUT"])
    assert sum(dock.result_box.legend_counts().values()) == layer.featureCount()


def test_canvas_extent_mode_classifies_what_the_canvas_shows(dock, apollo, qgis_iface, tiny_model):
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(apollo.crs())
    canvas.setExtent(pixel_rect(apollo, 400, 300, 400, 400))
    QgsApplication.processEvents()
    choose(dock, apollo, run_panel.MODE_GRID_CANVAS, 100, "pixels")
    assert run_and_wait(dock)
    layer = dock.result_layer()
    ref = fresh_grid(str(apollo.source()), tiny_model, threshold=0.3, CELL_SIZE=100, CELL_UNIT=1,
                     EXTENT=canvas.extent())
    assert by_cell(layer) == by_cell(ref["OUTPUT"]) and layer.featureCount() > 0
    assert layer.extent().width() <= canvas.extent().width() + 2 * 100 * apollo.rasterUnitsPerPixelX()


def test_rectangle_mode_uses_the_map_tool_and_the_result_gets_a_legend(plugin, dock, apollo, qgis_iface):
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(apollo.crs())
    canvas.setExtent(pixel_rect(apollo, 500, 400, 300, 300))
    QgsApplication.processEvents()
    choose(dock, apollo, run_panel.MODE_EXTENT)
    assert not dock.run_box.cell_size_spin.isEnabled()
    dock.run_box.threshold_slider.setValue(990)  # nearly everything abstains at 0.99
    click(dock.run_box.run_button)
    assert canvas.mapTool() is plugin.tool and qgis_iface.activeLayer() is apollo
    finished = []
    dock.runFinished.connect(finished.append)
    drag(canvas, QPoint(50, 60), QPoint(200, 220))
    assert wait_until(lambda: bool(finished), 30)
    dock.runFinished.disconnect(finished.append)
    layer = dock.result_layer()
    assert layer.name() == f"Terrain classes ({apollo.name()})" and layer.featureCount() == 1
    feature = next(layer.getFeatures())
    assert feature["abstained"] == (feature["confidence"] < 0.99)  # classified at the panel's threshold
    assert dock.result_box.legend_counts() == {feature["label"]: 1}
    assert dock.run_box.progress.value() == 100 and not dock.run_box.cancel_button.isEnabled()


def test_rectangle_mode_progress_and_cancel_follow_the_map_tools_task(plugin, dock, apollo):
    """The panel's progress bar and Cancel button also serve a rectangle dragged with the map tool."""
    choose(dock, apollo, run_panel.MODE_EXTENT)
    dock.run_box.progress.setValue(42)
    task = plugin.controller.classify_layer_extent(apollo, pixel_rect(apollo, 500, 400, 300, 300))
    assert task is not None and dock.run_box.progress.value() == 0 and dock.run_box.cancel_button.isEnabled()
    click(dock.run_box.cancel_button)
    assert wait_until(lambda: not plugin.controller.running(), 30)
    QgsApplication.processEvents()
    assert not dock.run_box.cancel_button.isEnabled()
    # Cancelled (almost always: the click comes before the task has loaded its model) or, if it was quicker, done.
    assert dock.run_box.progress.value() == (0 if task.was_canceled else 100)


def _fill_file_dialog(path: str, seen: list) -> None:
    """Once the (Qt, non-native) file dialog is up, type ``path`` into its name field and click Save/Open."""
    def fill():
        try:
            dialog = QApplication.activeModalWidget()
            if not isinstance(dialog, QFileDialog):
                QTimer.singleShot(50, fill)
                return
            seen.append(dialog.windowTitle())
            name = dialog.findChild(QLineEdit, "fileNameEdit")
            name.setText(path)
            buttons = dialog.findChild(QDialogButtonBox, "buttonBox")
            QTest.mouseClick(buttons.button(QDialogButtonBox.Save) or buttons.button(QDialogButtonBox.Open),
                             Qt.LeftButton)
        except BaseException as exc:  # an exception escaping a Qt slot aborts the interpreter
            seen.append(exc)
            dialog = QApplication.activeModalWidget()
            if dialog is not None:
                dialog.reject()

    QTimer.singleShot(50, fill)


def test_export_button_writes_the_result_with_the_confident_only_option(dock, apollo, tmp_path, bar):
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(dock)
    dock.run_box.threshold_slider.setValue(750)
    layer = dock.result_layer()
    confident = sum(1 for f in layer.getFeatures() if not f["abstained"])
    assert 0 < confident < layer.featureCount()
    dock.result_box.confident_only.setChecked(True)
    path = str(tmp_path / "cells.gpkg")
    seen = []
    _fill_file_dialog(path, seen)
    click(dock.result_box.export_button)
    assert seen == ["Export terrain classes"]
    back = export.load_export(path)
    assert back.featureCount() == confident and back.crs() == layer.crs()
    assert all(not f["abstained"] for f in back.getFeatures())
    assert any(path in m for m in bar.get_messages(Qgis.Success))


def _answer_question(button: int, seen: list) -> None:
    """Once the panel's question box is up, remember its text and press ``button`` (Yes or No)."""
    from qgis.PyQt.QtWidgets import QMessageBox

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, answer)
            return
        seen.append(box.text())
        QTest.mouseClick(box.button(button), Qt.LeftButton)

    QTimer.singleShot(50, answer)


@pytest.fixture
def huge_moon_raster(tmp_path, qgis_new_project):
    """A real 8,200 x 8,200 px GeoTIFF in the Apollo frame's lunar CRS, sparse on disk (a few kB)."""
    from osgeo import gdal

    from conftest import raster_path
    from qgis.core import QgsRasterLayer

    src = gdal.Open(str(raster_path(APOLLO)))
    path = tmp_path / "huge_moon.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 8200, 8200, 1, gdal.GDT_Byte,
                                              ["SPARSE_OK=TRUE", "TILED=YES"])
    ds.SetProjection(src.GetProjection())
    ds.SetGeoTransform((140.0, 0.001, 0, 10.0, 0, -0.001))
    ds = None
    layer = QgsRasterLayer(str(path), "huge moon")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.mark.parametrize("answer", ["No", "Yes"])
def test_a_grid_over_a_million_cells_asks_first(dock, huge_moon_raster, bar, answer):
    from qgis.PyQt.QtWidgets import QMessageBox

    choose(dock, huge_moon_raster, run_panel.MODE_GRID_LAYER, 8, "pixels")  # 1,025 x 1,025 cells
    seen: list = []
    _answer_question(QMessageBox.Yes if answer == "Yes" else QMessageBox.No, seen)
    finished: list = []
    dock.runFinished.connect(finished.append)
    try:
        click(dock.run_box.run_button)
        assert wait_until(lambda: bool(seen), 60), "the panel did not ask before the huge grid"
        assert "1,050,625 cells" in seen[0] and "Run it anyway?" in seen[0]
        if answer == "No":
            assert wait_until(lambda: bool(finished), 30) and finished == [False]
            assert any("Not run: The grid has 1,050,625 cells, more than MAX_CELLS" in m
                       for m in bar.messages[Qgis.Warning])
            assert not grid_layers()
        else:
            assert dock.grid_run is not None, "the confirmed run did not start"
            assert dock.grid_run.parameters["MAX_CELLS"] == 1_050_625
            click(dock.run_box.cancel_button)
            assert wait_until(lambda: bool(finished), 120), "the confirmed run did not stop after cancel"
    finally:
        dock.runFinished.disconnect(finished.append)
