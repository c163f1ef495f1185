"""Which model a run uses: explicit file, else the one the user installed (a QGIS setting), else the default."""
from __future__ import annotations

import pytest
from qgis.core import QgsSettings

from planet_terrain_plugin.core import models
from planet_terrain_plugin.core.contract import ContractError
from planet_terrain_plugin.qgis_io.model_choice import (SETTING_MODEL, install_model_setting,
                                                        installed_model_setting, resolve_model_path)


@pytest.fixture(autouse=True)
def clean_setting(qgis_app):
    QgsSettings().remove(SETTING_MODEL)
    yield
    QgsSettings().remove(SETTING_MODEL)


def test_explicit_then_installed_then_default(tiny_model, tmp_path):
    assert resolve_model_path(str(tmp_path / "given.onnx")) == str(tmp_path / "given.onnx")
    install_model_setting(str(tiny_model))
    assert installed_model_setting() == str(tiny_model)
    assert resolve_model_path(None) == str(tiny_model)


def test_installing_a_broken_model_is_refused_and_not_remembered(broken_model):
    with pytest.raises(ContractError, match="temperature"):
        install_model_setting(str(broken_model))
    assert installed_model_setting() == ""


def test_without_any_model_the_error_says_how_to_get_one(tmp_path):
    if models.installed_variants():
        pytest.skip("a default model is installed in the plugin")
    with pytest.raises(models.NoModelError, match="make train export"):
        resolve_model_path(None)
