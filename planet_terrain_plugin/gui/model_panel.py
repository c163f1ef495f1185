"""The "Model" box of the Planet Terrain panel: the model a run would use, or why there is none.

It shows the model's name, version, classes, bodies, trained ground-sampling range, variant and where it runs
in plain words ("CPU", "NVIDIA GPU (CUDA)"); the figures behind the variant and onnxruntime's own account of the
execution provider are in the tooltip. Without a model it shows the ``NoModelError`` text with an
"Install model file…" button (the plugin's own action); the provider choice is a QGIS setting every run reads.
"""
from __future__ import annotations

import html

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.contract import ContractError
from ..core.models import NoModelError, variant_note
from ..core.session import PROVIDER_ALIASES, TerrainModel
from ..qgis_io.model_choice import SETTING_PROVIDER, load_run_model, provider_setting
from .messages import provider_words

PROVIDER_CHOICES = ("auto",) + tuple(PROVIDER_ALIASES)
ZERO_WIDTH_SPACE = "\u200b"


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
    return (f"<b>{e(c.model_name)}</b> {e(c.model_version)}<br>"
            f"Classes: {e(', '.join(c.class_names))}<br>"
            f"Bodies: {e(', '.join(c.bodies))}; trained on {lo:g}–{hi:g} m/px<br>"
            f"Variant: {e(c.variant.name or 'unknown')}; runs on {e(provider_words(model.provider))}")


def details(model: TerrainModel) -> str:
    """The figures behind the variant and onnxruntime's account of the provider (the label's tooltip)."""
    return (f"{model.contract.model_name} {model.contract.model_version}\n"
            f"Variant: {variant_note(model.contract, model.provider)}\n"
            f"onnxruntime: {model.provider_note}\nFile: {model.path}")


class ModelPanel(QGroupBox):
    """Loads and shows the run model; ``modelChanged`` is emitted after every (re)load, with or without one."""

    modelChanged = pyqtSignal()

    def __init__(self, install_action=None, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.install_action = install_action
        self.model: TerrainModel | None = None
        self.model_error = ""
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
        layout.addWidget(self.label)
        layout.addLayout(provider_row)
        layout.addWidget(self.install_button)

    def refresh(self) -> None:
        """(Re)load the model a run would use and show what it is, or why there is none."""
        self.model, self.model_error = None, ""
        try:
            self.model = load_run_model()
        except NoModelError as exc:
            self.model_error = str(exc)
        except (ContractError, ImportError, ValueError, RuntimeError, OSError) as exc:
            self.model_error = f"The model could not be loaded: {exc}"
        if self.model is None:
            self.label.setText(breakable(self.model_error))
            self.label.setToolTip("")
            self.install_button.show()
        else:
            self.label.setText(describe(self.model))
            self.label.setToolTip(details(self.model))
            self.install_button.hide()
        self.modelChanged.emit()

    def _provider_changed(self, choice: str) -> None:
        """Remember the execution provider choice (a QGIS setting every run reads) and reload the model."""
        QgsSettings().setValue(SETTING_PROVIDER, choice)
        self.refresh()

    def _install(self) -> None:
        if self.install_action is not None:
            self.install_action.trigger()  # the plugin's action; it reloads the panel when done
        else:
            self.refresh()
