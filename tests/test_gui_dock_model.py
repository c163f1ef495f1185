"""The Planet Terrain panel's model box and life cycle: no model, a broken model, the provider choice, unloading.

Same real QGIS interface, toolbar action and real file dialogs as test_gui_dock.py, whose fixtures these tests use:
the panel must name a missing or broken model file and offer the install, the provider chosen in it must be the
setting every run (panel, map tool, Processing) loads the model with, and unloading the plugin removes the panel.
"""
from __future__ import annotations

import pytest
from qgis.core import QgsSettings

from planet_terrain_plugin.core import models
from planet_terrain_plugin.qgis_io.model_choice import SETTING_MODEL
from test_gui_dock import _fill_file_dialog, apollo, click, dock, no_model_setting, plugin  # noqa: F401 -- fixtures


def test_no_model_shows_the_message_and_installs_from_the_panel(plugin, no_model_setting, tiny_model, apollo):
    if models.installed_variants():
        pytest.skip("a default model is installed in the plugin")
    plugin.dock_action.trigger()
    dock = plugin.dock
    assert dock.model is None
    assert "No default model is installed" in dock.model_box.label.text()
    assert "Install model file" in dock.model_box.label.text()
    install = dock.model_box.install_button
    assert install.isVisibleTo(dock) and install.text() == "Install model file…"
    dock.run_box.layer_combo.setLayer(apollo)
    assert not dock.run_box.run_button.isEnabled()
    seen = []
    _fill_file_dialog(str(tiny_model), seen)
    click(dock.model_box.install_button)  # the plugin's own action: its file dialog, then the panel reloads
    assert seen == ["Planet Terrain model"]
    assert dock.model is not None and "tiny-test-model" in dock.model_box.label.text()
    assert not dock.model_box.install_button.isVisibleTo(dock) and dock.run_box.run_button.isEnabled()


def test_unload_removes_the_panel(plugin, qgis_iface):
    dock = plugin.dock
    assert dock is not None and plugin.dock_action is dock.toggleViewAction()
    plugin.unload()
    assert plugin.dock is None and plugin.dock_action is None
    assert [a.text() for a in plugin.actions] == []


def test_a_broken_model_file_is_named_in_the_panel(plugin, no_model_setting, broken_model):
    QgsSettings().setValue(SETTING_MODEL, str(broken_model))  # as if the file broke after it was installed
    plugin.dock_action.trigger()
    dock = plugin.dock
    assert dock.model is None and dock.model_box.install_button.isVisibleTo(dock)
    text = dock.model_box.label.text().replace("\u200b", "")  # the label may break long paths
    assert "could not be loaded" in text and "planet_terrain.temperature" in text and str(broken_model) in text


def test_provider_choice_is_a_setting_every_run_uses(dock, apollo, monkeypatch):
    """Choosing 'cpu' in the panel stores the setting, reloads the model on it, and Processing runs use it."""
    from planet_terrain_plugin.qgis_io.model_choice import SETTING_PROVIDER, load_run_model

    monkeypatch.delenv("PLANET_TERRAIN_PROVIDER", raising=False)
    try:
        dock.model_box.provider_combo.setCurrentText("CPU")
        assert QgsSettings().value(SETTING_PROVIDER) == "cpu"
        assert "CPUExecutionProvider (requested)" in dock.model_box.label.toolTip()
        assert "Variant:" in dock.model_box.label.text()
        assert load_run_model().provider_note.startswith("CPUExecutionProvider (requested)")
        QgsSettings().setValue(SETTING_PROVIDER, "tpu")
        with pytest.raises(ValueError, match="auto, cuda, coreml, cpu"):
            load_run_model()
    finally:
        QgsSettings().remove(SETTING_PROVIDER)
