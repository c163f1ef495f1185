"""Which model file a run uses, and on which execution provider.

The model: the one given, else the one the user installed, else the shipped default (the variant that suits the
provider). The user's choices are QGIS settings (``planet_terrain/model_path``, ``planet_terrain/provider``) so
the map tool, the panel, Processing and ``qgis_process`` (same profile) agree, without copying files into the
plugin folder, which an upgrade replaces. The ``PLANET_TERRAIN_PROVIDER`` environment variable still wins over
the setting, as it does for the image command line.
"""
from __future__ import annotations

import os

from qgis.core import QgsSettings

from ..core import models
from ..core.contract import read_contract
from ..core.session import ENV_PROVIDER, TerrainModel, load_model

SETTING_MODEL = "planet_terrain/model_path"
SETTING_PROVIDER = "planet_terrain/provider"


def installed_model_setting() -> str:
    return str(QgsSettings().value(SETTING_MODEL, "") or "")


def install_model_setting(path: str) -> str:
    """Validate ``path``'s contract (raises ContractError naming the problem) and remember it as the model."""
    path = os.path.abspath(path)
    read_contract(path)
    QgsSettings().setValue(SETTING_MODEL, path)
    return path


def provider_setting() -> str:
    """The user's execution provider choice: auto, cuda, coreml or cpu (the environment variable wins)."""
    return os.environ.get(ENV_PROVIDER) or str(QgsSettings().value(SETTING_PROVIDER, "auto") or "auto")


def _provider_hint() -> str:
    try:
        from ..core.session import candidate_providers, import_onnxruntime, resolve_preference

        return candidate_providers(import_onnxruntime().get_available_providers(),
                                   resolve_preference(provider_setting()))[0]
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


def load_run_model(explicit: str | None = None, grid: bool = False) -> TerrainModel:
    """Load (or reuse) the model a run uses, on the provider the user chose; errors name the problem.

    ``grid``: the session a grid run uses, with several batches in flight (its ``layout`` says how many)."""
    return load_model(resolve_model_path(explicit), provider_setting(), grid)
