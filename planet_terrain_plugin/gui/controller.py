"""From a rectangle on the canvas to a feature in the "Terrain classes" layer, with honest messages.

Main-thread glue only: find the active raster, place the rectangle in its CRS, start a :class:`ClassifyTask`,
and on completion append the feature and say what happened (label, confidence, execution provider) in the
message bar. Any failure becomes a message-bar error.
"""
from __future__ import annotations

from typing import Callable

from qgis.core import (Qgis, QgsApplication, QgsMessageLog, QgsProject, QgsRasterLayer, QgsRectangle,
                       QgsSettings, QgsTaskManager)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QTimer

from ..core.contract import ContractError
from ..core.models import NoModelError
from ..qgis_io import fields as result_fields
from ..qgis_io.layer_info import BODY_CHOICES, crs_info
from ..qgis_io.model_choice import resolve_model_path
from ..qgis_io.raster_read import ExtentError, raster_source
from ..qgis_io.result_layer import append_features, result_layer_for
from ..qgis_io.transform import CrsMismatchError, rect_to_crs
from .task import LOG_TAG, ClassifyJob, ClassifyTask

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
    """Runs classifications for the map tool; ``listeners`` are called with each task once its results are shown.

    A plain object, not a QObject: it is referenced from its tasks, and a Python-owned QObject in such a cycle
    would be deleted on the C++ side whenever Python's cyclic garbage collector happens to run.
    """

    def __init__(self, iface, project: QgsProject | None = None,
                 task_manager: QgsTaskManager | None = None) -> None:
        self.listeners: list[Callable[[ClassifyTask], None]] = []  # told when a task has been handled
        self.start_listeners: list[Callable[[ClassifyTask], None]] = []  # told when a task starts (the panel)
        self.iface = iface
        self.project = project or QgsProject.instance()
        self.task_manager = task_manager or QgsApplication.taskManager()
        self.tasks: list[ClassifyTask] = []  # Python must hold its tasks, or PyQt may delete them mid-run
        self.last_provider_note = ""

    # -- messages --------------------------------------------------------------------------------------------
    def message(self, text: str, level: int = Qgis.Info) -> None:
        self.iface.messageBar().pushMessage(TITLE, text, level, MESSAGE_SECONDS)
        QgsMessageLog.logMessage(text, LOG_TAG, level)

    # -- starting --------------------------------------------------------------------------------------------
    def active_raster(self) -> QgsRasterLayer | None:
        layer = self.iface.activeLayer()
        return layer if isinstance(layer, QgsRasterLayer) and layer.isValid() else None

    def classify_canvas_rect(self, rect: QgsRectangle) -> ClassifyTask | None:
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
                              model_path: str | None = None) -> ClassifyTask | None:
        """Start classifying ``extent`` (layer CRS) of ``layer``; None (with a message) if it cannot start."""
        try:
            path = resolve_model_path(model_path)
            job = ClassifyJob(raster_source(layer), extent, path, crs_info(layer.crs(), body_setting()))
        except (NoModelError, ContractError, ExtentError, ValueError) as exc:
            self.message(str(exc), Qgis.Critical)
            return None
        task = ClassifyTask(job, self._finished)
        self.tasks.append(task)
        self.task_manager.addTask(task)
        for listener in list(self.start_listeners):
            listener(task)
        return task

    def running(self) -> bool:
        """Whether a rectangle is being classified (its task not yet handled)."""
        return bool(self.tasks)

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            if not sip.isdeleted(task):  # finished tasks are deleted by the task manager before _complete runs
                task.cancel()

    # -- finishing (main thread) -----------------------------------------------------------------------------
    def _finished(self, task: ClassifyTask) -> None:
        """Called from the task's finished(); the results are shown once the task manager is done with it.

        Adding a layer to the project emits signals that can run nested event loops; doing that from inside
        QgsTaskManager's completion handling is avoided by deferring to the next event-loop turn.
        """
        QTimer.singleShot(0, lambda: self._complete(task))

    def _complete(self, task: ClassifyTask) -> None:
        try:
            self._report(task)
        except Exception as exc:  # noqa: BLE001 -- a bug here must not take QGIS down
            self.message(f"could not show the result: {type(exc).__name__}: {exc}", Qgis.Critical)
        finally:
            if task in self.tasks:
                self.tasks.remove(task)
            for listener in list(self.listeners):
                listener(task)

    def _report(self, task: ClassifyTask) -> None:
        if task.was_canceled:  # checked first: a cancel before finished() wins over a late result
            self.message("Classification cancelled.", Qgis.Info)
            return
        if task.error is not None or task.outcome is None:
            self.message(f"Classification failed: {task.error or 'no result'}", Qgis.Critical)
            return
        outcome, model = task.outcome, task.model
        self.last_provider_note = model.provider_note
        for note in outcome.notes:
            self.message(note, Qgis.Info)
        decision = outcome.result.decision
        if decision is None:
            self.message(f"Not classified: {outcome.result.skipped_reason}", Qgis.Warning)
            return
        source = task.job.source
        layer = result_layer_for(self.project, source.crs, model.contract, source.layer_name, source.layer_id)
        feature = result_fields.decision_feature(layer.fields(), outcome.extent, decision, model.contract,
                                                 outcome.provenance)
        append_features(layer, [feature])
        self.message(f"{decision.label} (confidence {decision.confidence:.2f}) on {outcome.provenance.body}, "
                     f"{outcome.provenance.gsd_m:.3g} m/px; onnxruntime: {model.provider_note}", Qgis.Success)
