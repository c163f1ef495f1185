"""Which model file a run uses, and on which execution provider.

The model: the one given, else the one the user installed, else the shipped default (the variant that suits the
provider). The user's choices are QGIS settings (``planet_terrain/model_path``, ``planet_terrain/provider``) so
the map tool, the panel, Processing and ``qgis_process`` (same profile) agree, without copying files into the
plugin folder, which an upgrade replaces. The ``PLANET_TERRAIN_PROVIDER`` environment variable still wins over
the setting, as it does for the image command line.

The head: ``planet_terrain/head_path`` holds the taught head (``core.heads``) the panel and the map tool run
with. A head only means something on the model file it was taught on (bound by SHA-256), so it is used only while
that file is the run model (:func:`head_for_model`); when the model changes to another file the choice is dropped
(:func:`drop_unbound_head`) and the user is told. Processing and ``qgis_process`` take a head only when their
HEAD parameter names one: a script without HEAD keeps the model's own classes whatever the panel shows.
"""
from __future__ import annotations

import os

from qgis.core import QgsSettings

from ..core import models
from ..core.contract import read_contract
from ..core.heads import Head, HeadError, attach_head, file_sha256, read_head
from ..core.session import ENV_PROVIDER, TerrainModel, load_model

SETTING_MODEL = "planet_terrain/model_path"
SETTING_PROVIDER = "planet_terrain/provider"
SETTING_HEAD = "planet_terrain/head_path"


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


# -- the chosen head -------------------------------------------------------------------------------------------
def head_setting() -> str:
    return str(QgsSettings().value(SETTING_HEAD, "") or "")


def choose_head(path: str | None) -> str:
    """Make ``path`` the head runs use (read first: :class:`HeadError` names a bad file); None or "": no head."""
    if not path:
        QgsSettings().remove(SETTING_HEAD)
        return ""
    path = os.path.abspath(path)
    read_head(path)
    QgsSettings().setValue(SETTING_HEAD, path)
    return path


def is_bound(head: Head, model_path: str) -> bool:
    """Whether ``head`` was taught on the file ``model_path`` (its SHA-256, hashed once per session)."""
    try:
        return head.backbone.get("sha256") == file_sha256(model_path)
    except OSError:
        return False


def head_for_model(model_path: str) -> str:
    """The chosen head file when it can run on ``model_path``'s file, else "" (no head, or one of another file)."""
    chosen = head_setting()
    try:
        return chosen if chosen and is_bound(read_head(chosen), model_path) else ""
    except HeadError:
        return ""


def drop_unbound_head(model_path: str) -> str:
    """Forget the chosen head when it cannot run on ``model_path`` (taught on another file, gone, damaged);
    returns what was done, in words ("" when the head stays or none is chosen)."""
    chosen = head_setting()
    if not chosen or head_for_model(model_path):
        return ""
    QgsSettings().remove(SETTING_HEAD)
    if not os.path.isfile(chosen):
        return (f"No head is used any more: the head file '{chosen}' is gone (moved or deleted); install it from "
                "where it is now in Planet Terrain > Manage models.")
    try:
        head = read_head(chosen)
    except HeadError as exc:
        return f"No head is used any more: {exc}"
    return (f"The head '{head.name}' {head.version} was taught on {head.backbone.get('model_name')} "
            f"{head.backbone.get('model_version')}, another model file than {os.path.basename(model_path)}; runs use "
            "the model's own classes now. Choose that model again to use the head.")


def with_head(model: TerrainModel, head_file: str | None) -> TerrainModel:
    """``model`` answering with the head in ``head_file`` (none: ``model`` itself); HeadError when it cannot."""
    return attach_head(model, read_head(head_file)) if head_file else model
