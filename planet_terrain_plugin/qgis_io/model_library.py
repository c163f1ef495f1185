"""The models this QGIS profile has: shipped with the plugin, downloaded on request, or installed from a file.

* shipped: the variants in the plugin's ``models/`` folder (``core.models``); an upgrade replaces that folder,
  so they are never removed from here;
* downloaded: files in ``<profile>/planet_terrain/models`` (:func:`download_dir`), which the plugin put there
  when the user pressed Download; removing one deletes it;
* installed from a file: the user's own files, remembered in the ``planet_terrain/model_files`` setting (and
  whichever file is the chosen model); removing one forgets it, the file stays where it is.

The model a run uses is still :func:`model_choice.resolve_model_path`: choosing one here sets the same setting
(through :func:`model_choice.install_model_setting`, which checks its contract). Entries carry a ``kind`` so
that taught heads, small files beside a model, can be listed by the same manager later.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsApplication, QgsSettings

from ..core import models
from ..core.contract import ContractError, ModelContract, read_contract
from .model_choice import SETTING_MODEL, install_model_setting, installed_model_setting, resolve_model_path

SETTING_FILES = "planet_terrain/model_files"
SHIPPED, DOWNLOADED, FILE = "shipped", "downloaded", "file"
CARD_NAME = "MODEL_CARD.md"
#: Processors the shipped default is chosen for, in the words the dialog shows (``core.models`` takes any
#: provider other than CPU's as a GPU).
DEFAULT_FOR = {"CPU": "CPUExecutionProvider", "GPU": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class ModelEntry:
    """One model file and what its contract says (``contract`` is None when it cannot be read: ``error``)."""

    path: Path
    origin: str
    contract: ModelContract | None
    error: str = ""
    kind: str = "model"

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    @property
    def removable(self) -> bool:
        return self.origin != SHIPPED

    def card(self) -> Path | None:
        """The model card: one beside the file, else the shipped card when it is the shipped network."""
        beside = self.path.parent / CARD_NAME
        if beside.is_file():
            return beside
        shipped = models.MODELS_DIR / CARD_NAME
        if self.contract is not None and self.contract.model_name == models.DEFAULT_MODEL_NAME and shipped.is_file():
            return shipped
        return None


def download_dir() -> Path:
    """Where downloaded models go: the QGIS profile, which a plugin upgrade leaves alone."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "planet_terrain" / "models"


def remembered_files() -> list[str]:
    value = QgsSettings().value(SETTING_FILES, []) or []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _remember(paths: list[str]) -> None:
    QgsSettings().setValue(SETTING_FILES, paths)


@functools.lru_cache(maxsize=32)
def _contract(path: str, stamp: tuple[int, int]) -> ModelContract:
    """A file's contract, read once per ``stamp`` (size, mtime); failures are not cached, so they are retried."""
    return read_contract(path)


def _entry(path: Path, origin: str) -> ModelEntry:
    stamp = (path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else (-1, -1)
    try:
        return ModelEntry(path, origin, _contract(str(path), stamp))
    except (ContractError, ImportError, ValueError, RuntimeError, OSError) as exc:
        return ModelEntry(path, origin, None, str(exc))


def list_models(shipped_dir: Path = models.MODELS_DIR, downloads: Path | None = None) -> list[ModelEntry]:
    """Every model: shipped variants, downloaded files, then the user's own files (the chosen one included)."""
    downloads = downloads or download_dir()
    found: dict[str, tuple[Path, str]] = {}
    for path in models.installed_variants(shipped_dir).values():
        found.setdefault(os.path.abspath(path), (path, SHIPPED))
    for path in sorted(downloads.glob("*.onnx")) if downloads.is_dir() else []:
        found.setdefault(os.path.abspath(path), (path, DOWNLOADED))
    chosen = installed_model_setting()
    own = remembered_files() + ([chosen] if chosen and chosen not in remembered_files() else [])
    _remember([p for p in own if os.path.abspath(p) not in found])
    for name in own:
        found.setdefault(os.path.abspath(name), (Path(name), FILE))
    return [_entry(path, origin) for path, origin in found.values()]


def active_path() -> Path | None:
    """The file a run would use now, or None when there is none."""
    try:
        return Path(os.path.abspath(resolve_model_path()))
    except models.NoModelError:
        return None


def is_automatic() -> bool:
    """True when no model is chosen (or the chosen file is gone): runs use the shipped variant for the processor."""
    chosen = installed_model_setting()
    return not (chosen and os.path.isfile(chosen))


def default_for(entry: ModelEntry, shipped_dir: Path = models.MODELS_DIR) -> list[str]:
    """The processors ("CPU", "GPU") for which ``entry`` is the automatic choice (shipped variants only)."""
    if entry.origin != SHIPPED:
        return []
    return [word for word, provider in DEFAULT_FOR.items()
            if os.path.abspath(models.default_model_path(provider, shipped_dir)) == os.path.abspath(entry.path)]


def use(entry: ModelEntry) -> str:
    """Make ``entry`` the model every run uses; a file's contract is checked first (ContractError otherwise)."""
    path = install_model_setting(str(entry.path))
    if entry.origin == FILE and path not in remembered_files():
        _remember(remembered_files() + [path])
    return path


def use_automatic() -> None:
    """Forget the chosen model: runs use the shipped variant that suits the processor."""
    QgsSettings().remove(SETTING_MODEL)


def remove(entry: ModelEntry) -> str:
    """Remove ``entry`` from the list; returns what was done, in words. Shipped models raise ValueError."""
    if entry.origin == SHIPPED:
        raise ValueError(f"{entry.path.name} ships with the plugin and is not removed: the plugin folder is "
                         "replaced as a whole on upgrade. Choose another model instead.")
    was_chosen = os.path.abspath(installed_model_setting() or "/nonexistent") == os.path.abspath(entry.path)
    if was_chosen:
        use_automatic()
    back = " Runs use the shipped model again." if was_chosen else ""
    if entry.origin == DOWNLOADED:
        entry.path.unlink(missing_ok=True)
        return f"Deleted the downloaded {entry.path.name}.{back}"
    _remember([p for p in remembered_files() if os.path.abspath(p) != os.path.abspath(entry.path)])
    return f"Forgot {entry.path}; the file itself is left where it is.{back}"
