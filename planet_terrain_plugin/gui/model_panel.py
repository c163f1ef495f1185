"""The "Model" box of the Planet Terrain panel: the model a run would use, or why there is none.

It shows the model's name, version, classes, bodies, trained ground-sampling range, variant and the
onnxruntime execution provider with the reason it was chosen, or the ``NoModelError`` text with an
"Install model file…" button (the plugin's own action); the provider choice is a QGIS setting every run reads.
"""
from __future__ import annotations

import html

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.contract import ContractError
from ..core.models import NoModelError, variant_note
from ..core.session import PROVIDER_ALIASES, TerrainModel
from ..qgis_io.model_choice import SETTING_PROVIDER, load_run_model, provider_setting

PROVIDER_CHOICES = ("auto",) + tuple(PROVIDER_ALIASES)


def describe(model: TerrainModel) -> str:
    """The model as rich text; every value is escaped (file metadata is never markup)."""
    c, e = model.contract, html.escape
    lo, hi = c.gsd_range_m
    return (f"<b>{e(c.model_name)}</b> {e(c.model_version)}<br>"
            f"Classes: {e(', '.join(c.class_names))}<br>"
            f"Bodies: {e(', '.join(c.bodies))}; trained on {lo:g}–{hi:g} m/px<br>"
            f"Variant: {e(variant_note(c, model.provider))}<br>"
            f"onnxruntime: {e(model.provider_note)}")


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
        provider_row = QHBoxLayout()
        provider_row.addWidget(QLabel("Execution provider", self))
        self.provider_combo = QComboBox(self)
        self.provider_combo.addItems(list(PROVIDER_CHOICES))
        self.provider_combo.setCurrentText(provider_setting().lower())
        self.provider_combo.setToolTip("auto: CUDA, then CoreML, then CPU, whichever starts. "
                                       "The PLANET_TERRAIN_PROVIDER environment variable overrides this.")
        self.provider_combo.currentTextChanged.connect(self._provider_changed)
        provider_row.addWidget(self.provider_combo)
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
            self.label.setText(html.escape(self.model_error))
            self.install_button.show()
        else:
            self.label.setText(describe(self.model))
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
