"""Which model file a run uses: the one given, else the one the user installed, else the shipped default.

The user's choice is a QGIS setting (``planet_terrain/model_path``) so the map tool, Processing and
``qgis_process`` (same profile) agree without copying files into the plugin folder, which an upgrade replaces.
"""
from __future__ import annotations

import os

from qgis.core import QgsSettings

from ..core import models
from ..core.contract import read_contract

SETTING_MODEL = "planet_terrain/model_path"


def installed_model_setting() -> str:
    return str(QgsSettings().value(SETTING_MODEL, "") or "")


def install_model_setting(path: str) -> str:
    """Validate ``path``'s contract (raises ContractError naming the problem) and remember it as the model."""
    path = os.path.abspath(path)
    read_contract(path)
    QgsSettings().setValue(SETTING_MODEL, path)
    return path


def _provider_hint() -> str:
    try:
        from ..core.session import candidate_providers, import_onnxruntime, resolve_preference

        return candidate_providers(import_onnxruntime().get_available_providers(), resolve_preference(None))[0]
    except (ImportError, ValueError):
        return "CPUExecutionProvider"


def resolve_model_path(explicit: str | None = None) -> str:
    """The model file to load; raises core.models.NoModelError (with how to get one) when there is none."""
    if explicit:
        return explicit
    remembered = installed_model_setting()
    if remembered and os.path.isfile(remembered):
        return remembered
    return str(models.default_model_path(_provider_hint()))
