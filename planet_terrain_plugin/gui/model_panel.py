"""The "Model" box of the Planet Terrain panel: the model a run would use, or why there is none.

It shows the model's name, version, classes, bodies, trained ground-sampling range, variant and where it runs
in plain words ("CPU", "NVIDIA GPU (CUDA)"); the figures behind the variant and onnxruntime's own account of the
execution provider are in the tooltip. Without a model it shows the ``NoModelError`` text with an
"Install model file…" button (the plugin's own action); the provider choice is a QGIS setting every run reads.

The *Head* combo offers "none" and the taught heads bound to the model file in use (``model_library``); the one
chosen is the head setting (``model_choice``) the panel's runs and the map tool pass as HEAD, and the model the
panel shows (and styles, relabels and reviews with) is the model with that head. A head taught while the panel
is open is offered at once (``model_library.HEADS``). When the model becomes another file, a head taught on
another file is dropped and ``notice`` says so.
"""
from __future__ import annotations

import html

from qgis.core import QgsSettings
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.contract import ContractError
from ..core.heads import HeadedModel, HeadError
from ..core.models import NoModelError, variant_note
from ..core.session import PROVIDER_ALIASES, TerrainModel
from ..qgis_io import model_library as library
from ..qgis_io.model_choice import (SETTING_PROVIDER, drop_unbound_head, head_for_model, load_run_model,
                                    provider_setting, with_head)
from .messages import provider_words

PROVIDER_CHOICES = ("auto",) + tuple(PROVIDER_ALIASES)
ZERO_WIDTH_SPACE = "\u200b"
NO_HEAD_TIP = ("A head taught on this model answers with its own classes. Teach one with Processing > Planet "
               "Terrain > Teach a head; heads of other model files are listed in Manage models…")


def choice_words(choice: str) -> str:
    """The provider choice as the panel shows it: 'Automatic', 'CPU', 'NVIDIA GPU (CUDA)', ..."""
    return "Automatic" if choice == "auto" else provider_words(PROVIDER_ALIASES[choice])


def breakable(text: str) -> str:
    """``text`` escaped for rich text, with a zero-width space after each _ and / so long names and paths wrap
    in a narrow panel instead of widening it (Qt breaks lines at spaces and hyphens only)."""
    escaped = html.escape(text)
    for char in "_/":
        escaped = escaped.replace(char, char + ZERO_WIDTH_SPACE)
    return escaped


def describe(model: TerrainModel) -> str:
    """The model as rich text, in plain words; every value is escaped (file metadata is never markup)."""
    c, e = model.contract, breakable
    lo, hi = c.gsd_range_m
    taught = (f"Head taught on {e(model.backbone.contract.model_name)} {e(model.backbone.contract.model_version)}<br>"
              if isinstance(model, HeadedModel) else "")
    return (f"<b>{e(c.model_name)}</b> {e(c.model_version)}<br>{taught}"
            f"Classes: {e(', '.join(c.class_names))}<br>"
            f"Bodies: {e(', '.join(c.bodies))}; trained on {lo:g}–{hi:g} m/px<br>"
            f"Variant: {e(c.variant.name or 'unknown')}; runs on {e(provider_words(model.provider))}")


def details(model: TerrainModel) -> str:
    """The figures behind the variant and onnxruntime's account of the provider (the label's tooltip)."""
    return (f"{model.contract.model_name} {model.contract.model_version}\n"
            f"Variant: {variant_note(model.contract, model.provider)}\n"
            f"onnxruntime: {model.provider_note}\nFile: {model.path}")


def head_tip(entry: library.ModelEntry) -> str:
    """A head's classes and cross-validated accuracy (the combo item's tooltip)."""
    accuracy = entry.head.cv.get("accuracy")
    measured = f"cross-validated accuracy {accuracy:.0%}" if accuracy is not None else "accuracy not measured"
    return f"{entry.head.name} {entry.head.version}: {', '.join(entry.head.classes)}; {measured}\n{entry.path}"


class ModelPanel(QGroupBox):
    """Loads and shows the run model; ``modelChanged`` is emitted after every (re)load, with or without one;
    ``notice(text)`` when a head was dropped or could not be used."""

    modelChanged = pyqtSignal()
    notice = pyqtSignal(str)

    def __init__(self, install_action=None, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.install_action = install_action
        self.model: TerrainModel | None = None
        self.model_error = ""
        self.head_path = ""  # the head file the shown model answers with ("" for none)
        layout = QVBoxLayout(self)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.RichText)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.install_button = QPushButton("Install model file…", self)
        self.install_button.clicked.connect(self._install)
        provider_row = QFormLayout()
        provider_row.setRowWrapPolicy(QFormLayout.WrapLongRows)
        self.provider_combo = QComboBox(self)
        for choice in PROVIDER_CHOICES:
            self.provider_combo.addItem(choice_words(choice), choice)
        self.provider_combo.setCurrentIndex(max(0, self.provider_combo.findData(provider_setting().lower())))
        self.provider_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.provider_combo.setMinimumContentsLength(8)  # "Apple Neural Engine / GPU (CoreML)" is elided
        self.provider_combo.setToolTip("Where the model runs (onnxruntime's execution provider). Automatic: NVIDIA "
                                       "GPU (CUDA), then Apple (CoreML), then CPU, whichever starts. The "
                                       "PLANET_TERRAIN_PROVIDER environment variable overrides this.")
        self.provider_combo.currentIndexChanged.connect(
            lambda _i: self._provider_changed(self.provider_combo.currentData()))
        provider_row.addRow("Run on", self.provider_combo)
        self.head_combo = QComboBox(self)
        self.head_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.head_combo.setMinimumContentsLength(8)  # a long head name is elided, not widening the panel
        self.head_combo.activated.connect(lambda _i: self._head_changed(self.head_combo.currentData()))
        provider_row.addRow("Head", self.head_combo)
        layout.addWidget(self.label)
        layout.addLayout(provider_row)
        layout.addWidget(self.install_button)
        library.HEADS.changed.connect(self._heads_changed)

    def refresh(self) -> None:
        """(Re)load the model a run would use, with the chosen head, and show what it is, or why there is none."""
        self.model, self.model_error, self.head_path = None, "", ""
        try:
            self.model = self._with_chosen_head(load_run_model())
        except NoModelError as exc:
            self.model_error = str(exc)
        except (ContractError, ImportError, ValueError, RuntimeError, OSError) as exc:
            self.model_error = f"The model could not be loaded: {exc}"
        self._fill_heads()
        if self.model is None:
            self.label.setText(breakable(self.model_error))
            self.label.setToolTip("")
            self.install_button.show()
        else:
            self.label.setText(describe(self.model))
            self.label.setToolTip(details(self.model))
            self.install_button.hide()
        self.modelChanged.emit()

    def _with_chosen_head(self, model: TerrainModel) -> TerrainModel:
        """``model`` with the chosen head when it was taught on this file; a head of another file is dropped."""
        dropped = drop_unbound_head(model.path)
        if dropped:
            self.notice.emit(dropped)
        self.head_path = head_for_model(model.path)
        try:
            return with_head(model, self.head_path)
        except HeadError as exc:
            self.head_path = ""
            self.notice.emit(f"The head is not used: {exc}")
            return model

    def _fill_heads(self) -> None:
        """"none" and the heads bound to the model file in use (a headed model's path is its backbone's)."""
        self.head_combo.clear()
        self.head_combo.addItem("none", "")
        self.head_combo.setItemData(0, "No taught head: the model's own classes", Qt.ToolTipRole)
        heads = [e for e in library.list_heads() if library.head_holds(e, self.model.path)] if self.model else []
        for entry in heads:
            self.head_combo.addItem(f"{entry.head.name} {entry.head.version}", str(entry.path))
            self.head_combo.setItemData(self.head_combo.count() - 1, head_tip(entry), Qt.ToolTipRole)
        self.head_combo.setCurrentIndex(max(0, self.head_combo.findData(self.head_path)))
        self.head_combo.setEnabled(bool(heads))
        chosen = self.head_combo.currentIndex()
        if chosen > 0:
            self.head_combo.setToolTip(head_tip(heads[chosen - 1]))
        elif heads:
            self.head_combo.setToolTip("Answer with the model's own classes, or with a head taught on this model file")
        else:
            self.head_combo.setToolTip(NO_HEAD_TIP)

    def _head_changed(self, path: str) -> None:
        """Remember the head the user picked; the model is reloaded with it (``_heads_changed``)."""
        entry = next((e for e in library.list_heads() if str(e.path) == path), None) if path else None
        try:
            library.use_head(entry)
        except HeadError as exc:
            self.notice.emit(f"The head is not used: {exc}")
            self.refresh()

    def _heads_changed(self) -> None:
        """A head was taught, installed, chosen or removed elsewhere: offer it, and reload when the choice moved."""
        if sip.isdeleted(self):
            return
        if self.model is not None and head_for_model(self.model.path) != self.head_path:
            self.refresh()
        else:
            self._fill_heads()

    def _provider_changed(self, choice: str) -> None:
        """Remember the execution provider choice (a QGIS setting every run reads) and reload the model."""
        QgsSettings().setValue(SETTING_PROVIDER, choice)
        self.refresh()

    def _install(self) -> None:
        if self.install_action is not None:
            self.install_action.trigger()  # the plugin's action; it reloads the panel when done
        else:
            self.refresh()
