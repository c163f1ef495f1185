"""The models this QGIS profile has: shipped with the plugin, downloaded on request, or installed from a file.

* shipped: the variants in the plugin's ``models/`` folder (``core.models``); an upgrade replaces that folder,
  so they are never removed from here;
* downloaded: files in ``<profile>/planet_terrain/models`` (:func:`download_dir`), which the plugin put there
  when the user pressed Download; removing one deletes it;
* installed from a file: the user's own files, remembered in the ``planet_terrain/model_files`` setting (and
  whichever file is the chosen model); removing one forgets it, the file stays where it is.

The model a run uses is still :func:`model_choice.resolve_model_path`: choosing one here sets the same setting
(through :func:`model_choice.install_model_setting`, which checks its contract); choosing another model file
drops a chosen head that was taught on another file (:func:`model_choice.drop_unbound_head`).

Taught heads (``kind`` "head", :func:`list_heads`) are remembered the same way as the user's model files:

* a head file ``teach_head`` wrote or *Install head from file…* added is remembered by its path in the
  ``planet_terrain/head_files`` setting (:func:`remember_head`); removing it forgets it, the file stays;
* a head ``teach_head`` wrote to a Processing temporary file, which QGIS deletes on exit, is first copied into
  ``<profile>/planet_terrain/heads`` (:func:`heads_dir`): those copies are the plugin's own files, and removing
  one deletes it.

:data:`HEADS` tells listeners (the panel's head picker, the manager) when the remembered heads change.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsApplication, QgsProcessingUtils, QgsSettings
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..core import models
from ..core.contract import ContractError, ModelContract, read_contract
from ..core.heads import HEAD_SUFFIX, Head, HeadError, read_head
from ..core.newfile import write_new
from .model_choice import (SETTING_MODEL, choose_head, drop_unbound_head, head_setting, install_model_setting,
                           installed_model_setting, is_bound, resolve_model_path)

SETTING_FILES = "planet_terrain/model_files"
SETTING_HEAD_FILES = "planet_terrain/head_files"
SHIPPED, DOWNLOADED, FILE, KEPT = "shipped", "downloaded", "file", "kept"
MODEL, HEAD = "model", "head"
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
    kind: str = MODEL
    head: Head | None = None  # a head entry's head (None when its file cannot be read: ``error``)

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


def remembered_files(key: str = SETTING_FILES) -> list[str]:
    value = QgsSettings().value(key, []) or []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _remember(paths: list[str], key: str = SETTING_FILES) -> None:
    QgsSettings().setValue(key, paths)


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


def head_dropped() -> str:
    """After the run model changed: drop a chosen head taught on another file; what was done, in words."""
    active = active_path()
    dropped = drop_unbound_head(str(active)) if active is not None else ""
    if dropped:
        HEADS.changed.emit()
    return dropped


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


# -- taught heads ----------------------------------------------------------------------------------------------
class HeadsNotifier(QObject):
    """``changed`` is emitted when a head is remembered, chosen or removed (from any thread: queued to the
    main thread's listeners)."""

    changed = pyqtSignal()


HEADS = HeadsNotifier()


def heads_dir() -> Path:
    """Where the plugin keeps the heads it copied (from Processing temporaries): the profile, kept on upgrade."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "planet_terrain" / "heads"


def _head_entry(path: Path, origin: str) -> ModelEntry:
    try:
        return ModelEntry(path, origin, None, kind=HEAD, head=read_head(str(path)))
    except HeadError as exc:
        return ModelEntry(path, origin, None, str(exc), kind=HEAD)


def list_heads(folder: Path | None = None) -> list[ModelEntry]:
    """Every known head: the plugin's own copies in ``folder`` (:func:`heads_dir`), then the remembered files
    (the chosen one included)."""
    folder = folder or heads_dir()
    found: dict[str, tuple[Path, str]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        found.setdefault(os.path.abspath(path), (path, KEPT))
    chosen = head_setting()
    for name in remembered_files(SETTING_HEAD_FILES) + ([chosen] if chosen else []):
        found.setdefault(os.path.abspath(name), (Path(name), FILE))
    return [_head_entry(path, origin) for path, origin in found.values()]


def head_holds(entry: ModelEntry, model_path: str | os.PathLike | None) -> bool:
    """Whether ``entry``'s head was taught on the file ``model_path`` (so it can run on it)."""
    return entry.head is not None and model_path is not None and is_bound(entry.head, str(model_path))


def is_temporary(path: str) -> bool:
    """Whether ``path`` lies in Processing's temporary folder, which QGIS empties on exit."""
    temp = os.path.abspath(QgsProcessingUtils.tempFolder())
    return os.path.commonpath([temp, os.path.abspath(path)]) == temp


def remember_head(path: str, folder: Path | None = None) -> str:
    """Offer the head file ``path`` in the manager and the panel from now on (HeadError for a bad file); returns
    the path remembered: a copy in :func:`heads_dir` when ``path`` is a Processing temporary."""
    head = read_head(path)
    path = os.path.abspath(path)
    if is_temporary(path):
        folder = folder or heads_dir()
        folder.mkdir(parents=True, exist_ok=True)
        stem = os.path.basename(path)[:-len(HEAD_SUFFIX)] if path.endswith(HEAD_SUFFIX) else head.name
        target = folder / f"{stem}{HEAD_SUFFIX}"
        n = 1
        while target.exists():
            n += 1
            target = folder / f"{stem}-{n}{HEAD_SUFFIX}"
        with open(path, "rb") as fh:
            path = write_new(str(target), fh.read())
    elif path not in remembered_files(SETTING_HEAD_FILES):
        _remember(remembered_files(SETTING_HEAD_FILES) + [path], SETTING_HEAD_FILES)
    HEADS.changed.emit()
    return path


def use_head(entry: ModelEntry | None) -> str:
    """Make ``entry``'s head the one runs use (None: no head); HeadError when it cannot run on the model in
    use. Returns what was done, in words."""
    if entry is None:
        choose_head(None)
        HEADS.changed.emit()
        return "Runs use the model's own classes (no head)."
    active = active_path()
    if entry.head is None or not head_holds(entry, active):
        raise HeadError(entry.error or f"the head '{entry.head.name}' was taught on "
                        f"{entry.head.backbone.get('model_name')} {entry.head.backbone.get('model_version')}, another "
                        "model file than the one in use; choose that model first")
    choose_head(str(entry.path))
    HEADS.changed.emit()
    return f"Runs now use the head '{entry.head.name}' {entry.head.version} ({', '.join(entry.head.classes)})."


def remove_head(entry: ModelEntry) -> str:
    """Forget ``entry`` (delete it only when it is the plugin's own copy); returns what was done, in words."""
    path = os.path.abspath(entry.path)
    was_chosen = head_setting() and os.path.abspath(head_setting()) == path
    if was_chosen:
        choose_head(None)
    back = " Runs use the model's own classes again." if was_chosen else ""
    _remember([p for p in remembered_files(SETTING_HEAD_FILES) if os.path.abspath(p) != path], SETTING_HEAD_FILES)
    if entry.origin == KEPT:
        entry.path.unlink(missing_ok=True)
        done = f"Deleted {entry.path.name}, the plugin's own copy of a head taught to a temporary file.{back}"
    else:
        done = f"Forgot the head {entry.path}; the file itself is left where it is.{back}"
    HEADS.changed.emit()
    return done
