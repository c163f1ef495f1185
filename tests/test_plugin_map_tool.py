"""The rectangle map tool on a real QgsMapCanvas, driven by mouse and key events sent to its viewport."""
from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsRectangle, QgsWkbTypes
from qgis.PyQt.QtCore import QEvent, QPoint, QPointF, Qt
from qgis.PyQt.QtGui import QKeyEvent, QMouseEvent
from qgis.gui import QgsMapCanvas

from conftest import APOLLO
from planet_terrain_plugin.gui.map_tool import ExtentMapTool


def mouse(canvas, kind, x: int, y: int) -> None:
    """One real mouse event through Qt to the canvas viewport (the canvas turns it into a QgsMapMouseEvent)."""
    button = Qt.NoButton if kind == QEvent.MouseMove else Qt.LeftButton
    held = Qt.NoButton if kind == QEvent.MouseButtonRelease else Qt.LeftButton
    QgsApplication.sendEvent(canvas.viewport(), QMouseEvent(kind, QPointF(QPoint(x, y)), button, held, Qt.NoModifier))


def key(canvas, k) -> None:
    QgsApplication.sendEvent(canvas, QKeyEvent(QEvent.KeyPress, k, Qt.NoModifier))


@pytest.fixture
def canvas(qgis_app):
    """A real, shown map canvas of its own (pytest-qgis's canvas sits unlaid-out in a hidden window)."""
    c = QgsMapCanvas()
    c.resize(600, 400)
    c.show()
    QgsApplication.processEvents()
    yield c
    c.hide()
    c.deleteLater()


@pytest.fixture
def tool_on_apollo(canvas, raster_layer):
    layer = raster_layer(APOLLO)
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    QgsApplication.processEvents()  # let the canvas take its extent before pixels are mapped
    tool = ExtentMapTool(canvas)
    canvas.setMapTool(tool)
    got, cancelled = [], []
    tool.extentSelected.connect(got.append)
    tool.cancelled.connect(lambda: cancelled.append(True))
    yield canvas, tool, got, cancelled
    canvas.unsetMapTool(tool)
    tool.clean_up()


def test_drag_emits_the_dragged_rectangle_in_map_units(tool_on_apollo):
    canvas, tool, got, cancelled = tool_on_apollo
    to_map = canvas.getCoordinateTransform().toMapCoordinates
    mouse(canvas, QEvent.MouseButtonPress, 150, 120)
    mouse(canvas, QEvent.MouseMove, 220, 180)
    assert tool.dragging
    band = tool.rubber_band().asGeometry()
    assert band.type() == QgsWkbTypes.PolygonGeometry
    assert band.boundingBox().toString(6) == QgsRectangle(to_map(150, 120), to_map(220, 180)).toString(6)
    mouse(canvas, QEvent.MouseButtonRelease, 300, 260)
    assert len(got) == 1 and not cancelled and not tool.dragging
    a, b = to_map(150, 120), to_map(300, 260)
    rect = got[0]
    assert rect.xMinimum() == pytest.approx(min(a.x(), b.x())) and rect.xMaximum() == pytest.approx(max(a.x(), b.x()))
    assert rect.yMinimum() == pytest.approx(min(a.y(), b.y())) and rect.yMaximum() == pytest.approx(max(a.y(), b.y()))
    assert canvas.extent().contains(rect)  # degrees on the Moon, inside the Apollo frame shown
    assert 143 < rect.xMinimum() < rect.xMaximum() < 152
    assert tool.rubber_band().asGeometry().isEmpty()


def test_escape_cancels_a_drag(tool_on_apollo):
    canvas, tool, got, cancelled = tool_on_apollo
    mouse(canvas, QEvent.MouseButtonPress, 100, 100)
    mouse(canvas, QEvent.MouseMove, 200, 200)
    key(canvas, Qt.Key_Escape)
    assert cancelled == [True] and not tool.dragging
    assert tool.rubber_band().asGeometry().isEmpty()
    mouse(canvas, QEvent.MouseButtonRelease, 250, 250)   # the release after Esc selects nothing
    assert got == []


def test_a_click_without_a_drag_selects_nothing(tool_on_apollo):
    canvas, tool, got, cancelled = tool_on_apollo
    mouse(canvas, QEvent.MouseButtonPress, 100, 100)
    mouse(canvas, QEvent.MouseButtonRelease, 101, 100)
    assert got == [] and cancelled == [True]
