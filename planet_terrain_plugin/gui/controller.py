"""From a rectangle on the canvas to a feature in the "Terrain classes" layer, with honest messages.

Main-thread glue only: find the raster (the active layer when it is a raster, else the panel's raster, else the
last one classified: a result layer that QGIS makes active never becomes the target), place the rectangle in
its CRS, run ``planet_terrain:classify_extent`` on it (:class:`~.task.AlgorithmRun`, the code ``qgis_process``
runs) at the panel's threshold, and on completion append the feature to the raster's result layer and say what
happened in one message-bar line (label or abstention, a small rectangle, the scale note; details in the log).
Any failure becomes a message-bar error.
"""
from __future__ import annotations

import json
from typing import Callable

from qgis.core import (Qgis, QgsApplication, QgsProject, QgsRasterLayer, QgsRectangle, QgsSettings,
                       QgsTaskManager)

from ..core.calibrate import Reason
from ..core.contract import UNKNOWN_LABEL, ContractError
from ..core.models import NoModelError
from ..qgis_io.fields import REASON_FIELD, SCALE_FACTOR_FIELD
from ..qgis_io.layer_info import BODY_CHOICES
from ..qgis_io.model_choice import load_run_model, resolve_model_path, with_head
from ..qgis_io.result_layer import append_features, result_layer_for
from ..qgis_io.transform import CrsMismatchError, rect_to_crs
from .messages import TITLE, RunMessages, abstention_words, provider_words, scale_note  # noqa: F401 -- TITLE: the dock's too
from .run_params import EXTENT_ALGORITHM, RunChoice, extent_parameters
from .task import AlgorithmRun

SETTING_BODY = "planet_terrain/body"


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
        #: The panel's raster (it sets this): the target when the active layer is not a raster.
        self.panel_raster: Callable[[], QgsRasterLayer | None] = lambda: None
        self._last_raster_id: str | None = None  # the raster of the last rectangle started
        self.iface = iface
        self.project = project or QgsProject.instance()
        self.task_manager = task_manager or QgsApplication.taskManager()
        self.tasks: list[AlgorithmRun] = []  # held until handled: their context and feedback outlive the task
        self.messages = RunMessages(iface.messageBar)

    # -- messages --------------------------------------------------------------------------------------------
    def message(self, text: str, level: int = Qgis.Info, details: str = "") -> None:
        self.messages.show(text, level, details)

    # -- starting --------------------------------------------------------------------------------------------
    def active_raster(self) -> QgsRasterLayer | None:
        """The raster a rectangle classifies: the active layer if it is a raster, else the panel's raster, else
        the last raster classified (a result layer made active by QGIS is never the target)."""
        last = self.project.mapLayer(self._last_raster_id) if self._last_raster_id else None
        for layer in (self.iface.activeLayer(), self.panel_raster(), last):
            if isinstance(layer, QgsRasterLayer) and layer.isValid():
                return layer
        return None

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
        self._last_raster_id = layer.id()
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
        notes = "\n".join(json.loads(results.get("NOTES") or "[]"))
        if not results.get("LABEL"):
            self.message(f"Not classified: {results.get('NOT_CLASSIFIED')}", Qgis.Warning, notes)
            return
        # the session the run used, from the cache, with the head it was given (its classes style the layer)
        model = with_head(load_run_model(run.parameters["MODEL"]), run.parameters.get("HEAD"))
        features = list(run.output.getFeatures())
        feature = features[0]
        layer = result_layer_for(self.project, run.output.crs(), model.contract, feature["source_layer"],
                                 run.parameters["INPUT"])
        append_features(layer, features)
        run.result_layer = layer
        coarse = feature[REASON_FIELD] == Reason.OUT_OF_SCALE.value  # its words already give the factor
        text = "; ".join(part for part in (self._decision_words(run, feature, model),
                                           small_rectangle_note(run, model.contract.input_size),
                                           "" if coarse else scale_note(feature["gsd_m"], model.contract.gsd_range_m))
                         if part)
        labelled = feature["label"] != UNKNOWN_LABEL
        self.message(text, Qgis.Success if labelled else Qgis.Info,
                     f"{notes}\nonnxruntime: {model.provider_note}".strip())

    @staticmethod
    def _decision_words(run: AlgorithmRun, feature, model) -> str:
        """'crater (confidence 0.83) on the Moon, CPU' or the abstention and why."""
        where = f"on {feature['body']}, {provider_words(model.provider)}"
        if "fallback" in model.provider_note:
            where += " (the preferred provider did not start: see the log)"
        confidence = feature["confidence"]
        if feature["label"] != UNKNOWN_LABEL:
            return f"{feature['label']} (confidence {confidence:.2f}) {where}"
        threshold = run.parameters.get("THRESHOLD", model.contract.threshold)
        reason = feature[REASON_FIELD] if feature.fields().indexOf(REASON_FIELD) >= 0 else ""
        factor = feature[SCALE_FACTOR_FIELD] if feature.fields().indexOf(SCALE_FACTOR_FIELD) >= 0 else None
        return f"{UNKNOWN_LABEL}: {abstention_words(reason, confidence, threshold, factor)} {where}"


def small_rectangle_note(run: AlgorithmRun, input_size: int) -> str:
    """A word when the rectangle spans fewer pixels than the model's input (it was enlarged to reach the model)."""
    raster, extent = run.context.project().mapLayer(run.parameters["INPUT"]), run.parameters["EXTENT"]
    if not isinstance(raster, QgsRasterLayer):
        return ""
    width = extent.width() / raster.rasterUnitsPerPixelX()
    height = extent.height() / raster.rasterUnitsPerPixelY()
    if min(width, height) >= input_size:
        return ""
    return (f"small rectangle ({width:.0f} x {height:.0f} px, enlarged to the model's {input_size} px): "
            "drag a larger one for a steadier label")
