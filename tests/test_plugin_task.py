"""The map-tool workflow end to end: plugin load, drag on the canvas, QgsTask, result layer, messages.

Runs through QGIS's real task manager; waits are bounded loops that process events, so a hang fails.
"""
from __future__ import annotations

import pytest
from qgis.core import Qgis, QgsApplication, QgsProject, QgsRectangle, QgsSettings
from qgis.PyQt.QtCore import QEvent, QPoint, QPointF, Qt
from qgis.PyQt.QtGui import QMouseEvent

from conftest import APOLLO, VESTA_DAWN, wait_until
from planet_terrain_plugin import classFactory
from planet_terrain_plugin.core import models
from planet_terrain_plugin.gui.controller import ClassifyController
from planet_terrain_plugin.processing.provider import PROVIDER_ID
from planet_terrain_plugin.qgis_io.model_choice import SETTING_MODEL, install_model_setting
from planet_terrain_plugin.qgis_io.result_layer import SOURCE_PROPERTY
from test_qgis_raster_read import pixel_rect


@pytest.fixture
def apollo_in_project(qgis_iface, qgis_new_project, raster_layer):
    layer = raster_layer(APOLLO)
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.setActiveLayer(layer)
    yield layer
    QgsProject.instance().removeAllMapLayers()


@pytest.fixture
def no_model_setting():
    QgsSettings().remove(SETTING_MODEL)
    yield
    QgsSettings().remove(SETTING_MODEL)


def result_layers(source):
    return [lyr for lyr in QgsProject.instance().mapLayers().values()
            if lyr.customProperty(SOURCE_PROPERTY) == source.id()]


def run_to_end(controller: ClassifyController, start) -> object:
    done = []
    controller.listeners.append(done.append)
    task = start()
    assert task is not None
    assert wait_until(lambda: bool(done), 30), "the task did not finish within 30 s"
    controller.listeners.remove(done.append)
    return done[0]


def drag(canvas, a: QPoint, b: QPoint) -> None:
    vp = canvas.viewport()
    QgsApplication.sendEvent(vp, QMouseEvent(QEvent.MouseButtonPress, QPointF(a), Qt.LeftButton, Qt.LeftButton,
                                             Qt.NoModifier))
    QgsApplication.sendEvent(vp, QMouseEvent(QEvent.MouseMove, QPointF(b), Qt.NoButton, Qt.LeftButton,
                                             Qt.NoModifier))
    QgsApplication.sendEvent(vp, QMouseEvent(QEvent.MouseButtonRelease, QPointF(b), Qt.LeftButton, Qt.NoButton,
                                             Qt.NoModifier))


@pytest.fixture
def plugin(qgis_iface, qgis_parent, monkeypatch):
    """The real plugin on pytest-qgis's interface (whose stub lacks removePluginMenu: recorded here)."""
    removed = []
    monkeypatch.setattr(qgis_iface, "removePluginMenu", lambda menu, action: removed.append((menu, action)),
                        raising=False)
    qgis_parent.show()  # lay the canvas out at its real size
    QgsApplication.processEvents()
    p = classFactory(qgis_iface)
    p.initGui()
    p.removed_menus = removed
    yield p
    if p.actions:
        p.unload()
    qgis_parent.hide()


def test_plugin_registers_provider_action_and_tool_and_unloads_cleanly(plugin, qgis_iface):
    registry = QgsApplication.processingRegistry()
    assert registry.providerById(PROVIDER_ID) is plugin.provider is not None
    assert registry.algorithmById("planet_terrain:classify_extent") is not None
    assert [a.text() for a in plugin.actions] == ["Classify terrain in a rectangle", "Install model file…",
                                                  "Manage models…", "Body"]
    plugin.classify_action.trigger()
    assert qgis_iface.mapCanvas().mapTool() is plugin.tool
    plugin.unload()
    assert registry.providerById(PROVIDER_ID) is None
    assert qgis_iface.mapCanvas().mapTool() is None
    assert [m for m, _ in plugin.removed_menus] == ["&Planet Terrain"] * 4 and plugin.actions == []


def test_drag_on_the_canvas_classifies_and_appends(plugin, qgis_iface, apollo_in_project, bar, tiny_model,
                                                    no_model_setting):
    install_model_setting(str(tiny_model))
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(apollo_in_project.crs())
    canvas.setExtent(pixel_rect(apollo_in_project, 500, 400, 300, 300))
    QgsApplication.processEvents()
    plugin.classify_action.trigger()
    for a, b in [(QPoint(50, 60), QPoint(200, 220)), (QPoint(250, 250), QPoint(400, 380))]:
        done = []
        plugin.controller.listeners.append(done.append)
        drag(canvas, a, b)
        assert wait_until(lambda: bool(done), 30)
        plugin.controller.listeners.remove(done.append)
        assert done[0].error is None, done[0].error
    (layer,) = result_layers(apollo_in_project)
    feats = list(layer.getFeatures())
    assert len(feats) == 2
    to_map = canvas.getCoordinateTransform().toMapCoordinates
    assert feats[0].geometry().boundingBox().toString(4) == QgsRectangle(to_map(50, 60), to_map(200, 220)).toString(4)
    assert all(f["body"] == "Moon" and f["provider"] == "CPUExecutionProvider" for f in feats)
    successes = bar.get_messages(Qgis.Success)
    assert len(successes) == 2 and "on Moon, CPU" in successes[-1]  # plain words; the provider's name is logged
    assert plugin.controller.tasks == []  # finished tasks are released


def test_cancel_reports_cancelled_and_adds_nothing(qgis_iface, terrain_processing, apollo_in_project, bar, tiny_model,
                                                   monkeypatch):
    import threading

    from planet_terrain_plugin.core.session import load_model

    monkeypatch.delenv("PLANET_TERRAIN_PROVIDER", raising=False)
    controller = ClassifyController(qgis_iface)
    rect = pixel_rect(apollo_in_project, 600, 500, 80, 80)
    # The task reuses this cached session; holding its lock parks the worker at inference until the cancel is
    # in, so a fast machine cannot finish the work first (the race made this test flaky).
    session_lock = load_model(str(tiny_model))._lock
    session_lock.acquire()
    release = threading.Timer(0.3, session_lock.release)

    def start():
        task = controller.classify_layer_extent(apollo_in_project, rect, str(tiny_model))
        task.cancel()  # before QGIS reports back: cancelled, whatever the worker got to
        release.start()
        return task

    try:
        task = run_to_end(controller, start)
    finally:
        release.cancel()
        if release.ident is not None:
            release.join()
        if session_lock.locked():
            session_lock.release()
    assert task.succeeded is False
    assert bar.get_messages(Qgis.Info)[-1] == "Planet Terrain:Classification cancelled."
    assert result_layers(apollo_in_project) == []


@pytest.mark.parametrize("model_kind, extent, expected", [
    ("broken", None, "planet_terrain.temperature' is missing"),
    ("tiny", QgsRectangle(0, 0, 1, 1), "does not overlap the raster"),
])
def test_exception_inside_the_task_becomes_a_message(qgis_iface, terrain_processing, apollo_in_project, bar, tiny_model,
                                                     broken_model, model_kind, extent, expected):
    controller = ClassifyController(qgis_iface)
    model = broken_model if model_kind == "broken" else tiny_model
    rect = extent or pixel_rect(apollo_in_project, 600, 500, 80, 80)
    task = run_to_end(controller, lambda: controller.classify_layer_extent(apollo_in_project, rect, str(model)))
    assert task.succeeded is False and task.error is not None
    (msg,) = bar.get_messages(Qgis.Critical)
    assert msg.startswith("Planet Terrain:Classification failed:") and expected in msg
    assert result_layers(apollo_in_project) == []


def test_mostly_nodata_rectangle_is_a_warning_not_a_feature(qgis_iface, terrain_processing, apollo_in_project, bar,
                                                            tiny_model):
    controller = ClassifyController(qgis_iface)
    rect = pixel_rect(apollo_in_project, 0, 0, 100, 100)
    run_to_end(controller, lambda: controller.classify_layer_extent(apollo_in_project, rect, str(tiny_model)))
    (msg,) = bar.get_messages(Qgis.Warning)
    assert "Not classified" in msg and "nodata border" in msg
    assert result_layers(apollo_in_project) == []


def test_no_installed_model_is_a_clear_error_before_any_task(qgis_iface, terrain_processing, apollo_in_project, bar,
                                                             no_model_setting):
    if models.installed_variants():
        pytest.skip("a default model is installed in the plugin")
    controller = ClassifyController(qgis_iface)
    assert controller.classify_layer_extent(apollo_in_project, apollo_in_project.extent()) is None
    (msg,) = bar.get_messages(Qgis.Critical)
    assert "No default model is installed" in msg and "Install model file" in msg


def test_rectangle_from_another_body_is_refused_with_a_message(qgis_iface, terrain_processing, apollo_in_project, bar,
                                                               raster_layer):
    controller = ClassifyController(qgis_iface)
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(raster_layer(VESTA_DAWN).crs())
    try:
        assert controller.classify_canvas_rect(QgsRectangle(0, -20000, 1000, -19000)) is None
    finally:
        canvas.setDestinationCrs(apollo_in_project.crs())
    (msg,) = bar.get_messages(Qgis.Critical)
    assert "cannot place the rectangle" in msg and "Set Project CRS from Layer" in msg


def test_no_active_raster_is_a_warning(qgis_iface, terrain_processing, qgis_new_project, bar):
    controller = ClassifyController(qgis_iface)
    assert controller.classify_canvas_rect(QgsRectangle(0, 0, 1, 1)) is None
    (msg,) = bar.get_messages(Qgis.Warning)
    assert "Select a raster layer" in msg



def test_body_chosen_in_the_menu_is_used(qgis_iface, terrain_processing, apollo_in_project, bar, tiny_model):
    from planet_terrain_plugin.gui.controller import body_setting, set_body_setting

    controller = ClassifyController(qgis_iface)
    set_body_setting("Mars")
    try:
        assert body_setting() == "Mars"
        rect = pixel_rect(apollo_in_project, 600, 500, 80, 80)
        run_to_end(controller, lambda: controller.classify_layer_extent(apollo_in_project, rect, str(tiny_model)))
    finally:
        set_body_setting("auto")
    (layer,) = result_layers(apollo_in_project)
    (feat,) = list(layer.getFeatures())
    assert feat["body"] == "Mars" and feat["body_renorm"] is False
    with pytest.raises(ValueError):
        set_body_setting("Pluto")
