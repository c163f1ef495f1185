"""The Planet Terrain panel: the plugin's main window, docked in QGIS.

What it shows and does, top to bottom:

* the model in use (name, version, classes, bodies, the onnxruntime execution provider and why), or the
  ``NoModelError`` text with an "Install model file…" button (the plugin's own action);
* a raster picker, a mode (drag a rectangle with the plugin's map tool / a grid over the layer or the canvas
  extent / a grid under the polygons of a layer, all or selected), the cell size (metres or pixels; by default
  what ``classify_grid`` derives from the model) and the abstention threshold;
* Run / Cancel and a progress bar: grid modes run ``planet_terrain:classify_grid`` in a
  ``QgsProcessingAlgRunnerTask`` (cancel: the feedback's ``cancel()``), the output is added to the project
  with the class style; in rectangle mode they follow the map tool's tasks (the controller's listeners);
* the result layer and its legend (cells per class, palette colours); moving the threshold re-labels that
  layer from its stored probabilities (``qgis_io.relabel``), without running the model;
* a warning, once per layer, when its cells' ground pixel size is far outside the model's trained range;
* Export…: the current result layer to a file (``qgis_io.export``; the format follows the extension).

Main-thread code only; the slow work happens in QGIS tasks.
"""
from __future__ import annotations

import html
import math
import os
from typing import Callable

from qgis.core import (Qgis, QgsApplication, QgsFeatureRequest, QgsMapLayerProxyModel, QgsMessageLog,
                       QgsProcessingAlgRunnerTask, QgsProcessingContext, QgsProcessingFeatureSourceDefinition,
                       QgsProcessingFeedback, QgsProject, QgsRasterLayer, QgsReferencedRectangle, QgsSettings,
                       QgsVectorLayer, QgsWkbTypes)
from qgis.gui import QgsDockWidget, QgsMapLayerComboBox
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt, pyqtSignal, pyqtSlot
from qgis.PyQt.QtGui import QColor, QIcon, QPixmap
from qgis.PyQt.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog,
                                 QFormLayout, QFrame, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QMessageBox,
                                 QProgressBar, QPushButton, QScrollArea, QSlider, QTableWidget, QTableWidgetItem,
                                 QVBoxLayout, QWidget)

from ..core import grid as core_grid
from ..core.contract import UNKNOWN_LABEL, ContractError, ModelContract
from ..core.models import NoModelError, variant_note
from ..core.session import PROVIDER_ALIASES, TerrainModel
from ..processing.classify_grid import CELL_UNITS, cells_in_refusal
from ..processing.export_labeled_layer import FILE_FILTER
from ..qgis_io import export, layer_info, relabel
from ..qgis_io.fields import gsd_factor
from ..qgis_io.layer_info import BODY_CHOICES, crs_info
from ..qgis_io.model_choice import SETTING_PROVIDER, load_run_model, provider_setting
from ..qgis_io.style import apply_style, class_colour
from .controller import TITLE, body_setting
from .task import LOG_TAG

GRID_ALGORITHM = "planet_terrain:classify_grid"
PROVIDER_CHOICES = ("auto",) + tuple(PROVIDER_ALIASES)
#: Modes, in the order of the mode combo box.
MODE_EXTENT, MODE_GRID_LAYER, MODE_GRID_CANVAS, MODE_POLYGONS = "extent", "grid_layer", "grid_canvas", "polygons"
MODES: tuple[tuple[str, str], ...] = (
    (MODE_EXTENT, "Drag a rectangle on the map"),
    (MODE_GRID_LAYER, "Grid over the layer extent"),
    (MODE_GRID_CANVAS, "Grid over the canvas extent"),
    (MODE_POLYGONS, "Grid under polygons"),
)
#: Threshold slider steps (0..1 in thousandths).
SLIDER_STEPS = 1000
#: A result whose cells are this many times coarser (or finer) than the model's range gets a warning.
GSD_WARN_FACTOR = 2.0
MESSAGE_SECONDS = 10


def format_factor(factor: float) -> str:
    """'40x coarser' / '3.5x finer' for a :func:`qgis_io.fields.gsd_factor` ratio."""
    ratio, word = (factor, "coarser") if factor >= 1 else (1.0 / factor, "finer")
    return f"{ratio:.0f}x {word}" if ratio >= 10 else f"{ratio:.1f}x {word}"


def worst_gsd(layer: QgsVectorLayer, contract: ModelContract) -> tuple[float, float] | None:
    """(factor, gsd_m) of the cell furthest outside ``contract.gsd_range_m``; None when no cell has a gsd."""
    index = layer.fields().indexOf("gsd_m")
    if index < 0:
        return None
    worst = None
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes([index])
    for feature in layer.getFeatures(request):
        try:
            gsd = float(feature.attribute(index))
        except (TypeError, ValueError):
            continue
        factor = gsd_factor(gsd, contract.gsd_range_m)
        if not math.isfinite(factor):
            continue
        far = max(factor, 1.0 / factor)
        if worst is None or far > worst[0]:
            worst = (far, factor, gsd)
    return None if worst is None else (worst[1], worst[2])


class _Feedback(QgsProcessingFeedback):
    """Keeps the algorithm's error messages (reported from the worker thread) for the message bar."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803 -- QGIS's names
        self.errors.append(error)
        super().reportError(error, fatalError)


class TerrainDock(QgsDockWidget):
    """The Planet Terrain panel (see the module docstring)."""

    #: Emitted on the main thread when a run (grid or rectangle) has been handled: True when it gave a layer.
    runFinished = pyqtSignal(bool)

    def __init__(self, iface, controller=None, install_action=None,
                 start_extent_tool: Callable[[], None] | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Planet Terrain", parent)
        self.setObjectName("PlanetTerrainDock")
        self.iface = iface
        self.controller = controller
        self.install_action = install_action
        self.start_extent_tool = start_extent_tool
        self.model: TerrainModel | None = None
        self.model_error = ""
        self.task: QgsProcessingAlgRunnerTask | None = None
        self._context: QgsProcessingContext | None = None
        self._feedback: _Feedback | None = None
        self._run_contract: ModelContract | None = None
        self._run_layer_name = ""
        self._gsd_warned: set[str] = set()
        self._build()
        self._model_checked = False
        if controller is not None:
            controller.listeners.append(self._extent_task_done)
            controller.start_listeners.append(self._extent_task_started)
        # The model is loaded when the panel is first shown, not while QGIS starts.
        self.visibilityChanged.connect(self._first_show)

    def _first_show(self, visible: bool) -> None:
        if visible and not self._model_checked:
            self.refresh_model()

    # -- layout ----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget(self)
        outer = QVBoxLayout(body)

        model_box = QGroupBox("Model", body)
        model_layout = QVBoxLayout(model_box)
        self.model_label = QLabel(model_box)
        self.model_label.setWordWrap(True)
        self.model_label.setTextFormat(Qt.RichText)  # text is escaped: file metadata is never markup
        self.model_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.install_button = QPushButton("Install model file…", model_box)
        self.install_button.clicked.connect(self._install)
        provider_row = QHBoxLayout()
        provider_row.addWidget(QLabel("Execution provider", model_box))
        self.provider_combo = QComboBox(model_box)
        self.provider_combo.addItems(list(PROVIDER_CHOICES))
        self.provider_combo.setCurrentText(provider_setting().lower())
        self.provider_combo.setToolTip("auto: CUDA, then CoreML, then CPU, whichever starts. "
                                       "The PLANET_TERRAIN_PROVIDER environment variable overrides this.")
        self.provider_combo.currentTextChanged.connect(self._provider_changed)
        provider_row.addWidget(self.provider_combo)
        model_layout.addWidget(self.model_label)
        model_layout.addLayout(provider_row)
        model_layout.addWidget(self.install_button)
        outer.addWidget(model_box)

        run_box = QGroupBox("Classify", body)
        form = QFormLayout(run_box)
        self.layer_combo = QgsMapLayerComboBox(run_box)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.layerChanged.connect(self._raster_changed)
        form.addRow("Raster", self.layer_combo)
        self.mode_combo = QComboBox(run_box)
        for key, title in MODES:
            self.mode_combo.addItem(title, key)
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        form.addRow("Mode", self.mode_combo)
        self.polygon_combo = QgsMapLayerComboBox(run_box)
        self.polygon_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.polygon_combo.setAllowEmptyLayer(True)
        self.polygon_combo.setLayer(None)
        self.selected_only = QCheckBox("Selected features only", run_box)
        form.addRow("Polygons", self.polygon_combo)
        form.addRow("", self.selected_only)
        cell_row = QHBoxLayout()
        self.cell_size_spin = QDoubleSpinBox(run_box)
        self.cell_size_spin.setRange(0.0, 1e9)
        self.cell_size_spin.setDecimals(2)
        self.cell_size_spin.setSpecialValueText("auto")
        self.cell_unit_combo = QComboBox(run_box)
        self.cell_unit_combo.addItems(list(CELL_UNITS))
        self.cell_unit_combo.setCurrentText("pixels")
        cell_row.addWidget(self.cell_size_spin, 1)
        cell_row.addWidget(self.cell_unit_combo)
        form.addRow("Cell size", cell_row)
        slider_row = QHBoxLayout()
        self.threshold_slider = QSlider(Qt.Horizontal, run_box)
        self.threshold_slider.setRange(0, SLIDER_STEPS)
        self.threshold_slider.setPageStep(SLIDER_STEPS // 20)
        self.threshold_label = QLabel(run_box)
        self.threshold_label.setMinimumWidth(40)
        self.threshold_slider.valueChanged.connect(self._threshold_moved)
        self.threshold_slider.sliderReleased.connect(self._threshold_released)
        slider_row.addWidget(self.threshold_slider, 1)
        slider_row.addWidget(self.threshold_label)
        form.addRow("Threshold", slider_row)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run", run_box)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel", run_box)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        self.progress = QProgressBar(run_box)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        form.addRow(self.progress)
        outer.addWidget(run_box)

        result_box = QGroupBox("Result", body)
        result_layout = QVBoxLayout(result_box)
        self.result_combo = QgsMapLayerComboBox(result_box)
        self.result_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.result_combo.setAllowEmptyLayer(True)
        self.result_combo.setLayer(None)
        self.result_combo.layerChanged.connect(self._result_changed)
        result_layout.addWidget(self.result_combo)
        self.legend = QTableWidget(0, 2, result_box)
        self.legend.setHorizontalHeaderLabels(["Class", "Cells"])
        self.legend.verticalHeader().setVisible(False)
        self.legend.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.legend.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.legend.setSelectionMode(QAbstractItemView.NoSelection)
        self.legend.setMinimumHeight(150)
        result_layout.addWidget(self.legend, 1)
        self.total_label = QLabel(result_box)
        result_layout.addWidget(self.total_label)
        self.warning_label = QLabel(result_box)
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #b35900;")
        self.warning_label.hide()
        result_layout.addWidget(self.warning_label)
        export_row = QHBoxLayout()
        self.confident_only = QCheckBox("Only confident cells", result_box)
        self.export_button = QPushButton("Export…", result_box)
        self.export_button.clicked.connect(self.export_result)
        export_row.addWidget(self.confident_only)
        export_row.addWidget(self.export_button)
        result_layout.addLayout(export_row)
        outer.addWidget(result_box, 1)
        scroll = QScrollArea(self)  # a short dock scrolls instead of squeezing the widgets onto each other
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        for combo in (self.layer_combo, self.mode_combo, self.polygon_combo, self.result_combo):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)  # long layer names must not widen the panel
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self._mode_changed()
        self._update_buttons()

    # -- model -----------------------------------------------------------------------------------------------
    def refresh_model(self) -> None:
        """(Re)load the model a run would use and show what it is, or why there is none."""
        self._model_checked = True
        self.model, self.model_error = None, ""
        try:
            self.model = load_run_model()
        except NoModelError as exc:
            self.model_error = str(exc)
        except (ContractError, ImportError, ValueError, RuntimeError, OSError) as exc:
            self.model_error = f"The model could not be loaded: {exc}"
        if self.model is None:
            self.model_label.setText(html.escape(self.model_error))
            self.install_button.show()
        else:
            c = self.model.contract
            lo, hi = c.gsd_range_m
            e = html.escape
            self.model_label.setText(
                f"<b>{e(c.model_name)}</b> {e(c.model_version)}<br>"
                f"Classes: {e(', '.join(c.class_names))}<br>"
                f"Bodies: {e(', '.join(c.bodies))}; trained on {lo:g}–{hi:g} m/px<br>"
                f"Variant: {e(variant_note(c, self.model.provider))}<br>"
                f"onnxruntime: {e(self.model.provider_note)}")
            self.install_button.hide()
            self._set_threshold(c.threshold)
        self._raster_changed(self.layer_combo.currentLayer())
        self._update_buttons()

    def _provider_changed(self, choice: str) -> None:
        """Remember the execution provider choice (a QGIS setting every run reads) and reload the model."""
        QgsSettings().setValue(SETTING_PROVIDER, choice)
        self.refresh_model()

    def _install(self) -> None:
        if self.install_action is not None:
            self.install_action.trigger()  # the plugin's action; it calls refresh_model() when done
        else:
            self.refresh_model()

    # -- inputs ----------------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.mode_combo.currentData()

    def set_mode(self, mode: str) -> None:
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode))

    def threshold(self) -> float:
        return self.threshold_slider.value() / SLIDER_STEPS

    def _set_threshold(self, value: float) -> None:
        self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(int(round(value * SLIDER_STEPS)))
        self.threshold_slider.blockSignals(False)
        self.threshold_label.setText(f"{self.threshold():.3f}")

    def _mode_changed(self, *_args) -> None:
        grid = self.mode != MODE_EXTENT
        polygons = self.mode == MODE_POLYGONS
        self.polygon_combo.setEnabled(polygons)
        self.selected_only.setEnabled(polygons)
        self.cell_size_spin.setEnabled(grid)
        self.cell_unit_combo.setEnabled(grid)
        self.run_button.setText("Run" if grid else "Draw a rectangle")

    def default_cell_pixels(self, layer: QgsRasterLayer) -> int | None:
        """The cell size ``classify_grid`` uses when none is given (see ``core.grid.suggest_cell_pixels``)."""
        if self.model is None or not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            return None
        contract = self.model.contract
        native = layer_info.gsd_m(crs_info(layer.crs(), body_setting()), layer.extent(), layer.width(),
                                  layer.height())
        return core_grid.suggest_cell_pixels(contract.input_size, native if math.isfinite(native) else None,
                                             contract.gsd_range_m)

    def _raster_changed(self, layer) -> None:
        pixels = self.default_cell_pixels(layer)
        if pixels is not None:
            self.cell_unit_combo.setCurrentText("pixels")
            self.cell_size_spin.setValue(pixels)
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.task is not None
        ready = self.model is not None and isinstance(self.layer_combo.currentLayer(), QgsRasterLayer)
        self.run_button.setEnabled(ready and not running)  # more rectangles may be dragged while one runs
        self.cancel_button.setEnabled(running or self._rectangles_running())
        self.export_button.setEnabled(isinstance(self.result_layer(), QgsVectorLayer))

    def message(self, text: str, level: int = Qgis.Info) -> None:
        self.iface.messageBar().pushMessage(TITLE, text, level, MESSAGE_SECONDS)
        QgsMessageLog.logMessage(text, LOG_TAG, level)

    # -- running ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        layer = self.layer_combo.currentLayer()
        if self.model is None:
            self.message(self.model_error or "No model is loaded.", Qgis.Critical)
            return
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            self.message("Choose a raster layer in the Planet Terrain panel first.", Qgis.Warning)
            return
        if self.mode == MODE_EXTENT:
            self.iface.setActiveLayer(layer)  # the map tool classifies the active raster
            if self.start_extent_tool is not None:
                self.start_extent_tool()
            self.message(f"Drag a rectangle over '{layer.name()}' (Esc cancels).", Qgis.Info)
            return
        if self.task is not None:
            return
        params = self.grid_parameters(layer)
        if params is None:
            return
        self._start_grid(params, layer)

    def _start_grid(self, params: dict, layer: QgsRasterLayer) -> None:
        """Run ``classify_grid`` as a background task (its refusal of a huge grid comes back to :meth:`_grid_done`)."""
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(GRID_ALGORITHM)
        if algorithm is None:
            self.message(f"The Processing algorithm {GRID_ALGORITHM} is not registered.", Qgis.Critical)
            return
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        feedback = _Feedback()
        task = QgsProcessingAlgRunnerTask(algorithm, params, context, feedback)
        task.executed.connect(self._grid_done)
        task.progressChanged.connect(self._on_progress)
        self._context, self._feedback, self.task = context, feedback, task
        self._run_contract = self.model.contract
        self._run_layer_name = layer.name()
        self._run_params, self._run_layer = params, layer
        self.progress.setValue(0)
        self._update_buttons()
        QgsApplication.taskManager().addTask(task)

    def grid_parameters(self, layer: QgsRasterLayer) -> dict | None:
        """The ``classify_grid`` parameters for the panel's current choices (None, with a message, if invalid)."""
        size = self.cell_size_spin.value()
        params = {
            "INPUT": layer.id(),
            "CELL_SIZE": size if size > 0 else None,
            "CELL_UNIT": CELL_UNITS.index(self.cell_unit_combo.currentText()),
            "MODEL": self.model.path,
            "THRESHOLD": self.threshold(),
            "BODY": BODY_CHOICES.index(body_setting()),
            "OUTPUT": "TEMPORARY_OUTPUT",
        }
        if self.mode == MODE_GRID_CANVAS:
            canvas = self.iface.mapCanvas()
            params["EXTENT"] = QgsReferencedRectangle(canvas.extent(), canvas.mapSettings().destinationCrs())
        elif self.mode == MODE_POLYGONS:
            polygons = self.polygon_combo.currentLayer()
            if not isinstance(polygons, QgsVectorLayer) or polygons.geometryType() != QgsWkbTypes.PolygonGeometry:
                self.message("Choose a polygon layer for the 'Grid under polygons' mode.", Qgis.Warning)
                return None
            selected = self.selected_only.isChecked()
            if selected and polygons.selectedFeatureCount() == 0:
                self.message(f"No feature of '{polygons.name()}' is selected.", Qgis.Warning)
                return None
            params["POLYGONS"] = QgsProcessingFeatureSourceDefinition(polygons.id(), selected)
        return params

    @pyqtSlot(float)
    def _on_progress(self, value: float) -> None:
        self.progress.setValue(int(value))

    def cancel(self) -> None:
        """Cancel the grid run, or the rectangles being classified."""
        if self.task is not None and self._feedback is not None:
            self._feedback.cancel()
        elif self._rectangles_running():
            self.controller.cancel_all()

    def _rectangles_running(self) -> bool:
        return self.controller is not None and self.controller.running()

    def _grid_done(self, ok: bool, results: dict) -> None:
        context, feedback, contract = self._context, self._feedback, self._run_contract
        self.task = self._context = self._feedback = None
        cancelled = feedback is not None and feedback.isCanceled()
        layer = None
        restarted = False
        try:
            output = (results or {}).get("OUTPUT")
            if output and context is not None:
                layer = context.takeResultLayer(output)
            if isinstance(layer, QgsVectorLayer) and layer.isValid() and (ok or layer.featureCount() > 0):
                self._add_result(layer, contract, cancelled)
            else:
                layer = None
                if cancelled:
                    # QGIS 3.22 keeps a cancelled run's temporary layer out of the context: nothing to add.
                    self.message("Classification cancelled; no layer was added.", Qgis.Info)
                else:
                    error = (feedback.errors[-1] if feedback is not None and feedback.errors else "no result")
                    cells = cells_in_refusal(error)
                    if cells is not None and self.confirm_large_grid(cells):
                        self._start_grid(dict(self._run_params, MAX_CELLS=cells), self._run_layer)
                        restarted = True
                        return
                    self.message(f"Classification failed: {error}", Qgis.Critical)
        finally:
            if not restarted:  # a confirmed large grid is still running: its own end will be reported
                self.progress.setValue(100 if layer is not None and not cancelled else 0)
                self._update_buttons()
                self.runFinished.emit(layer is not None)

    def confirm_large_grid(self, cells: int) -> bool:
        """Ask before a grid of more than a million cells (the algorithm refused it before reading anything)."""
        answer = QMessageBox.question(
            self, TITLE, f"This grid has {cells:,} cells. Classifying it will take a long time (about "
            f"{cells / 100 / 3600:.1f} h at 100 cells/s). Run it anyway?\n\nBigger cells, the canvas extent or "
            "polygons give a smaller grid.", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _add_result(self, layer: QgsVectorLayer, contract: ModelContract, cancelled: bool) -> None:
        suffix = ", cancelled: partial" if cancelled else ""
        layer.setName(f"Terrain classes grid ({self._run_layer_name}{suffix})")
        apply_style(layer, contract)
        QgsProject.instance().addMapLayer(layer)
        # results are not polygons to classify under
        self.polygon_combo.setExceptedLayerList(self.polygon_combo.exceptedLayerList() + [layer])
        self.result_combo.setLayer(layer)  # -> _result_changed: legend and gsd warning
        counts = relabel.label_counts(layer)
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        if cancelled:
            self.message(f"Classification cancelled; kept the {layer.featureCount()} cell(s) classified so far "
                         f"({summary}).", Qgis.Info)
        else:
            self.message(f"{layer.featureCount()} cell(s) classified ({summary}).", Qgis.Success)

    def _extent_task_started(self, task) -> None:
        """Controller listener: a rectangle is being classified; the progress bar and Cancel follow its task."""
        if sip.isdeleted(self) or self.task is not None:  # a grid run owns the progress bar
            return
        task.progressChanged.connect(self._on_progress)
        self.progress.setValue(0)
        self._update_buttons()

    def _extent_task_done(self, task) -> None:
        """Controller listener: a rectangle was classified; its layer becomes the current result."""
        if sip.isdeleted(self):
            return
        if self.task is None:  # the progress bar was the rectangles': show how the last one ended
            if not self._rectangles_running():
                self.progress.setValue(100 if not task.was_canceled and task.outcome is not None else 0)
            self._update_buttons()
        if task.was_canceled or task.outcome is None or task.model is None:
            return
        from ..qgis_io.result_layer import find_result_layer

        layer = find_result_layer(QgsProject.instance(), task.job.source.layer_id, task.model.contract)
        if layer is None:
            return
        if self.model is not None and relabel.is_result_layer(layer, self.model.contract) \
                and not math.isclose(self.threshold(), self.model.contract.threshold):
            relabel.relabel_layer(layer, self.model.contract, self.threshold())
        if self.result_combo.currentLayer() is layer:
            self.update_legend()
        else:
            self.result_combo.setLayer(layer)
        self.runFinished.emit(True)

    # -- the result layer ------------------------------------------------------------------------------------
    def result_layer(self) -> QgsVectorLayer | None:
        layer = self.result_combo.currentLayer()
        return layer if isinstance(layer, QgsVectorLayer) and layer.isValid() else None

    def _result_changed(self, *_args) -> None:
        self.update_legend()
        self._warn_gsd()
        self._update_buttons()

    def legend_counts(self) -> dict[str, int]:
        """The counts the legend shows, by class label (read back from the table)."""
        return {self.legend.item(r, 0).text(): int(self.legend.item(r, 1).text())
                for r in range(self.legend.rowCount())}

    def update_legend(self) -> None:
        layer = self.result_layer()
        self.legend.setRowCount(0)
        if layer is None or layer.fields().indexOf(relabel.LABEL_FIELD) < 0:
            self.total_label.setText("" if layer is None else f"'{layer.name()}' is not a Terrain classes layer.")
            return
        counts = relabel.label_counts(layer)
        order = list(self.model.contract.class_names) if self.model is not None else []
        labels = [n for n in order if n in counts] + sorted(n for n in counts if n not in order and n != UNKNOWN_LABEL)
        if UNKNOWN_LABEL in counts:
            labels.append(UNKNOWN_LABEL)
        self.legend.setRowCount(len(labels))
        for row, label in enumerate(labels):
            swatch = QPixmap(14, 14)
            swatch.fill(QColor(class_colour(label)))
            name = QTableWidgetItem(QIcon(swatch), label)
            count = QTableWidgetItem(str(counts[label]))
            count.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
            self.legend.setItem(row, 0, name)
            self.legend.setItem(row, 1, count)
        self.total_label.setText(f"{sum(counts.values())} cell(s) at threshold {self.threshold():.3f}")

    def _warn_gsd(self) -> None:
        layer = self.result_layer()
        self.warning_label.hide()
        if layer is None or self.model is None:
            return
        worst = worst_gsd(layer, self.model.contract)
        if worst is None:
            return
        factor, gsd = worst
        if max(factor, 1.0 / factor) < GSD_WARN_FACTOR:
            return
        lo, hi = self.model.contract.gsd_range_m
        text = (f"'{layer.name()}': cells are {format_factor(factor)} than the training images ({gsd:.3g} m/px; "
                f"the model knows {lo:g}–{hi:g} m/px). Treat the labels with care.")
        self.warning_label.setText(text)
        self.warning_label.show()
        if layer.id() not in self._gsd_warned:
            self._gsd_warned.add(layer.id())
            self.message(text, Qgis.Warning)

    # -- threshold -------------------------------------------------------------------------------------------
    def _threshold_moved(self, _value: int) -> None:
        self.threshold_label.setText(f"{self.threshold():.3f}")
        if not self.threshold_slider.isSliderDown():
            self.relabel()

    def _threshold_released(self) -> None:
        self.relabel()

    def relabel(self) -> None:
        """Re-label the current result layer at the slider's threshold and refresh the legend."""
        layer = self.result_layer()
        if layer is None or self.model is None:
            return
        if not relabel.is_result_layer(layer, self.model.contract):
            self.total_label.setText(f"'{layer.name()}' was not made by {self.model.contract.model_name}; "
                                     "it cannot be re-labelled with this model's classes.")
            return
        try:
            relabel.relabel_layer(layer, self.model.contract, self.threshold())
        except relabel.RelabelError as exc:
            self.message(str(exc), Qgis.Critical)
        self.update_legend()

    # -- export ----------------------------------------------------------------------------------------------
    def ask_export_path(self) -> str:
        layer = self.result_layer()
        start = os.path.join(os.path.expanduser("~"), f"{layer.name() if layer else 'terrain'}.gpkg")
        path, _ = QFileDialog.getSaveFileName(self, "Export terrain classes", start, FILE_FILTER,
                                              options=QFileDialog.DontUseNativeDialog)
        return path

    def export_result(self) -> export.ExportResult | None:
        layer = self.result_layer()
        if layer is None:
            self.message("There is no result layer to export.", Qgis.Warning)
            return None
        path = self.ask_export_path()
        if not path:
            return None
        try:
            # The file dialog has already asked before replacing an existing file.
            result = export.export_layer(layer, path, confident_only=self.confident_only.isChecked(),
                                         overwrite=True,
                                         transform_context=QgsProject.instance().transformContext())
        except export.ExportError as exc:
            self.message(f"Export failed: {exc}", Qgis.Critical)
            return None
        self.message(f"Exported {result.feature_count} feature(s) to {result.path}", Qgis.Success)
        return result

    # -- teardown --------------------------------------------------------------------------------------------
    def clean_up(self) -> None:
        """Cancel a running grid and stop listening (plugin unload)."""
        self.cancel()
        if self.controller is not None and self._extent_task_done in self.controller.listeners:
            self.controller.listeners.remove(self._extent_task_done)
        if self.controller is not None and self._extent_task_started in self.controller.start_listeners:
            self.controller.start_listeners.remove(self._extent_task_started)
