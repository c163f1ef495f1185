"""The model manager: the models this profile has, which one runs, remove, install from a file, download; and
below them the taught heads (:mod:`.head_manager`).

Opened from the *Planet Terrain* menu. What it lists and changes is :mod:`qgis_io.model_library` (shipped,
downloaded, installed from a file; choosing one sets the setting every run reads); *Install model file…* is the
plugin's own action; *Download* fetches the file ``metadata.txt`` offers (:mod:`qgis_io.model_download`) in a
``QgsTask`` with progress and cancel, and only when the user presses it. Choosing another model file drops a
chosen head taught on another file, and the status line says so.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt, QUrl
from qgis.PyQt.QtWidgets import (QDialog, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QVBoxLayout,
                                 QWidget)

from ..core.contract import ContractError
from ..qgis_io import model_library as library
from ..qgis_io.model_download import DownloadError, DownloadOffer, download, part_path, read_offer
from .entry_table import entry_table, fill, select_entry, selected_entry, table_width
from .head_manager import HeadsBox

TITLE = "Planet Terrain models"
COLUMNS = ("In use", "Name", "Version", "Variant", "Size", "Classes", "Bodies", "Scale (m/px)", "From",
           "Default on")
#: The classes column is cut to this width (the full list is in its tooltip and under the table).
CLASSES_WIDTH = 180
#: The dialog widens to show every column, up to this width (then the table scrolls).
MAX_WIDTH = 1280
FROM_WORDS = {library.SHIPPED: "the plugin", library.DOWNLOADED: "downloaded", library.FILE: "your file"}

#: The dialog opened from the menu (kept referenced so Python does not delete it while it is shown).
_OPEN: list["ModelManagerDialog"] = []


class DownloadTask(QgsTask):
    """:func:`model_download.download` on a worker thread; ``path`` or ``error`` when done."""

    def __init__(self, offer: DownloadOffer, folder: Path, on_done: Callable[["DownloadTask"], None]) -> None:
        super().__init__(f"Planet Terrain: downloading {offer.file_name}", QgsTask.CanCancel)
        self.offer, self.folder, self.on_done = offer, folder, on_done
        self.path: Path | None = None
        self.error = ""

    def _progress(self, done: int, total: int | None) -> None:
        if total:
            self.setProgress(100.0 * done / total)

    def run(self) -> bool:
        try:
            self.path = download(self.offer, self.folder, self._progress, self.isCanceled)
        except DownloadError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 -- a failed download must become a message, never a crash
            self.error = f"The download failed: {type(exc).__name__}: {exc}"
        return self.path is not None

    def finished(self, result: bool) -> None:
        callback, self.on_done = self.on_done, None
        if callback is not None:
            callback(self)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _row_texts(entry: library.ModelEntry, in_use: bool) -> list[str]:
    c = entry.contract
    use = "●" if in_use else ""
    if c is None:
        return [use, entry.path.name, "", "", _size(entry.size_bytes), "cannot be read", "", "",
                FROM_WORDS[entry.origin], ""]
    lo, hi = c.gsd_range_m
    return [use, c.model_name, c.model_version, c.variant.name or "", _size(entry.size_bytes),
            ", ".join(c.class_names), ", ".join(c.bodies), f"{lo:g}–{hi:g}", FROM_WORDS[entry.origin],
            ", ".join(library.default_for(entry))]


class ModelManagerDialog(QDialog):
    """Non-modal; ``changed`` is called after the model a run uses may have changed (the panel reloads)."""

    def __init__(self, install_action=None, changed: Callable[[], None] | None = None,
                 parent: QWidget | None = None, offer: DownloadOffer | None = None,
                 downloads: Path | None = None, heads: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(TITLE)
        self.install_action, self.changed = install_action, changed
        self.offer = offer if offer is not None else read_offer()
        self.downloads = downloads or library.download_dir()
        self.entries: list[library.ModelEntry] = []
        self.task: DownloadTask | None = None
        self._build(heads)
        library.HEADS.changed.connect(self._heads_changed)
        self.refresh()

    def _build(self, heads: Path | None) -> None:
        layout = QVBoxLayout(self)
        self.table = entry_table(COLUMNS, self._selection_changed, self)
        self.details = QLabel(self)
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.RichText)
        self.details.setOpenExternalLinks(True)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.use_button = QPushButton("Use this model", self)
        self.auto_button = QPushButton(self)
        self.auto_button.setToolTip("Use the model that ships with the plugin, in the variant that suits the "
                                    "processor (see the 'Default on' column).")
        self.remove_button = QPushButton("Remove", self)
        self.install_button = QPushButton("Install model file…", self)
        self.download_button = QPushButton("Download", self)
        self.cancel_button = QPushButton("Cancel download", self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.use_button.clicked.connect(self.use_selected)
        self.auto_button.clicked.connect(self.use_automatic)
        self.remove_button.clicked.connect(self.remove_selected)
        self.install_button.clicked.connect(self.install_file)
        self.download_button.clicked.connect(self.start_download)
        self.cancel_button.clicked.connect(self.cancel_download)
        choose, get = QHBoxLayout(), QHBoxLayout()
        for button in (self.use_button, self.auto_button, self.remove_button):
            choose.addWidget(button)
        for widget in (self.install_button, self.download_button, self.cancel_button):
            get.addWidget(widget)
        self.heads_box = HeadsBox(self._tell, self, heads)
        for item in (self.table, self.details, choose, get, self.progress, self.heads_box, self.status):
            (layout.addLayout if isinstance(item, QHBoxLayout) else layout.addWidget)(item)
        layout.setStretchFactor(self.table, 3)  # the models' table keeps most of the height, the heads the rest
        layout.setStretchFactor(self.heads_box, 2)
        self.resize(900, 720)

    # -- the list ----------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the models, which one is in use, and what the download offer stands at."""
        self.entries = library.list_models(downloads=self.downloads)
        active = library.active_path()
        in_use = [active is not None and Path(e.path).resolve() == active.resolve() for e in self.entries]
        fill(self.table, [_row_texts(e, used) for e, used in zip(self.entries, in_use)],
             lambda row, col, text: self.entries[row].error or (text if col == COLUMNS.index("Classes")
                                                                else str(self.entries[row].path)))
        classes = COLUMNS.index("Classes")
        self.table.setColumnWidth(classes, min(self.table.columnWidth(classes), CLASSES_WIDTH))
        self.heads_box.refresh(self.entries)
        wanted = max(table_width(self.table), table_width(self.heads_box.table) + 24)  # + the box's margins
        self.resize(max(self.width(), min(wanted, MAX_WIDTH)), self.height())
        automatic = library.is_automatic()
        self.auto_button.setText("Automatic choice (on)" if automatic else "Automatic choice")
        self.auto_button.setEnabled(not automatic)
        self._update_download()
        self._selection_changed()

    def _heads_changed(self) -> None:
        if not sip.isdeleted(self):
            self.heads_box.refresh(self.entries)

    def selected(self) -> library.ModelEntry | None:
        return selected_entry(self.table, self.entries)

    def select_path(self, path: Path) -> None:
        """Select the row of ``path`` (for a caller that just added it)."""
        select_entry(self.table, self.entries, path)

    def _selection_changed(self) -> None:
        entry = self.selected()
        self.use_button.setEnabled(entry is not None and entry.contract is not None)
        self.remove_button.setEnabled(entry is not None and entry.removable)
        self.remove_button.setToolTip(
            "Shipped models stay: the plugin folder is replaced as a whole on upgrade." if entry is not None
            and not entry.removable else "Downloaded files are deleted; your own files are only forgotten.")
        self.details.setText(self._details(entry) if entry is not None else "Select a model to see its details.")

    @staticmethod
    def _details(entry: library.ModelEntry) -> str:
        e = html.escape
        if entry.contract is None:
            return f"<b>{e(entry.path.name)}</b>: {e(entry.error)}"
        card = entry.card()
        link = (f'<a href="{QUrl.fromLocalFile(str(card)).toString()}">model card</a>' if card
                else "no model card")
        return (f"<b>{e(entry.contract.model_name)}</b> {e(entry.contract.model_version)} — {link}<br>"
                f"Classes: {e(', '.join(entry.contract.class_names))}<br>File: {e(str(entry.path))}")

    # -- choosing and removing ---------------------------------------------------------------------------------
    def _tell(self, text: str) -> None:
        self.status.setText(text)

    def _changed(self) -> None:
        """The model runs use may have changed: drop a head taught on another file (saying so), reload."""
        dropped = library.head_dropped()
        if dropped:
            self._tell(f"{self.status.text()} {dropped}".strip())
        self.refresh()
        if self.changed is not None:
            self.changed()

    def use_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        try:
            path = library.use(entry)
        except (ContractError, ImportError) as exc:
            self._tell(f"Not changed: {exc}")
            return
        self._tell(f"Runs now use {Path(path).name}.")
        self._changed()

    def use_automatic(self) -> None:
        library.use_automatic()
        self._tell("Runs use the model that ships with the plugin, in the variant that suits the processor.")
        self._changed()

    def remove_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        if not entry.removable:
            self._tell(f"{entry.path.name} ships with the plugin and is not removed: the plugin folder is "
                       "replaced as a whole on upgrade. Choose another model instead.")
            return
        if entry.origin == library.DOWNLOADED and QMessageBox.question(
                self, TITLE, f"Delete the downloaded {entry.path.name}?") != QMessageBox.Yes:
            return
        self._tell(library.remove(entry))
        self._changed()

    def install_file(self) -> None:
        """The plugin's *Install model file…* (it checks and remembers the file), then the list again."""
        if self.install_action is None:
            self._tell("Install a model file from the Planet Terrain menu.")
            return
        self.install_action.trigger()
        self._changed()

    # -- downloading -------------------------------------------------------------------------------------------
    def _update_download(self) -> None:
        running = self.task is not None
        self.cancel_button.setVisible(running)
        self.progress.setVisible(running)
        if self.offer is None:
            self.download_button.setEnabled(False)
            self.download_button.setToolTip("This plugin version offers no model to download.")
            return
        name = self.offer.file_name
        present = any(e.path.name == name and e.origin != library.FILE for e in self.entries)
        part = part_path(self.downloads / name)
        self.download_button.setText(f"Resume download ({_size(part.stat().st_size)} received)"
                                     if part.is_file() else f"Download {name}")
        self.download_button.setEnabled(not running and not present)
        self.download_button.setToolTip(f"{name} is installed already." if present else
                                        f"From {self.offer.url}, checked against its SHA-256. For GPUs.")

    def start_download(self) -> None:
        """Download the offered model in a QGIS task (the only place a download starts)."""
        if self.offer is None or self.task is not None:
            return
        self.task = DownloadTask(self.offer, self.downloads, self._downloaded)
        self.task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.progress.setValue(0)
        self._tell(f"Downloading {self.offer.file_name}…")
        self._update_download()
        QgsApplication.taskManager().addTask(self.task)

    def cancel_download(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _downloaded(self, task: DownloadTask) -> None:
        self.task = None
        if task.path is None:
            self._tell(task.error or "Download cancelled; what arrived is kept and Download resumes from there.")
            self.refresh()
            return
        self.refresh()
        self.select_path(task.path)
        self.progress.setValue(100)
        try:
            library.use(self.selected())
            text = f"Downloaded and checked {task.path.name}; runs now use it."
        except (ContractError, ImportError) as exc:
            text = f"Downloaded {task.path.name}, but it cannot be used: {exc}"
        self._tell(text)
        self._changed()


def open_manager(install_action=None, changed: Callable[[], None] | None = None,
                 parent: QWidget | None = None) -> ModelManagerDialog:
    """Show the manager, one per session: closing it only hides it, so a download it runs goes on and is
    never started twice."""
    if _OPEN:
        dialog = _OPEN[0]
        dialog.refresh()
    else:
        dialog = ModelManagerDialog(install_action, changed, parent)
        _OPEN.append(dialog)
    dialog.show()
    dialog.raise_()
    return dialog


def close_manager() -> None:
    """Close the manager (plugin unload); a download in progress is cancelled, its part kept."""
    for dialog in list(_OPEN):
        dialog.cancel_download()
        dialog.close()
    _OPEN.clear()
