"""Cancel from every place a run can be cancelled (issue 18, item 5): the panel's Cancel button and the cancel
button of QGIS's own task manager give the same outcome.

A grid keeps the cells classified so far, adds the partial layer and says how many cells it holds; a rectangle
(one cell) says "Classification cancelled" and adds nothing. Neither is a failure: the task ends *Complete*, so
QGIS shows no "Task failed" (it shows that for a task that ends *Terminated*). The task manager's cancel is
clicked in a real ``QgsTaskManagerWidget``, the widget of QGIS's task bar.

Driven through the real plugin on pytest-qgis's interface (fixtures of ``test_gui_dock``), real rasters, real
tiny ONNX models and QGIS's real task manager.
"""
from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsTask
from qgis.gui import QgsTaskManagerWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QTreeView

from conftest import wait_until
from planet_terrain_plugin.gui import run_panel
from planet_terrain_plugin.qgis_io.model_choice import load_run_model
from test_gui_dock import apollo, choose, click, dock, grid_layers, no_model_setting, plugin  # noqa: F401
from test_gui_panel_runs import all_messages
from test_plugin_task import result_layers
from test_qgis_raster_read import pixel_rect

#: Where the user cancels: the panel's Cancel button, or the task bar's (QGIS's task manager widget).
CANCELS = ("panel", "task manager")


class TaskStatuses:
    """Every status QGIS's task manager reports for one task (what decides its "Task complete/failed")."""

    def __init__(self, task: QgsTask) -> None:
        self.manager = QgsApplication.taskManager()
        self.task_id = self.manager.taskId(task)
        self.seen: list[int] = []
        self.manager.statusChanged.connect(self._changed)

    def _changed(self, task_id: int, status: int) -> None:
        if task_id == self.task_id:
            self.seen.append(status)

    def close(self) -> None:
        self.manager.statusChanged.disconnect(self._changed)


@pytest.fixture
def task_bar(qgis_parent):
    """QGIS's task manager widget, made before any run as QGIS's status bar makes it at start-up (it adds the
    cancel button of a task when the task is added)."""
    widget = QgsTaskManagerWidget(QgsApplication.taskManager())
    widget.resize(400, 200)
    widget.show()
    QgsApplication.processEvents()
    yield widget
    widget.close()
    widget.deleteLater()


def click_task_bar_cancel(task_bar: QgsTaskManagerWidget, task: QgsTask) -> None:
    """Click the cancel button of ``task``'s row in the task manager widget, as a user does in the task bar."""
    tree = task_bar.findChild(QTreeView)
    model = tree.model()
    rows = [r for r in range(model.rowCount()) if model.data(model.index(r, 0)) == task.description()]
    assert len(rows) == 1, f"the task bar does not show '{task.description()}' once"
    button = tree.indexWidget(model.index(rows[0], 2))  # the status column: clicking it cancels
    assert button is not None, "the task bar shows no cancel button"
    QTest.mouseClick(button, Qt.LeftButton)


def cancel(where: str, dock, run, task_bar) -> None:
    if where == "panel":
        click(dock.run_box.cancel_button)
    else:
        click_task_bar_cancel(task_bar, run.task)


@pytest.mark.parametrize("where", CANCELS)
def test_a_cancelled_grid_keeps_its_cells_wherever_it_is_cancelled(dock, apollo, bar, task_bar, where):
    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 8, "pixels")  # ~25,000 cells: minutes if not cancelled
    finished = []
    dock.runFinished.connect(finished.append)
    click(dock.run_box.run_button)
    run = dock.grid_run
    statuses = TaskStatuses(run.task)
    try:
        assert wait_until(lambda: dock.run_box.progress.value() >= 1 or bool(finished), 60), "no progress"
        assert not finished, f"the run ended before it could be cancelled: {bar.messages}"
        cancel(where, dock, run, task_bar)
        assert wait_until(lambda: bool(finished), 60), "cancel did not stop the run"
    finally:
        dock.runFinished.disconnect(finished.append)
        statuses.close()
    assert finished[0] is True
    (layer,) = grid_layers()
    assert "partial" in layer.name() and 0 < layer.featureCount() < 20000
    assert dock.result_layer() is layer
    (message,) = all_messages(bar)  # one message, not a failure
    assert f"cancelled; kept the {layer.featureCount()} cell(s)" in message
    assert statuses.seen[-1] == QgsTask.Complete, statuses.seen  # no "Task failed" from QGIS
    assert dock.run_box.run_button.isEnabled() and not dock.run_box.cancel_button.isEnabled()


@pytest.mark.parametrize("where", CANCELS)
def test_a_cancelled_rectangle_says_cancelled_and_is_no_failure(plugin, dock, apollo, bar, task_bar, where):
    choose(dock, apollo, run_panel.MODE_EXTENT)
    # The run reuses this cached session; holding its lock parks the worker at inference until the cancel is in.
    session_lock = load_run_model()._lock
    session_lock.acquire()
    try:
        run = plugin.controller.classify_layer_extent(apollo, pixel_rect(apollo, 500, 400, 300, 300))
        assert run is not None and run.error is None
        statuses = TaskStatuses(run.task)
        assert wait_until(lambda: dock.run_box.progress.value() >= 50, 30), "the run did not reach inference"
        cancel(where, dock, run, task_bar)
    finally:
        session_lock.release()
    try:
        assert wait_until(lambda: not plugin.controller.running(), 30), "cancel did not stop the run"
        QgsApplication.processEvents()
    finally:
        statuses.close()
    assert run.was_canceled and run.error is None
    assert all_messages(bar) == ["Planet Terrain:Classification cancelled."]
    assert result_layers(apollo) == []
    assert statuses.seen[-1] == QgsTask.Complete, statuses.seen  # no "Task failed" from QGIS
    assert dock.run_box.progress.value() == 0 and not dock.run_box.cancel_button.isEnabled()
