"""From a rectangle on the canvas to a feature in the "Terrain classes" layer, with honest messages.

Main-thread glue only: find the active raster, place the rectangle in its CRS, run
``planet_terrain:classify_extent`` on it (:class:`~.task.AlgorithmRun`, the code ``qgis_process`` runs) at the
panel's threshold, and on completion append the feature to the raster's result layer and say what happened
(label, confidence, execution provider) in the message bar. Any failure becomes a message-bar error.
"""
from __future__ import annotations

import json
from typing import Callable

from qgis.core import (Qgis, QgsApplication, QgsMessageLog, QgsProject, QgsRasterLayer, QgsRectangle,
                       QgsSettings, QgsTaskManager)

from ..core.contract import ContractError
from ..core.models import NoModelError
from ..qgis_io.layer_info import BODY_CHOICES
from ..qgis_io.model_choice import load_run_model, resolve_model_path
from ..qgis_io.result_layer import append_features, result_layer_for
from ..qgis_io.transform import CrsMismatchError, rect_to_crs
from .run_params import EXTENT_ALGORITHM, RunChoice, extent_parameters
from .task import LOG_TAG, AlgorithmRun

TITLE = "Planet Terrain"
SETTING_BODY = "planet_terrain/body"
MESSAGE_SECONDS = 8


def body_setting() -> str:
    value = str(QgsSettings().value(SETTING_BODY, "auto") or "auto")
    return value if value in BODY_CHOICES else "auto"


def set_body_setting(value: str) -> None:
    if value not in BODY_CHOICES:
        raise ValueError(f"body must be one of {BODY_CHOICES}, got {value!r}")
    QgsSettings().setValue(SETTING_BODY, value)


class ClassifyController:
    """Runs classifications for the map tool; ``listeners`` are called with each run once its results are shown.

    ``threshold`` gives the threshold a rectangle is classified at: the panel's slider once the panel shows a
    model (it sets this), else None (the model's own).
    """

    def __init__(self, iface, project: QgsProject | None = None,
                 task_manager: QgsTaskManager | None = None) -> None:
        self.listeners: list[Callable[[AlgorithmRun], None]] = []  # told when a run has been handled
        self.start_listeners: list[Callable[[AlgorithmRun], None]] = []  # told when a run starts (the panel)
        self.threshold: Callable[[], float | None] = lambda: None
        self.iface = iface
        self.project = project or QgsProject.instance()
        self.task_manager = task_manager or QgsApplication.taskManager()
        self.tasks: list[AlgorithmRun] = []  # held until handled: their context and feedback outlive the task

    # -- messages --------------------------------------------------------------------------------------------
    def message(self, text: str, level: int = Qgis.Info) -> None:
        self.iface.messageBar().pushMessage(TITLE, text, level, MESSAGE_SECONDS)
        QgsMessageLog.logMessage(text, LOG_TAG, level)

    # -- starting --------------------------------------------------------------------------------------------
    def active_raster(self) -> QgsRasterLayer | None:
        layer = self.iface.activeLayer()
        return layer if isinstance(layer, QgsRasterLayer) and layer.isValid() else None

    def classify_canvas_rect(self, rect: QgsRectangle) -> AlgorithmRun | None:
        """Start classifying ``rect`` (canvas CRS) on the active raster; None (with a message) if it cannot."""
        layer = self.active_raster()
        if layer is None:
            self.message("Select a raster layer in the Layers panel, then drag a rectangle over it.", Qgis.Warning)
            return None
        canvas_crs = self.iface.mapCanvas().mapSettings().destinationCrs()
        try:
            extent = rect_to_crs(rect, canvas_crs, layer.crs(), self.project.transformContext())
            return self.classify_layer_extent(layer, extent)
        except CrsMismatchError as exc:
            self.message(str(exc), Qgis.Critical)
            return None

    def classify_layer_extent(self, layer: QgsRasterLayer, extent: QgsRectangle,
                              model_path: str | None = None) -> AlgorithmRun | None:
        """Start classifying ``extent`` (layer CRS) of ``layer``; None (with a message) if it cannot start."""
        try:
            choice = RunChoice(layer, resolve_model_path(model_path), self.threshold(), body_setting())
        except (NoModelError, ContractError, ValueError) as exc:
            self.message(str(exc), Qgis.Critical)
            return None
        run = AlgorithmRun(EXTENT_ALGORITHM, extent_parameters(choice, extent), self.project)
        if run.error is not None:  # the algorithm refused the layer or the extent before starting
            self.message(run.error, Qgis.Critical)
            return None
        self.tasks.append(run)
        run.start(self._complete, self.task_manager)
        for listener in list(self.start_listeners):
            listener(run)
        return run

    def running(self) -> bool:
        """Whether a rectangle is being classified (its run not yet handled)."""
        return bool(self.tasks)

    def cancel_all(self) -> None:
        for run in list(self.tasks):
            run.cancel()

    # -- finishing (main thread) -----------------------------------------------------------------------------
    def _complete(self, run: AlgorithmRun) -> None:
        try:
            self._report(run)
        except Exception as exc:  # noqa: BLE001 -- a bug here must not take QGIS down
            self.message(f"could not show the result: {type(exc).__name__}: {exc}", Qgis.Critical)
        finally:
            if run in self.tasks:
                self.tasks.remove(run)
            for listener in list(self.listeners):
                listener(run)

    def _report(self, run: AlgorithmRun) -> None:
        if run.was_canceled:  # checked first: a cancel before the end wins over a late result
            self.message("Classification cancelled.", Qgis.Info)
            return
        if run.error is not None or run.output is None:
            self.message(f"Classification failed: {run.error or 'no result'}", Qgis.Critical)
            return
        results = run.results
        for note in json.loads(results.get("NOTES") or "[]"):
            self.message(note, Qgis.Info)
        if not results.get("LABEL"):
            self.message(f"Not classified: {results.get('NOT_CLASSIFIED')}", Qgis.Warning)
            return
        model = load_run_model(run.parameters["MODEL"])  # the session the run used, from the cache
        features = list(run.output.getFeatures())
        feature = features[0]
        layer = result_layer_for(self.project, run.output.crs(), model.contract, feature["source_layer"],
                                 run.parameters["INPUT"])
        append_features(layer, features)
        run.result_layer = layer
        self.message(f"{results['LABEL']} (confidence {results['CONFIDENCE']:.2f}) on {feature['body']}, "
                     f"{feature['gsd_m']:.3g} m/px; onnxruntime: {model.provider_note}", Qgis.Success)
