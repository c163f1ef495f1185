"""One Processing algorithm run in the background: the one way the panel and the map tool classify anything.

A rectangle dragged with the map tool and a grid started from the panel both run a ``planet_terrain``
algorithm through :class:`QgsProcessingAlgRunnerTask`, the very code ``qgis_process`` and the Processing
toolbox run, so a click gives the layer a batch job would. The algorithm checks its parameters (``prepare``)
on the main thread when the run is made: a refusal there is :attr:`AlgorithmRun.error` before anything starts.
Errors raised while it runs reach :class:`RunFeedback` from the worker thread and become
:attr:`AlgorithmRun.error` once QGIS reports back on the main thread.

A cancel is the same wherever it comes from (the panel's Cancel, or the cancel button of QGIS's task bar): the
algorithm is asked to stop, stops early and returns what it has -- a grid its partial layer, a rectangle no
feature --, and the task ends complete. A cancel is not a failure, so QGIS shows no "Task failed" for it.
"""
from __future__ import annotations

from typing import Callable

from qgis.core import (QgsApplication, QgsProcessingAlgRunnerTask, QgsProcessingContext, QgsProcessingFeedback,
                       QgsProject, QgsTaskManager, QgsVectorLayer)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QTimer

LOG_TAG = "Planet Terrain"


class RunFeedback(QgsProcessingFeedback):
    """Keeps the algorithm's error messages (reported from the worker thread) for the message bar, and carries
    the stop request (the panel's Cancel, the task bar's: :class:`StoppableRunnerTask`).

    :meth:`stop` makes the algorithm (Python code, which asks :meth:`isCanceled`) stop early, while QGIS's own
    cancel flag stays down: QGIS 3.22 then finishes the task normally and hands over the OUTPUT layer, so a grid
    that keeps its cells on cancel (``ON_CANCEL``) gives them to the panel instead of losing them in the
    algorithm's private context with a "Task failed".
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def isCanceled(self) -> bool:  # noqa: N802 -- QGIS's name
        return self.stopped or super().isCanceled()

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803 -- QGIS's names
        self.errors.append(error)
        super().reportError(error, fatalError)


class StoppableRunnerTask(QgsProcessingAlgRunnerTask):
    """QGIS's runner task whose cancel (the task bar's button, ``QgsTaskManager.cancelAll``) asks the algorithm to
    stop, as the panel's Cancel does.

    QGIS 3.22's own cancel raises the C++ flag of the feedback, after which the task always ends *Terminated*
    ("Task failed") and hands over nothing: the OUTPUT layer stays in the algorithm's private context and is
    deleted with the task, cells a cancelled grid kept included. A failed start still cancels the task for real:
    QGIS cancels from the constructor, which reaches QGIS's own method, not this one.
    """

    def __init__(self, algorithm, parameters: dict, context: QgsProcessingContext, feedback: RunFeedback) -> None:
        super().__init__(algorithm, parameters, context, feedback)
        self._feedback = feedback

    def cancel(self) -> None:
        self._feedback.stop()


class AlgorithmRun:
    """``algorithm_id`` with ``parameters`` on ``project``, run by QGIS's task manager.

    After :meth:`start`, ``on_done(run)`` is called on the main thread once QGIS has reported back, on the next
    event-loop turn (adding layers emits signals that may run nested event loops: not from inside the task
    manager's completion handling). Then ``succeeded``, ``was_canceled``, ``error``, ``results`` and ``output``
    (the OUTPUT layer taken from the run's context, also the partial layer a cancelled grid keeps) tell how it
    went. A plain object, not a QObject: a Python-owned QObject referenced from its own slots would be deleted
    on the C++ side whenever the cyclic garbage collector runs. Whoever starts a run keeps it until ``on_done``.
    """

    def __init__(self, algorithm_id: str, parameters: dict, project: QgsProject | None = None) -> None:
        self.algorithm_id, self.parameters = algorithm_id, dict(parameters)
        self.context = QgsProcessingContext()
        self.context.setProject(project or QgsProject.instance())
        self.feedback = RunFeedback()
        self.results: dict = {}
        self.output: QgsVectorLayer | None = None
        #: The project layer that shows this run's result, set by whoever showed it.
        self.result_layer: QgsVectorLayer | None = None
        self.succeeded: bool | None = None  # None until QGIS reports back
        self.was_canceled = False
        self.error: str | None = None
        self._on_done: Callable[["AlgorithmRun"], None] | None = None
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        if algorithm is None:
            self.task = None
            self.error = f"the Processing algorithm {algorithm_id} is not registered"
            return
        # Prepares the algorithm on this thread; a refusal is reported to the feedback and cancels the task.
        self.task = StoppableRunnerTask(algorithm, self.parameters, self.context, self.feedback)
        if self.task.isCanceled():
            self.error = self.feedback.errors[-1] if self.feedback.errors else f"{algorithm_id} refused to start"
            self.task = None

    def start(self, on_done: Callable[["AlgorithmRun"], None],
              task_manager: QgsTaskManager | None = None) -> None:
        """Hand the run to the task manager (QGIS's task bar shows it); only for a run without :attr:`error`."""
        if self.task is None:
            raise RuntimeError(f"{self.algorithm_id} cannot start: {self.error}")
        self._on_done = on_done
        self.task.executed.connect(self._executed)
        (task_manager or QgsApplication.taskManager()).addTask(self.task)

    def cancel(self) -> None:
        """Ask the algorithm to stop (it polls its feedback); a grid keeps the cells it wrote, if asked to. The
        task bar's cancel does the same (:class:`StoppableRunnerTask`)."""
        self.feedback.stop()

    def connect_progress(self, slot: Callable[[float], None]) -> None:
        """Have ``slot`` follow the run's progress (0-100), on the main thread."""
        if self.task is not None and not sip.isdeleted(self.task):
            self.task.progressChanged.connect(slot)

    def _executed(self, ok: bool, results: dict) -> None:
        self.task = None  # the task manager deletes it after this signal
        self.results = dict(results or {})
        self.was_canceled = self.feedback.isCanceled()
        self.succeeded = bool(ok) and not self.was_canceled
        output = self.results.get("OUTPUT")
        layer = self.context.takeResultLayer(output) if isinstance(output, str) and output else None
        self.output = layer if isinstance(layer, QgsVectorLayer) and layer.isValid() else None
        if not self.succeeded and not self.was_canceled:
            self.error = self.feedback.errors[-1] if self.feedback.errors else "no result"
        callback, self._on_done = self._on_done, None
        if callback is not None:
            QTimer.singleShot(0, lambda: callback(self))
