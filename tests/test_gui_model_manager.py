"""The model manager (gui/model_manager.py) in a real QGIS: lists the models with their facts, switches the one
runs use, removes only what the user added, installs a file through the plugin's own action, and downloads the
offered file from a local 127.0.0.1 server only when Download is pressed: progress, cancel, resume, checksum."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsSettings
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QLabel, QMessageBox, QPushButton

from conftest import wait_until
from local_http import Behaviour, LocalServer
from planet_terrain_plugin import classFactory
from planet_terrain_plugin import plugin as plugin_module
from planet_terrain_plugin.core import models
from planet_terrain_plugin.core.contract import read_contract
from planet_terrain_plugin.gui import model_manager
from planet_terrain_plugin.gui.model_manager import COLUMNS, ModelManagerDialog
from planet_terrain_plugin.qgis_io import model_library as library
from planet_terrain_plugin.qgis_io.model_choice import SETTING_MODEL, installed_model_setting
from planet_terrain_plugin.qgis_io.model_download import DownloadOffer, part_path


@pytest.fixture(autouse=True)
def clean_settings(qgis_app):
    for key in (SETTING_MODEL, library.SETTING_FILES):
        QgsSettings().remove(key)
    yield
    for key in (SETTING_MODEL, library.SETTING_FILES):
        QgsSettings().remove(key)


@pytest.fixture
def open_dialog(tmp_path):
    made = []

    def make(offer: DownloadOffer | None = None, **kwargs) -> ModelManagerDialog:
        dialog = ModelManagerDialog(offer=offer, downloads=tmp_path / "downloads", **kwargs)
        dialog.show()
        made.append(dialog)
        return dialog

    yield make
    for dialog in made:
        dialog.cancel_download()
        wait_until(lambda d=dialog: d.task is None, 10)
        dialog.close()


def rows(dialog: ModelManagerDialog) -> list[dict[str, str]]:
    t = dialog.table
    return [{COLUMNS[c]: t.item(r, c).text() for c in range(t.columnCount())} for r in range(t.rowCount())]


def row_of(dialog: ModelManagerDialog, path: Path) -> int:
    return next(i for i, e in enumerate(dialog.entries) if e.path.resolve() == Path(path).resolve())


def click(button: QPushButton) -> None:
    assert button.isEnabled(), f"'{button.text()}' is disabled: {button.toolTip()}"
    QTest.mouseClick(button, Qt.LeftButton)


def all_texts(dialog: ModelManagerDialog) -> str:
    texts = [w.text() for w in dialog.findChildren((QLabel, QPushButton))]
    texts += [w.toolTip() for w in dialog.findChildren((QLabel, QPushButton))]
    texts += [str(c) for r in rows(dialog) for c in r.values()]
    return "\n".join(texts)


def test_shipped_models_are_listed_with_their_facts_in_plain_words(open_dialog):
    shipped = models.installed_variants()
    if not shipped:
        pytest.skip("no model ships in this checkout")
    dialog = open_dialog()
    listed = {r["Variant"]: r for r in rows(dialog)}
    assert set(shipped) <= set(listed)
    int8 = listed["int8"]
    shipped_version = read_contract(str(shipped["int8"])).model_version
    assert int8["Name"] == "planet_terrain_resnet50" and int8["Version"] == shipped_version
    assert int8["Size"] == f"{shipped['int8'].stat().st_size / 1e6:.1f} MB"
    assert "crater" in int8["Classes"] and int8["Bodies"] == "Mars, Moon, Vesta" and int8["Scale (m/px)"] == "0.5–12"
    assert int8["From"] == "the plugin" and int8["Default on"] == "CPU"
    in_use = [r for r in rows(dialog) if r["In use"] == "●"]
    assert len(in_use) == 1 and in_use[0] == rows(dialog)[row_of(dialog, library.active_path())]
    if "fp16" in listed:
        assert listed["fp16"]["Default on"] == "GPU" and listed["fp16"]["In use"] == ""
    dialog.table.selectRow(row_of(dialog, shipped["int8"]))
    assert 'href="file://' in dialog.details.text() and "MODEL_CARD.md" in dialog.details.text()
    assert "ExecutionProvider" not in all_texts(dialog)


def test_switching_the_model_sets_what_every_run_uses_and_automatic_goes_back(open_dialog, tiny_model):
    library.use(library.ModelEntry(tiny_model, library.FILE, None))
    dialog = open_dialog()
    assert rows(dialog)[row_of(dialog, tiny_model)]["In use"] == "●"
    assert rows(dialog)[row_of(dialog, tiny_model)]["From"] == "your file"
    click(dialog.auto_button)
    assert installed_model_setting() == ""
    assert rows(dialog)[row_of(dialog, tiny_model)]["In use"] == "", "the file stays listed, not in use"
    dialog.table.selectRow(row_of(dialog, tiny_model))
    click(dialog.use_button)
    assert installed_model_setting() == str(tiny_model)
    assert "Runs now use tiny.onnx" in dialog.status.text()


def test_a_broken_or_moved_file_is_listed_with_its_problem_and_cannot_be_chosen(open_dialog, broken_model, tmp_path):
    moved = tmp_path / "moved.onnx"
    QgsSettings().setValue(library.SETTING_FILES, [str(broken_model), str(moved)])
    dialog = open_dialog()
    for path, problem in ((broken_model, "temperature"), (moved, "does not exist")):
        dialog.table.selectRow(row_of(dialog, path))
        assert rows(dialog)[row_of(dialog, path)]["Classes"] == "cannot be read"
        assert problem in dialog.details.text()
        assert not dialog.use_button.isEnabled() and dialog.remove_button.isEnabled()


def test_shipped_models_are_never_removed_and_the_dialog_says_why(open_dialog):
    shipped = models.installed_variants()
    if not shipped:
        pytest.skip("no model ships in this checkout")
    dialog = open_dialog()
    path = next(iter(shipped.values()))
    dialog.table.selectRow(row_of(dialog, path))
    assert not dialog.remove_button.isEnabled()
    assert "replaced as a whole on upgrade" in dialog.remove_button.toolTip()
    dialog.remove_selected()
    assert "ships with the plugin and is not removed" in dialog.status.text() and path.is_file()
    with pytest.raises(ValueError, match="ships with the plugin"):
        library.remove(dialog.entries[row_of(dialog, path)])


def test_removing_your_own_file_forgets_it_and_leaves_the_file(open_dialog, tiny_model):
    library.use(library.ModelEntry(tiny_model, library.FILE, None))
    dialog = open_dialog()
    dialog.table.selectRow(row_of(dialog, tiny_model))
    click(dialog.remove_button)
    assert tiny_model.is_file(), "a user's file is never removed"
    assert all(e.path != tiny_model for e in dialog.entries) and installed_model_setting() == ""
    assert "the file itself is left where it is. Runs use the shipped model again." in dialog.status.text()


def test_removing_a_downloaded_model_deletes_it_after_asking(open_dialog, tiny_model, tmp_path, monkeypatch):
    downloaded = tmp_path / "downloads" / "model.onnx"
    downloaded.parent.mkdir()
    downloaded.write_bytes(tiny_model.read_bytes())
    dialog = open_dialog()
    dialog.table.selectRow(row_of(dialog, downloaded))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.No)  # the user says no
    click(dialog.remove_button)
    assert downloaded.is_file()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    click(dialog.remove_button)
    assert not downloaded.exists() and "Deleted the downloaded model.onnx" in dialog.status.text()


@pytest.fixture
def plugin(qgis_iface, qgis_parent, qgis_processing, monkeypatch):
    monkeypatch.setattr(qgis_iface, "removePluginMenu", lambda menu, action: None, raising=False)
    p = classFactory(qgis_iface)
    p.initGui()
    yield p
    if p.actions:
        p.unload()


def test_the_menu_opens_the_manager_and_install_uses_the_plugins_own_action(plugin, tiny_model, monkeypatch):
    manage = next(a for a in plugin.actions if a.text() == "Manage models…")
    manage.trigger()
    dialog = model_manager._OPEN[0]
    assert dialog.isVisible()
    # The user picks the tiny model in the plugin's file dialog.
    monkeypatch.setattr(plugin_module.QFileDialog, "getOpenFileName", lambda *a, **k: (str(tiny_model), ""))
    click(dialog.install_button)
    assert installed_model_setting() == str(tiny_model)
    assert rows(dialog)[row_of(dialog, tiny_model)]["In use"] == "●"
    assert "tiny-test-model" in plugin.dock.model_box.label.text(), "the panel shows the new model"
    plugin.unload()
    assert model_manager._OPEN == [] and not dialog.isVisible()


def _offer(url: str, body: bytes) -> DownloadOffer:
    return DownloadOffer(url, hashlib.sha256(body).hexdigest())


def test_download_resumes_after_a_drop_checks_and_uses_the_file(open_dialog, tiny_model, tmp_path):
    body = tiny_model.read_bytes()
    behaviour = Behaviour(body, drops=1, drop_after=len(body) // 2)
    with LocalServer(behaviour) as url:
        dialog = open_dialog(_offer(url, body))
        QgsApplication.processEvents()
        assert behaviour.requests == [], "nothing is downloaded before the button is pressed"
        click(dialog.download_button)
        assert wait_until(lambda: dialog.task is None, 20)
        assert "The download stopped after" in dialog.status.text() and "press Download again" in dialog.status.text()
        assert dialog.download_button.text().startswith("Resume download (")
        assert not (tmp_path / "downloads" / "model.onnx").exists()
        click(dialog.download_button)
        assert wait_until(lambda: dialog.task is None, 20)
    target = tmp_path / "downloads" / "model.onnx"
    assert behaviour.requests == [None, f"bytes={len(body) // 2}-"]
    assert target.read_bytes() == body and not part_path(target).exists()
    assert dialog.status.text() == "Downloaded and checked model.onnx; runs now use it."
    assert installed_model_setting() == str(target) and dialog.progress.value() == 100
    assert rows(dialog)[row_of(dialog, target)]["From"] == "downloaded"
    assert not dialog.download_button.isEnabled() and "installed already" in dialog.download_button.toolTip()


def test_a_wrong_checksum_is_reported_and_nothing_is_installed(open_dialog, tiny_model, tmp_path):
    with LocalServer(Behaviour(tiny_model.read_bytes())) as url:
        dialog = open_dialog(DownloadOffer(url, "0" * 64))
        click(dialog.download_button)
        assert wait_until(lambda: dialog.task is None, 20)
    assert "not the expected one" in dialog.status.text() and "so it was deleted" in dialog.status.text()
    assert not any((tmp_path / "downloads").iterdir()) and installed_model_setting() == ""


def test_cancel_stops_the_download_and_keeps_the_part(open_dialog, tmp_path):
    body = bytes(2_000_000)
    with LocalServer(Behaviour(body, pause_s=0.05)) as url:
        dialog = open_dialog(_offer(url, body))
        click(dialog.download_button)
        assert dialog.cancel_button.isVisible() and dialog.progress.isVisible()
        assert wait_until(lambda: dialog.progress.value() > 0, 20)
        click(dialog.cancel_button)
        assert wait_until(lambda: dialog.task is None, 20)
    part = part_path(tmp_path / "downloads" / "model.onnx")
    assert "cancelled" in dialog.status.text() and 0 < part.stat().st_size < len(body)
    assert not (tmp_path / "downloads" / "model.onnx").exists()
    assert dialog.download_button.text().startswith("Resume download (") and not dialog.cancel_button.isVisible()


def test_without_an_offer_download_is_off_and_says_why(open_dialog, monkeypatch):
    monkeypatch.setattr(model_manager, "read_offer", lambda: None)
    dialog = open_dialog()
    assert not dialog.download_button.isEnabled()
    assert "offers no model to download" in dialog.download_button.toolTip()
