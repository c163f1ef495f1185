"""The background job behind a map-tool click: load the model, read the pixels, classify, in a QgsTask.

QGIS stays responsive because everything slow runs in ``run()`` on a worker thread, touching only a provider
clone and plain values. Every exception there is caught and kept (``error``), never raised into Qt: the
controller turns it into a message-bar error in ``finished()``, which QGIS calls on the main thread.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Callable

from qgis.core import QgsMessageLog, QgsRectangle, QgsTask, Qgis

from ..core.session import TerrainModel
from ..qgis_io.model_choice import load_run_model
from ..qgis_io.classify import Cancelled, ExtentOutcome, classify_extent
from ..qgis_io.layer_info import CrsInfo
from ..qgis_io.raster_read import RasterSource

LOG_TAG = "Planet Terrain"


@dataclass
class ClassifyJob:
    """Everything the worker needs, captured on the main thread."""

    source: RasterSource
    extent: QgsRectangle          # in the layer CRS
    model_path: str
    info: CrsInfo
    threshold: float | None = None


class ClassifyTask(QgsTask):
    """Classify one extent; ``outcome``/``model`` on success, ``error`` when something failed."""

    def __init__(self, job: ClassifyJob, on_done: Callable[["ClassifyTask"], None] | None = None) -> None:
        super().__init__(f"Planet Terrain: classifying {job.source.layer_name}", QgsTask.CanCancel)
        self.job = job
        self.on_done = on_done
        self.model: TerrainModel | None = None
        self.outcome: ExtentOutcome | None = None
        self.error: BaseException | None = None
        self.error_trace = ""
        self.succeeded: bool | None = None  # set by finished(): None until QGIS reports back
        self.was_canceled = False           # read in finished(): the C++ task may be gone when results are shown

    def run(self) -> bool:
        try:
            if self.isCanceled():
                return False
            self.model = load_run_model(self.job.model_path)
            self.setProgress(5.0)
            if self.isCanceled():
                return False
            self.outcome = classify_extent(self.job.source, self.job.extent, self.model, self.job.info,
                                           self.job.threshold, self.setProgress, self.isCanceled)
            return not self.isCanceled()
        except Cancelled:  # the user's choice, not an error: nothing to log
            self.outcome = None
            return False
        except Exception as exc:  # noqa: BLE001 -- anything here must become a message, not a crash
            self.error_trace = traceback.format_exc()
            self.error = exc.with_traceback(None)  # the frames would hold this task in a reference cycle
            return False

    def finished(self, result: bool) -> None:
        self.succeeded = bool(result)
        self.was_canceled = self.isCanceled()
        if self.error is not None:
            QgsMessageLog.logMessage(self.error_trace, LOG_TAG, Qgis.Critical)
        # Dropped after use: a task kept by a caller must not keep its controller (and the QgsProject wrapper
        # it holds) in a reference cycle. Python's cyclic GC clearing a QgsProject wrapper drops the Python
        # slots other code connected through it (seen with pytest-qgis's legendLayersAdded connection).
        callback, self.on_done = self.on_done, None
        if callback is not None:
            callback(self)
