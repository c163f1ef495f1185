"""Taught heads wherever a model is chosen, and one-key review (issues 17 and 18), in a real QGIS.

The model manager lists heads beside the models (bound to the model in use or not, accuracy, where they come
from), installs one from a file (a bad file gets a plain message), switches and removes them; the panel's *Head*
combo offers the heads of the model in use at once (a head ``teach_head`` just wrote included), and every run
from the panel and the map tool passes it as HEAD, so the results carry its classes, name and version; changing
the model drops a head of another file, saying so. The review keys work on the real canvas and attribute table,
never in a text field. The tiny network's embedding is its channel means (tests/model_factory.py).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from qgis.core import (Qgis, QgsApplication, QgsFeature, QgsField, QgsGeometry, QgsPointXY, QgsProcessingUtils,
                       QgsSettings, QgsVectorLayer)
from qgis.gui import QgsDualView
from qgis.PyQt.QtCore import QPoint, QVariant, Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication, QLineEdit, QTableView

from conftest import wait_until
from model_factory import TWO_OUTPUTS, write_valid_model
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.heads import backbone_info, save_head, teach
from planet_terrain_plugin.gui import run_panel
from planet_terrain_plugin.gui.head_manager import HEAD_COLUMNS, NOT_BOUND
from planet_terrain_plugin.gui.model_manager import ModelManagerDialog
from planet_terrain_plugin.gui.run_params import RunChoice
from planet_terrain_plugin.qgis_io import model_library as library
from planet_terrain_plugin.qgis_io.model_choice import (SETTING_HEAD, SETTING_MODEL, head_setting,
                                                        install_model_setting)
from test_gui_dock import apollo, choose, click, plugin, run_and_wait  # noqa: F401
from test_gui_panel_fit import DOCK_WIDTH, app_font, clipped, show_at  # noqa: F401
from test_plugin_task import drag
from test_qgis_raster_read import pixel_rect

TEACH = "planet_terrain:teach_head"
SETTINGS = (SETTING_MODEL, SETTING_HEAD, library.SETTING_FILES, library.SETTING_HEAD_FILES)


@pytest.fixture(autouse=True)
def clean_settings(qgis_app):
    for key in SETTINGS:
        QgsSettings().remove(key)
    yield
    for key in SETTINGS:
        QgsSettings().remove(key)


@pytest.fixture(scope="module")
def emb_model(tmp_path_factory) -> Path:
    return write_valid_model(tmp_path_factory.mktemp("heads") / "tiny_emb.onnx", outputs=TWO_OUTPUTS)


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    return write_valid_model(tmp_path_factory.mktemp("heads_other") / "other_emb.onnx", outputs=TWO_OUTPUTS,
                             model_version="9")


def make_head(model: Path, folder: Path, name: str, classes=("bright rim", "dark plain")) -> str:
    """A head on ``model``'s file, taught on synthetic 3-d embeddings (the tiny network's size)."""
    x = [[0.0, 1.0, 2.0], [0.1, 1.1, 2.1], [0.2, 0.9, 2.2], [3.0, 1.0, 0.0], [3.1, 1.2, 0.1], [2.9, 0.8, 0.2]]
    labels = [classes[0]] * 3 + [classes[1]] * 3
    head = teach(x, labels, name, "3", backbone_info(session_mod.load_model(str(model))))
    return save_head(head, str(folder / name))


@pytest.fixture
def heads_dialog(tmp_path):
    made = []

    def make() -> ModelManagerDialog:
        dialog = ModelManagerDialog(offer=None, downloads=tmp_path / "downloads", heads=tmp_path / "kept")
        dialog.show()
        made.append(dialog)
        return dialog

    yield make
    for dialog in made:
        dialog.close()
        dialog.deleteLater()


def head_rows(dialog) -> list[dict[str, str]]:
    t = dialog.heads_box.table
    return [{HEAD_COLUMNS[c]: t.item(r, c).text() for c in range(t.columnCount())} for r in range(t.rowCount())]


def head_row_of(dialog, path) -> int:
    return next(i for i, e in enumerate(dialog.heads_box.entries) if e.path.resolve() == Path(path).resolve())


# -- the manager -------------------------------------------------------------------------------------------------
def test_the_manager_lists_heads_beside_the_models_bound_or_not(heads_dialog, emb_model, other_model, tmp_path):
    install_model_setting(str(emb_model))
    mine = make_head(emb_model, tmp_path, "rims")
    foreign = make_head(other_model, tmp_path, "foreign", ("gully", "plain"))
    for path in (mine, foreign):
        library.remember_head(path)
    dialog = heads_dialog()
    rows = head_rows(dialog)
    ours, theirs = rows[head_row_of(dialog, mine)], rows[head_row_of(dialog, foreign)]
    assert (ours["Name"], ours["Version"], ours["Classes"]) == ("rims", "3", "bright rim, dark plain")
    assert ours["Taught on"] == "tiny-test-model 0.0.1-test (the model in use)"
    assert ours["Bodies"] == "Mars, Moon, Vesta" and ours["From"] == "your file" and ours["In use"] == ""
    assert ours["Size"].endswith("kB") and ours["CV accuracy"] == "100% (3 folds)"
    assert theirs["Taught on"] == f"tiny-test-model 9 ({NOT_BOUND})" and theirs["Bodies"] == ""
    dialog.heads_box.table.selectRow(head_row_of(dialog, foreign))
    assert not dialog.heads_box.use_button.isEnabled()
    assert "choose that model first" in dialog.heads_box.use_button.toolTip()
    dialog.heads_box.table.selectRow(head_row_of(dialog, mine))
    assert "bright rim 100%" in dialog.heads_box.details.text()
    click(dialog.heads_box.use_button)
    assert head_setting() == mine and head_rows(dialog)[head_row_of(dialog, mine)]["In use"] == "●"
    assert "Runs now use the head 'rims' 3 (bright rim, dark plain)" in dialog.status.text()
    click(dialog.heads_box.none_button)
    assert head_setting() == "" and not dialog.heads_box.none_button.isEnabled()
    dialog.heads_box.table.selectRow(head_row_of(dialog, mine))
    click(dialog.heads_box.remove_button)
    assert os.path.isfile(mine), "a user's head file is never deleted"
    assert "the file itself is left where it is" in dialog.status.text()
    assert [e.path for e in dialog.heads_box.entries] == [Path(foreign)]


def test_install_head_from_file_reads_it_first_and_says_what_is_wrong(heads_dialog, emb_model, tmp_path):
    install_model_setting(str(emb_model))
    dialog = heads_dialog()
    not_a_head = tmp_path / "labels.json"
    not_a_head.write_text(json.dumps({"crater": 1}))
    garbage = tmp_path / "garbage.head.json"
    garbage.write_bytes(b"\x00\xffnot json")
    for path, words in ((not_a_head, "is not a Planet Terrain head file"), (garbage, "cannot be read")):
        assert dialog.heads_box.install_file(str(path)) is None
        assert dialog.status.text().startswith("Not installed: ") and words in dialog.status.text()
    assert dialog.heads_box.entries == [] and library.remembered_files(library.SETTING_HEAD_FILES) == []
    good = make_head(emb_model, tmp_path, "good")
    assert dialog.heads_box.install_file(good) == good
    assert head_rows(dialog)[0]["Name"] == "good" and dialog.heads_box.selected().path == Path(good)
    assert library.remembered_files(library.SETTING_HEAD_FILES) == [good]


def test_a_head_taught_to_a_temporary_file_is_kept_and_only_that_copy_is_deleted(emb_model, tmp_path):
    temp = Path(QgsProcessingUtils.tempFolder()) / "teach_tmp"
    temp.mkdir(exist_ok=True)
    written = make_head(emb_model, temp, "temporary")
    kept = library.remember_head(written, tmp_path / "kept")
    assert Path(kept).parent == tmp_path / "kept" and Path(kept).name == "temporary.head.json"
    assert library.remembered_files(library.SETTING_HEAD_FILES) == []
    (entry,) = library.list_heads(tmp_path / "kept")
    assert entry.origin == library.KEPT and entry.head.name == "temporary"
    text = library.remove_head(entry)
    assert "Deleted temporary.head.json, the plugin's own copy" in text
    assert not os.path.exists(kept) and os.path.isfile(written)
    shutil.rmtree(temp)


def test_choosing_another_model_in_the_manager_drops_a_head_of_another_file(heads_dialog, emb_model, tiny_model,
                                                                            tmp_path):
    install_model_setting(str(emb_model))
    head = make_head(emb_model, tmp_path, "rims")
    library.remember_head(head)
    dialog = heads_dialog()
    dialog.heads_box.table.selectRow(head_row_of(dialog, head))
    click(dialog.heads_box.use_button)
    assert head_setting() == head
    QgsSettings().setValue(library.SETTING_FILES, [str(tiny_model)])  # another model file the manager lists
    dialog.refresh()
    dialog.table.selectRow(next(i for i, e in enumerate(dialog.entries) if e.path == Path(tiny_model)))
    click(dialog.use_button)
    assert head_setting() == ""
    assert "Runs now use tiny.onnx." in dialog.status.text()
    assert "The head 'rims' 3 was taught on tiny-test-model 0.0.1-test, another model file than tiny.onnx" \
        in dialog.status.text()
    assert head_rows(dialog)[head_row_of(dialog, head)]["Taught on"].endswith(f"({NOT_BOUND})")


# -- the panel -----------------------------------------------------------------------------------------------------
@pytest.fixture
def emb_dock(plugin, emb_model):
    install_model_setting(str(emb_model))
    plugin.dock_action.trigger()
    assert plugin.dock.isVisible()
    return plugin.dock


def example_points(layer, raster) -> QgsVectorLayer:
    """Four dark and four bright cells of ``layer`` (a grid of ``raster``) as labelled points."""
    cells = sorted(layer.getFeatures(), key=lambda f: f["p_crater"])  # p_crater grows with brightness
    points = QgsVectorLayer("Point", "examples", "memory")
    points.setCrs(raster.crs())
    points.dataProvider().addAttributes([QgsField("class", QVariant.String)])
    points.updateFields()
    feats = []
    for f, label in [(c, "dark plain") for c in cells[:4]] + [(c, "bright rim") for c in cells[-4:]]:
        g = QgsFeature(points.fields())
        g.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(f.geometry().centroid().asPoint())))
        g.setAttributes([label])
        feats.append(g)
    points.dataProvider().addFeatures(feats)
    return points


def test_a_taught_head_is_offered_at_once_and_panel_and_map_tool_runs_carry_it(plugin, emb_dock, apollo,
                                                                               qgis_iface, tmp_path, emb_model):
    import processing

    dock = emb_dock
    assert dock.model_box.head_combo.count() == 1 and not dock.model_box.head_combo.isEnabled()
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(dock)
    points = example_points(dock.result_layer(), apollo)
    res = processing.run(TEACH, {"INPUT": apollo, "EXAMPLES": points, "LABEL_FIELD": "class",
                                 "NAME": "bright-dark", "VERSION": "2", "OUTPUT": str(tmp_path / "bd")})
    combo = dock.model_box.head_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["none", "bright-dark 2"]
    assert "dark plain, bright rim" in combo.itemData(1, Qt.ToolTipRole)
    combo.setCurrentIndex(1)
    combo.activated.emit(1)  # what a user's pick in the list emits
    assert head_setting() == res["OUTPUT"]
    text = dock.model_box.label.text().replace("\u200b", "")
    assert "<b>bright-dark</b> 2" in text and "Head taught on tiny-test-model 0.0.1-test" in text
    assert "Classes: dark plain, bright rim" in text
    assert dock.model.contract.class_names == ("dark plain", "bright rim")
    assert dock.review_box.labels()[:2] == ["dark plain", "bright rim"]
    assert RunChoice(apollo, str(emb_model)).parameters()["HEAD"] == res["OUTPUT"]
    assert run_and_wait(dock)  # the panel's grid
    grid = dock.result_layer()
    assert "p_dark_plain" in grid.fields().names() and "p_crater" not in grid.fields().names()
    assert {(f["model"], f["model_version"]) for f in grid.getFeatures()} == {("bright-dark", "2")}
    assert {f["label"] for f in grid.getFeatures()} <= {"dark plain", "bright rim", "unknown"}
    canvas = qgis_iface.mapCanvas()  # the map tool's rectangle
    canvas.setDestinationCrs(apollo.crs())
    canvas.setExtent(pixel_rect(apollo, 500, 400, 300, 300))
    QgsApplication.processEvents()
    choose(dock, apollo, run_panel.MODE_EXTENT)
    click(dock.run_box.run_button)
    finished = []
    dock.runFinished.connect(finished.append)
    drag(canvas, QPoint(50, 60), QPoint(200, 220))
    assert wait_until(lambda: bool(finished), 30)
    dock.runFinished.disconnect(finished.append)
    rect = dock.result_layer()
    feature = next(rect.getFeatures())
    assert (feature["model"], feature["model_version"]) == ("bright-dark", "2")
    assert "p_bright_rim" in rect.fields().names() and feature["label"] in ("dark plain", "bright rim", "unknown")


def test_changing_the_model_drops_a_head_of_another_file_with_a_message(plugin, emb_dock, tiny_model, bar,
                                                                        tmp_path, emb_model):
    head = make_head(emb_model, tmp_path, "rims")
    library.remember_head(head)
    combo = emb_dock.model_box.head_combo
    assert combo.findData(head) == 1
    library.use_head(library.list_heads()[0])  # chosen elsewhere (the manager): the panel follows
    assert combo.currentData() == head and emb_dock.model.contract.model_name == "rims"
    install_model_setting(str(tiny_model))
    emb_dock.refresh_model()
    assert head_setting() == "" and combo.currentData() == "" and combo.count() == 1
    assert emb_dock.model.contract.model_name == "tiny-test-model"
    assert any("The head 'rims' 3 was taught on tiny-test-model 0.0.1-test, another model file than tiny.onnx"
               in m for m in bar.get_messages(Qgis.Warning))


def test_a_chosen_head_whose_file_is_gone_is_dropped_saying_so(plugin, emb_dock, bar, tmp_path, emb_model,
                                                               heads_dialog):
    head = make_head(emb_model, tmp_path, "rims")
    library.remember_head(head)
    library.use_head(library.list_heads()[0])
    assert emb_dock.model.contract.model_name == "rims"
    os.remove(head)
    emb_dock.refresh_model()
    assert head_setting() == "" and emb_dock.model.contract.model_name == "tiny-test-model"
    assert f"Planet Terrain:No head is used any more: the head file '{head}' is gone (moved or deleted); install " \
        "it from where it is now in Planet Terrain > Manage models." in bar.get_messages(Qgis.Warning)
    dialog = heads_dialog()
    (row,) = head_rows(dialog)
    assert (row["Name"], row["Classes"]) == ("rims.head.json", "cannot be read")
    dialog.heads_box.table.selectRow(0)
    assert not dialog.heads_box.use_button.isEnabled() and "No such file" in dialog.heads_box.details.text()
    click(dialog.heads_box.remove_button)
    assert dialog.heads_box.entries == [] and "Forgot the head" in dialog.status.text()


# -- review keys ----------------------------------------------------------------------------------------------------
@pytest.fixture
def reviewed_grid(plugin, emb_dock, apollo, qgis_iface, qgis_parent):
    choose(emb_dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(emb_dock)
    layer = emb_dock.result_layer()
    canvas = qgis_iface.mapCanvas()
    QApplication.setActiveWindow(qgis_parent)
    canvas.setFocus()
    assert wait_until(lambda: QApplication.focusWidget() is canvas, 5), "the canvas did not take the focus"
    return emb_dock.review_box, layer, canvas


def reviewed(layer) -> dict[int, tuple]:
    return {f.id(): (f["reviewed_label"], f["reviewed"]) for f in layer.getFeatures() if f["reviewed"]}


def test_plain_keys_on_the_canvas_accept_and_correct_the_selection(reviewed_grid):
    box, layer, canvas = reviewed_grid
    ids = sorted(f.id() for f in layer.getFeatures())
    layer.selectByIds(ids[:2])
    labels = {i: layer.getFeature(i)["label"] for i in ids[:2]}
    QTest.keyClick(canvas, Qt.Key_A)
    assert reviewed(layer) == {i: (labels[i], True) for i in ids[:2]}
    layer.selectByIds([ids[2]])
    QTest.keyClick(canvas, Qt.Key_3)
    assert reviewed(layer)[ids[2]] == (box.labels()[2], True) == ("slope streak", True)
    layer.selectByIds([ids[3]])
    QTest.keyClick(canvas, Qt.Key_C)
    menu = box.correction_menu
    assert menu is not None and menu.isVisible()
    assert [a.text() for a in menu.actions()][:2] == ["&1 crater", "&2 dark dune"]
    QTest.keyClick(menu, Qt.Key_5)  # the digit of a label in the open menu picks it
    assert reviewed(layer)[ids[3]] == ("impact ejecta", True)
    assert "on the map or in the attribute table: A" in box.accept_button.toolTip()
    assert "1–9" in box.correct_button.toolTip() and "3 slope streak" in box.label_combo.toolTip()


def test_review_keys_never_take_a_key_from_a_text_field_or_an_edited_layer(reviewed_grid, qgis_parent):
    box, layer, canvas = reviewed_grid
    first = next(layer.getFeatures()).id()
    layer.selectByIds([first])
    field = QLineEdit(qgis_parent)
    field.show()
    field.setFocus()
    assert wait_until(lambda: QApplication.focusWidget() is field, 5)
    QTest.keyClick(field, Qt.Key_A)
    QTest.keyClick(field, Qt.Key_1)
    assert field.text() == "a1" and reviewed(layer) == {}
    canvas.setFocus()
    layer.startEditing()
    QTest.keyClick(canvas, Qt.Key_A)
    assert reviewed(layer) == {}, "while the layer is edited, keys are the editor's"
    layer.rollBack()
    QTest.keyClick(canvas, Qt.Key_A, Qt.ControlModifier)
    assert reviewed(layer) == {}, "a key with a modifier is not a review key"
    QTest.keyClick(canvas, Qt.Key_A)
    assert set(reviewed(layer)) == {first}
    field.deleteLater()


def test_plain_keys_in_the_result_layers_attribute_table(reviewed_grid, qgis_iface, qgis_parent):
    box, layer, canvas = reviewed_grid
    dual = QgsDualView(qgis_parent)
    dual.init(layer, canvas)
    dual.setView(QgsDualView.AttributeTable)
    dual.show()
    table = dual.findChild(QTableView)
    table.setFocus()
    assert wait_until(lambda: QApplication.focusWidget() is table, 5)
    ids = sorted(f.id() for f in layer.getFeatures())
    layer.selectByIds([ids[0]])
    QTest.keyClick(table, Qt.Key_2)
    assert reviewed(layer) == {ids[0]: ("dark dune", True)}
    other = QgsVectorLayer("Point", "other", "memory")  # another layer's table keeps its keys
    other_view = QgsDualView(qgis_parent)
    other_view.init(other, canvas)
    other_view.show()
    other_table = other_view.findChild(QTableView)
    other_table.setFocus()
    assert wait_until(lambda: QApplication.focusWidget() is other_table, 5)
    layer.selectByIds([ids[1]])
    QTest.keyClick(other_table, Qt.Key_A)
    assert set(reviewed(layer)) == {ids[0]}
    for view in (dual, other_view):
        view.deleteLater()


def test_the_dock_with_a_long_named_head_still_fits_280_px(app_font, plugin, emb_model, tmp_path):
    """The Head row at the normal and the 1.5x font: the head's name is elided, its classes wrap."""
    head = make_head(emb_model, tmp_path, "gullies_and_recurring_slope_lineae_of_the_southern_mid_latitudes",
                     ("recurring slope lineae", "gully_channel_with_apron"))
    install_model_setting(str(emb_model))
    library.remember_head(head)
    library.use_head(library.list_heads()[0])
    plugin.dock_action.trigger()
    assert plugin.dock.model_box.head_combo.currentData() == head
    assert clipped(show_at(plugin.dock, DOCK_WIDTH)) == []
