"""The Planet Terrain panel: the plugin's main window, docked in QGIS.

Three boxes, top to bottom, each its own module: the model (``model_panel``), what to classify and how
(``run_panel``), the result with its legend and export (``result_panel``). This module composes them and runs:

* grid modes run ``planet_terrain:classify_grid`` (:class:`~.task.AlgorithmRun`, the code ``qgis_process``
  runs) with the panel's choices (``run_params``); a grid of more than ``core.grid.LARGE_GRID_CELLS`` cells is
  counted before it starts (``processing.grid_plan.count_cells``) and runs only if the user agrees; the output
  is added to the project with the class style;
* rectangle mode hands over to the plugin's map tool, whose runs (the controller's) classify at the panel's
  threshold; the progress bar and Cancel follow them too (the controller's listeners).

Main-thread code only; the slow work happens in QGIS tasks.
"""
from __future__ import annotations

import time
from typing import Callable

from qgis.core import Qgis, QgsProject, QgsVectorLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt, pyqtSignal, pyqtSlot
from qgis.PyQt.QtWidgets import QComboBox, QFrame, QMessageBox, QScrollArea, QVBoxLayout, QWidget

from ..core import grid as core_grid
from ..core.contract import ModelContract
from ..core.session import TerrainModel
from ..processing.classify_grid import too_many_cells_message
from ..processing.grid_plan import GRID_ALGORITHM, count_cells
from ..qgis_io.style import apply_style
from .controller import TITLE, body_setting
from .grid_outcome import class_summary, empty_grid_message, grid_message
from .messages import RunMessages, duration_words, eta_text
from .model_panel import ModelPanel
from .result_panel import ResultPanel
from .review_panel import ReviewPanel
from .run_panel import MODE_EXTENT, GridChoiceError, RunPanel
from .run_params import RunChoice, grid_parameters
from .task import AlgorithmRun
from .why_panel import WhyPanel


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
        self.start_extent_tool = start_extent_tool
        self.grid_run: AlgorithmRun | None = None
        self._grid_about: tuple[str, ModelContract] | None = None  # the raster's name and the model, at the start
        self._grid_started = 0.0  # time.monotonic() at the start of the grid run
        self.cells_per_second: float | None = None  # measured on the last grid run: the next one's estimate
        # One message line for the panel and the map tool: a run's message replaces the previous run's.
        self.messages = controller.messages if controller is not None else RunMessages(iface.messageBar)
        self._build(install_action)
        self._model_checked = False
        if controller is not None:
            controller.listeners.append(self._extent_run_done)
            controller.start_listeners.append(self._extent_run_started)
            controller.threshold = self.run_threshold
            controller.panel_raster = self.run_box.raster
        # The model is loaded when the panel is first shown, not while QGIS starts.
        self.visibilityChanged.connect(self._first_show)

    def _first_show(self, visible: bool) -> None:
        if visible and not self._model_checked:
            self.refresh_model()

    def _build(self, install_action) -> None:
        body = QWidget(self)
        outer = QVBoxLayout(body)
        self.model_box = ModelPanel(install_action, body)
        self.model_box.modelChanged.connect(self._model_changed)
        self.model_box.notice.connect(lambda text: self.message(text, Qgis.Warning))
        self.run_box = RunPanel(body)
        self.run_box.layer_combo.layerChanged.connect(self._update_buttons)
        self.run_box.run_button.clicked.connect(self.run)
        self.run_box.cancel_button.clicked.connect(self.cancel)
        self.result_box = ResultPanel(self.message, body)
        self.result_box.layerChanged.connect(self._update_buttons)
        self.run_box.thresholdChanged.connect(self.result_box.relabel)
        self.review_box = ReviewPanel(self.result_layer, lambda: self.model, self.message, body)
        self.result_box.layerChanged.connect(self.review_box.refresh)
        self.model_box.modelChanged.connect(self.review_box.refresh)  # a head brings its own labels
        self.review_box.reviewed.connect(self.result_box.update_legend)
        self.why_box = WhyPanel(self.result_layer, lambda: self.model, self.threshold, self.message,
                                self.iface.activeLayer, body)
        self.result_box.layerChanged.connect(self.why_box.refresh)
        self.model_box.modelChanged.connect(self.why_box.refresh)
        if hasattr(self.iface, "currentLayerChanged"):
            self.iface.currentLayerChanged.connect(self.why_box.refresh)
        outer.addWidget(self.model_box)
        outer.addWidget(self.run_box)
        outer.addWidget(self.result_box, 1)
        outer.addWidget(self.review_box)
        outer.addWidget(self.why_box)
        scroll = QScrollArea(self)  # a short dock scrolls instead of squeezing the widgets onto each other
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        for combo in (self.run_box.layer_combo, self.run_box.mode_combo, self.run_box.polygon_combo,
                      self.result_box.result_combo):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)  # long layer names are elided: they must not widen the panel
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self._update_buttons()

    # -- model -----------------------------------------------------------------------------------------------
    @property
    def model(self) -> TerrainModel | None:
        return self.model_box.model

    def refresh_model(self) -> None:
        """(Re)load the model a run would use and show what it is, or why there is none."""
        self._model_checked = True
        self.model_box.refresh()

    def _model_changed(self) -> None:
        model = self.model
        self.run_box.model = model
        self.result_box.contract = model.contract if model is not None else None
        if model is not None:
            self.run_box.set_threshold(model.contract.threshold)
            self.result_box.threshold = model.contract.threshold
        self.run_box.raster_changed()
        self._update_buttons()

    # -- state -----------------------------------------------------------------------------------------------
    def threshold(self) -> float:
        return self.run_box.threshold()

    def run_threshold(self) -> float | None:
        """The threshold a run uses: the slider's once a model is shown (None: the model's own)."""
        return None if sip.isdeleted(self) or self.model is None else self.threshold()

    def result_layer(self) -> QgsVectorLayer | None:
        return self.result_box.result_layer()

    def _rectangles_running(self) -> bool:
        return self.controller is not None and self.controller.running()

    def _update_buttons(self, *_args) -> None:
        ready = self.model is not None and self.run_box.raster() is not None
        running = self.grid_run is not None
        self.run_box.set_running(ready, running, running or self._rectangles_running())
        self.result_box.export_button.setEnabled(self.result_layer() is not None)

    def message(self, text: str, level: int = Qgis.Info, details: str = "") -> None:
        self.messages.show(text, level, details)

    # -- running ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        layer = self.run_box.raster()
        if self.model is None:
            self.message(self.model_box.model_error or "No model is loaded.", Qgis.Critical)
            return
        if layer is None:
            self.message("Choose a raster layer in the Planet Terrain panel first.", Qgis.Warning)
            return
        if self.run_box.mode == MODE_EXTENT:
            self.iface.setActiveLayer(layer)  # the map tool classifies the active raster
            if self.start_extent_tool is not None:
                self.start_extent_tool()
            self.message(f"Drag a rectangle over '{layer.name()}' (Esc cancels).", Qgis.Info)
            return
        if self.grid_run is not None:
            return
        try:
            grid = self.run_box.grid_choice(self.iface.mapCanvas())
        except GridChoiceError as exc:
            self.message(str(exc), Qgis.Warning)
            return
        params = grid_parameters(RunChoice(layer, self.model.path, self.threshold(), body_setting()), grid)
        cells = count_cells(params, self.model)  # None: refused; the run says why
        if cells is not None and cells > core_grid.LARGE_GRID_CELLS:
            if not self.confirm_large_grid(cells):
                self.message(f"Not run: {too_many_cells_message(cells, core_grid.LARGE_GRID_CELLS)}",
                             Qgis.Warning)
                self.runFinished.emit(False)
                return
            params["MAX_CELLS"] = cells
        self._start_grid(params)

    def confirm_large_grid(self, cells: int) -> bool:
        """Ask before a grid of more than a million cells (the time from the speed the last grid measured)."""
        speed = self.cells_per_second
        time_words = (f"about {duration_words(cells / speed)} at the {speed:.0f} cells/s measured on the last "
                      "grid" if speed else "the progress bar shows the time left once it runs")
        answer = QMessageBox.question(
            self, TITLE, f"This grid has {cells:,} cells. Classifying it will take a long time ({time_words}). "
            "Run it anyway?\n\nBigger cells, the canvas extent or polygons give a smaller grid.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _start_grid(self, params: dict) -> None:
        run = AlgorithmRun(GRID_ALGORITHM, params, QgsProject.instance())
        if run.error is not None:
            self.message(f"Classification failed: {run.error}", Qgis.Critical)
            self.runFinished.emit(False)
            return
        self.grid_run = run
        self._grid_about = (self.run_box.raster().name(), self.model.contract)
        run.connect_progress(self._on_progress)
        self.run_box.progress.setValue(0)
        self._grid_started = time.monotonic()
        self._update_buttons()
        run.start(self._grid_done)

    @pyqtSlot(float)
    def _on_progress(self, value: float) -> None:
        if sip.isdeleted(self):
            return
        self.run_box.progress.setValue(int(value))
        if self.grid_run is not None:  # a grid: the time left, from the speed measured so far
            eta = eta_text(value / 100.0, time.monotonic() - self._grid_started)
            self.run_box.progress.setFormat(f"%p% · {eta}" if eta else "%p%")

    def cancel(self) -> None:
        """Cancel the grid run, or the rectangles being classified."""
        if self.grid_run is not None:
            self.grid_run.cancel()
        elif self._rectangles_running():
            self.controller.cancel_all()

    def _grid_done(self, run: AlgorithmRun) -> None:
        if sip.isdeleted(self):
            return
        self.grid_run = None
        self._measure_speed(run.results)
        self.run_box.progress.setFormat("%p%")
        layer = run.output if run.output is not None and run.output.featureCount() > 0 else None
        try:
            if layer is not None:
                self._add_result(layer, run)
            elif run.was_canceled:
                self.message("Classification cancelled before any cell was classified; no layer was added.",
                             Qgis.Info)
            elif run.succeeded:
                self.message(empty_grid_message(run.results, self.run_box.raster()), Qgis.Warning)
            else:
                self.message(f"Classification failed: {run.error or 'no result'}", Qgis.Critical)
        finally:
            self.run_box.progress.setValue(100 if layer is not None and not run.was_canceled else 0)
            self._update_buttons()
            self.runFinished.emit(layer is not None)

    def _measure_speed(self, results: dict) -> None:
        visited = sum(int(results.get(key) or 0) for key in ("CELLS_CLASSIFIED", "CELLS_NODATA", "CELLS_OUTSIDE"))
        elapsed = time.monotonic() - self._grid_started
        if visited > 0 and elapsed > 0:
            self.cells_per_second = visited / elapsed

    def _add_result(self, layer: QgsVectorLayer, run: AlgorithmRun) -> None:
        name, contract = self._grid_about
        suffix = ", cancelled: partial" if run.was_canceled else ""
        layer.setName(f"Terrain classes grid ({name}{suffix})")
        apply_style(layer, contract)
        QgsProject.instance().addMapLayer(layer)
        run.result_layer = layer
        polygons = self.run_box.polygon_combo  # results are not polygons to classify under
        polygons.setExceptedLayerList(polygons.exceptedLayerList() + [layer])
        self._show_result(layer, run)  # legend and gsd warning
        self.message(grid_message(layer, contract, run.was_canceled),
                     Qgis.Info if run.was_canceled else Qgis.Success, class_summary(layer))

    def _extent_run_started(self, run: AlgorithmRun) -> None:
        """Controller listener: a rectangle is being classified; the progress bar and Cancel follow its run."""
        if sip.isdeleted(self) or self.grid_run is not None:  # a grid run owns the progress bar
            return
        run.connect_progress(self._on_progress)
        self.run_box.progress.setValue(0)
        self._update_buttons()

    def _extent_run_done(self, run: AlgorithmRun) -> None:
        """Controller listener: a rectangle was classified; its layer becomes the current result."""
        if sip.isdeleted(self):
            return
        if self.grid_run is None:  # the progress bar was the rectangles': show how the last one ended
            if not self._rectangles_running():
                self.run_box.progress.setValue(100 if run.succeeded else 0)
            self._update_buttons()
        if run.result_layer is None:
            return
        self._show_result(run.result_layer, run)
        self.runFinished.emit(True)

    def _show_result(self, layer: QgsVectorLayer, run: AlgorithmRun) -> None:
        """Make ``layer`` the current result; its legend names the threshold the run classified at."""
        threshold = run.parameters.get("THRESHOLD")
        if isinstance(threshold, (int, float)):
            self.result_box.threshold = float(threshold)
        self.result_box.show_layer(layer)

    # -- teardown --------------------------------------------------------------------------------------------
    def clean_up(self) -> None:
        """Cancel a running grid and stop listening (plugin unload)."""
        self.cancel()
        self.why_box.clean_up()
        if self.controller is None:
            return
        if self._extent_run_done in self.controller.listeners:
            self.controller.listeners.remove(self._extent_run_done)
        if self._extent_run_started in self.controller.start_listeners:
            self.controller.start_listeners.remove(self._extent_run_started)
        self.controller.threshold = lambda: None
