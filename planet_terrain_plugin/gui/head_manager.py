"""The model manager's *Taught heads* box: the heads this profile knows, which one runs, install, remove.

What it lists and changes is :mod:`qgis_io.model_library` (heads remembered by path, or the plugin's own copies
of heads taught to a Processing temporary). A head is bound to the model file it was taught on: one taught on
another file than the model in use is listed as such and cannot be chosen until that model is. Choosing one
sets the head setting the panel and the map tool read (``model_choice``).
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.heads import HEAD_SUFFIX, HeadError
from ..core.newfile import NewFileError
from ..qgis_io import model_library as library
from ..qgis_io.model_choice import head_setting
from .entry_table import entry_table, fill, select_entry, selected_entry

HEAD_COLUMNS = ("In use", "Name", "Version", "Classes", "Bodies", "Taught on", "Size", "CV accuracy", "From")
HEAD_FROM_WORDS = {library.FILE: "your file", library.KEPT: "kept by the plugin"}
NOT_BOUND = "another model file"


def _size(n: int) -> str:
    return f"{n / 1e3:.0f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


def taught_on(entry: library.ModelEntry, models: list[library.ModelEntry], active: Path | None) -> tuple[str, str]:
    """('<model> <version> (the model in use)' or '... (another model file)': a model of the same name and version
    may be another file, such as another variant; and the bodies of the model in use, for a head bound to it)."""
    backbone = entry.head.backbone
    name = f"{backbone.get('model_name')} {backbone.get('model_version')}"
    if library.head_holds(entry, active):
        bodies = next((m.contract.bodies for m in models if m.contract is not None and active is not None
                       and m.path.resolve() == active.resolve()), ())
        return f"{name} (the model in use)", ", ".join(bodies)
    return f"{name} ({NOT_BOUND})", ""


def head_row(entry: library.ModelEntry, models: list[library.ModelEntry], active: Path | None) -> list[str]:
    """The texts of one row of the heads table."""
    chosen = head_setting()
    use = "●" if chosen and Path(chosen).resolve() == entry.path.resolve() else ""
    origin = HEAD_FROM_WORDS[entry.origin]
    if entry.head is None:
        return [use, entry.path.name, "", "cannot be read", "", "", _size(entry.size_bytes), "", origin]
    head = entry.head
    where, bodies = taught_on(entry, models, active)
    accuracy = head.cv.get("accuracy")
    cv = f"{accuracy:.0%} ({head.cv.get('folds')} folds)" if accuracy is not None else "not measured"
    return [use, head.name, head.version, ", ".join(head.classes), bodies, where, _size(entry.size_bytes), cv,
            origin]


class HeadsBox(QGroupBox):
    """The heads table and its buttons; ``tell(text)`` shows what was done. Whoever shows the box refreshes it
    on ``model_library.HEADS.changed`` (every change below emits it)."""

    def __init__(self, tell: Callable[[str], None], parent: QWidget | None = None,
                 folder: Path | None = None) -> None:
        super().__init__("Taught heads", parent)
        self.tell, self.folder = tell, folder
        self.entries: list[library.ModelEntry] = []
        self.table = entry_table(HEAD_COLUMNS, self._selection_changed, self)
        self.details = QLabel(self)
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.RichText)
        self.use_button = QPushButton("Use this head", self)
        self.none_button = QPushButton("No head", self)
        self.none_button.setToolTip("Runs answer with the model's own classes.")
        self.remove_button = QPushButton("Remove head", self)
        self.install_button = QPushButton("Install head from file…", self)
        self.install_button.setToolTip(f"Add a head file ({HEAD_SUFFIX}) written by teach_head or `teach`; the file "
                                       "stays where it is.")
        self.use_button.clicked.connect(self.use_selected)
        self.none_button.clicked.connect(lambda: self.tell(library.use_head(None)))
        self.remove_button.clicked.connect(self.remove_selected)
        self.install_button.clicked.connect(lambda: self.install_file())
        buttons = QHBoxLayout()
        for button in (self.use_button, self.none_button, self.remove_button, self.install_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.details)
        layout.addLayout(buttons)

    def refresh(self, models: list[library.ModelEntry]) -> None:
        """Re-read the heads; ``models`` are the manager's (for the bodies of the model a head is bound to)."""
        self.entries = library.list_heads(self.folder)
        active = library.active_path()
        fill(self.table, [head_row(e, models, active) for e in self.entries],
             lambda row, _col, _text: self.entries[row].error or str(self.entries[row].path))
        self.none_button.setEnabled(bool(head_setting()))
        self._selection_changed()

    def selected(self) -> library.ModelEntry | None:
        return selected_entry(self.table, self.entries)

    def _selection_changed(self) -> None:
        entry = self.selected()
        usable = entry is not None and library.head_holds(entry, library.active_path())
        self.use_button.setEnabled(usable)
        self.use_button.setToolTip("" if usable or entry is None else
                                   "This head was taught on another model file: choose that model first.")
        self.remove_button.setEnabled(entry is not None)
        self.remove_button.setToolTip("Heads the plugin kept (from a temporary file) are deleted; your own files "
                                      "are only forgotten.")
        self.details.setText(self._details(entry) if entry is not None else "Select a head to see its details.")

    @staticmethod
    def _details(entry: library.ModelEntry) -> str:
        e = html.escape
        if entry.head is None:
            return f"<b>{e(entry.path.name)}</b>: {e(entry.error)}"
        head, cv = entry.head, entry.head.cv
        per_class = cv.get("per_class_accuracy") or {}
        accuracy = ", ".join(f"{e(n)} {a:.0%}" for n, a in per_class.items()) or e(cv.get("note", "not measured"))
        examples = ", ".join(f"{e(n)} {c}" for n, c in (cv.get("examples") or {}).items())
        return (f"<b>{e(head.name)}</b> {e(head.version)}<br>"
                f"Cross-validated accuracy per class: {accuracy}<br>Examples: {examples}<br>"
                f"Taught on: {e(str(head.backbone.get('model_name')))} {e(str(head.backbone.get('model_version')))} "
                f"(SHA-256 {e(str(head.backbone.get('sha256'))[:12])}…)<br>File: {e(str(entry.path))}")

    def use_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        try:
            text = library.use_head(entry)
        except HeadError as exc:
            self.tell(f"Not changed: {exc}")
            return
        self.tell(text)

    def remove_selected(self) -> None:
        entry = self.selected()
        if entry is not None:
            self.tell(library.remove_head(entry))

    def install_file(self, path: str | None = None) -> str | None:
        """Remember a head file (asked for when ``path`` is None) after reading it; a bad file gets a message."""
        path = path or QFileDialog.getOpenFileName(self, "Planet Terrain head", "",
                                                   f"Head files (*{HEAD_SUFFIX} *.json)")[0]
        if not path:
            return None
        try:
            path = library.remember_head(path, self.folder)
        except (HeadError, NewFileError) as exc:
            self.tell(f"Not installed: {exc}")
            return None
        self.tell(f"Installed the head {Path(path).name}.")
        select_entry(self.table, self.entries, path)
        return path
