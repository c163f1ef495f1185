"""A map tool to drag a rectangle on the canvas; Esc (or a click without a drag) cancels.

Emits the rectangle in the *canvas* CRS; placing it in the raster's CRS is the controller's job
(``qgis_io.transform``), which knows the planetary pitfalls.
"""
from __future__ import annotations

from qgis.core import QgsPointXY, QgsRectangle, QgsWkbTypes
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent, QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QKeyEvent

#: Smallest drag, in screen pixels, that counts as a rectangle rather than a stray click.
MIN_DRAG_PX = 3


class ExtentMapTool(QgsMapTool):
    """Press, drag, release: ``extentSelected(QgsRectangle)`` in canvas CRS; Esc: ``cancelled()``."""

    extentSelected = pyqtSignal(QgsRectangle)
    cancelled = pyqtSignal()

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self._start: QgsPointXY | None = None
        self._start_px = None
        self._band = QgsRubberBand(canvas, QgsWkbTypes.PolygonGeometry)
        self._band.setColor(QColor(230, 25, 75, 60))
        self._band.setStrokeColor(QColor(230, 25, 75))
        self._band.setWidth(2)
        self.setCursor(Qt.CrossCursor)
        # While a mouse button is down, QgsMapCanvas does not pass key presses to its map tool; it only emits
        # keyPressed. Listening to it makes Esc work in the middle of a drag, which is when users press it.
        canvas.keyPressed.connect(self._escape)

    @property
    def dragging(self) -> bool:
        return self._start is not None

    def rubber_band(self) -> QgsRubberBand:
        return self._band

    def _reset(self) -> None:
        self._start = None
        self._start_px = None
        self._band.reset(QgsWkbTypes.PolygonGeometry)

    def _show(self, end: QgsPointXY) -> None:
        rect = QgsRectangle(self._start, end)
        self._band.reset(QgsWkbTypes.PolygonGeometry)
        corners = [QgsPointXY(rect.xMinimum(), rect.yMinimum()), QgsPointXY(rect.xMinimum(), rect.yMaximum()),
                   QgsPointXY(rect.xMaximum(), rect.yMaximum()), QgsPointXY(rect.xMaximum(), rect.yMinimum())]
        for i, corner in enumerate(corners):
            self._band.addPoint(corner, i == len(corners) - 1)
        self._band.show()

    def canvasPressEvent(self, event: QgsMapMouseEvent) -> None:
        if event.button() != Qt.LeftButton:
            return
        self._start = event.mapPoint()
        self._start_px = event.pos()

    def canvasMoveEvent(self, event: QgsMapMouseEvent) -> None:
        if self._start is not None:
            self._show(event.mapPoint())

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:
        if self._start is None or event.button() != Qt.LeftButton:
            return
        moved = (event.pos() - self._start_px).manhattanLength()
        rect = QgsRectangle(self._start, event.mapPoint())
        self._reset()
        if moved < MIN_DRAG_PX or rect.isEmpty():
            self.cancelled.emit()
            return
        self.extentSelected.emit(rect)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        self._escape(event)

    def _escape(self, event: QKeyEvent) -> None:
        """Esc while dragging drops the rectangle. Idempotent: QGIS may deliver the key twice (see __init__)."""
        if event.key() == Qt.Key_Escape and self.dragging:
            self._reset()
            self.cancelled.emit()
            event.accept()
            return
        event.ignore()

    def deactivate(self) -> None:  # another tool was chosen: drop a half-drawn rectangle
        self._reset()
        super().deactivate()

    def clean_up(self) -> None:
        """Remove the rubber band from the canvas (plugin unload)."""
        self._reset()
        try:
            self.canvas().keyPressed.disconnect(self._escape)
        except TypeError:  # already disconnected
            pass
        scene = self._band.scene()
        if scene is not None:
            scene.removeItem(self._band)
