"""The "Classify" box of the Planet Terrain panel: what to classify, how, and the run's progress.

A raster picker, a mode (drag a rectangle with the plugin's map tool / a grid over the layer or the canvas
extent / a grid under the polygons of a layer, all or selected), the cell size (metres or pixels; by default
what ``classify_grid`` derives from the model), the abstention threshold, Run / Cancel and a progress bar.
It turns its state into a :class:`~.run_params.GridChoice`; running is the dock's job.
"""
from __future__ import annotations

import math
from dataclasses import replace

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer, QgsReferencedRectangle, QgsVectorLayer, QgsWkbTypes
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                                 QProgressBar, QPushButton, QSlider, QWidget)

from ..core import grid as core_grid
from ..core.session import TerrainModel
from ..processing.classify_grid import CELL_UNITS
from ..qgis_io import layer_info
from .controller import body_setting
from .messages import cell_scale_words
from .run_params import GridChoice

#: Modes, in the order of the mode combo box.
MODE_EXTENT, MODE_GRID_LAYER, MODE_GRID_CANVAS, MODE_POLYGONS = "extent", "grid_layer", "grid_canvas", "polygons"
MODES: tuple[tuple[str, str], ...] = (
    (MODE_EXTENT, "Drag a rectangle"),
    (MODE_GRID_LAYER, "Grid over the layer"),
    (MODE_GRID_CANVAS, "Grid over the map view"),
    (MODE_POLYGONS, "Grid under polygons"),
)
#: What each mode does, in its tooltip.
MODE_TIPS = {MODE_EXTENT: "Drag a rectangle on the map over the raster; each rectangle is classified as one image",
             MODE_GRID_LAYER: "Cover the whole raster with a grid of cells and classify each cell",
             MODE_GRID_CANVAS: "Cover what the map canvas shows with a grid of cells and classify each cell",
             MODE_POLYGONS: "Classify the grid cells under the polygons of a layer (all, or only the selected)"}
#: Threshold slider steps (0..1 in thousandths).
SLIDER_STEPS = 1000


class GridChoiceError(ValueError):
    """The panel's grid choices cannot make a run; the message says what to choose."""


def native_gsd_m(layer) -> float | None:
    """Ground metres per pixel of a raster layer (None when its CRS does not say)."""
    if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        return None
    native = layer_info.gsd_m(layer_info.crs_info(layer.crs(), body_setting()), layer.extent(), layer.width(),
                              layer.height())
    return native if math.isfinite(native) and native > 0 else None


def default_cell_pixels(model: TerrainModel | None, layer) -> int | None:
    """The cell size ``classify_grid`` uses when none is given (see ``core.grid.suggest_cell_pixels``)."""
    if model is None or not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        return None
    contract = model.contract
    return core_grid.suggest_cell_pixels(contract.input_size, native_gsd_m(layer), contract.gsd_range_m)


class RunPanel(QGroupBox):
    """The run's inputs; ``thresholdChanged`` when the slider settles (not on every step of a drag)."""

    thresholdChanged = pyqtSignal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Classify", parent)
        self.model: TerrainModel | None = None  # the dock's: for the default cell size
        form = QFormLayout(self)
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)  # a narrow dock puts each field under its label
        self.layer_combo = QgsMapLayerComboBox(self)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.layerChanged.connect(self.raster_changed)
        form.addRow("Raster", self.layer_combo)
        self.mode_combo = QComboBox(self)
        for key, title in MODES:
            self.mode_combo.addItem(title, key)
            self.mode_combo.setItemData(self.mode_combo.count() - 1, MODE_TIPS[key], Qt.ToolTipRole)
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        form.addRow("Mode", self.mode_combo)
        self.polygon_combo = QgsMapLayerComboBox(self)
        self.polygon_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.polygon_combo.setAllowEmptyLayer(True)
        self.polygon_combo.setLayer(None)
        self.selected_only = QCheckBox("Selected only", self)
        self.selected_only.setToolTip("Classify only under the selected features of the polygon layer")
        form.addRow("Polygons", self.polygon_combo)
        form.addRow(self.selected_only)
        self._add_cell_rows(form)
        form.addRow("Threshold", self._threshold_row())
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop the run; a grid keeps the cells classified so far")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        form.addRow(self.progress)
        self._mode_changed()

    def _add_cell_rows(self, form: QFormLayout) -> None:
        """The cell size and its unit, one row each (side by side they would not fit a narrow dock)."""
        self.cell_size_spin = QDoubleSpinBox(self)
        self.cell_size_spin.setRange(0.0, 1e6)
        self.cell_size_spin.setDecimals(1)
        self.cell_size_spin.setSpecialValueText("auto")
        self.cell_size_spin.setToolTip("Size of a grid cell, in metres on the ground or in source pixels; "
                                       "auto: the model's input size, or more on a fine raster")
        self.cell_unit_combo = QComboBox(self)
        self.cell_unit_combo.addItems(list(CELL_UNITS))
        self.cell_unit_combo.setCurrentText("pixels")
        form.addRow("Cell size", self.cell_size_spin)
        form.addRow("Unit", self.cell_unit_combo)
        self.cell_hint = QLabel(self)  # the cell in metres and at the model's scale, whatever the unit
        self.cell_hint.setWordWrap(True)
        form.addRow(self.cell_hint)
        self.cell_size_spin.valueChanged.connect(self.update_cell_hint)
        self.cell_unit_combo.currentTextChanged.connect(self.update_cell_hint)

    def _threshold_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.threshold_slider = QSlider(Qt.Horizontal, self)
        self.threshold_slider.setRange(0, SLIDER_STEPS)
        self.threshold_slider.setPageStep(SLIDER_STEPS // 20)
        self.threshold_label = QLabel(self)
        self.threshold_slider.setToolTip("Below this confidence a cell is labelled 'unknown'; moving it "
                                         "re-labels the current result without running the model again")
        self.threshold_slider.valueChanged.connect(self._threshold_moved)
        self.threshold_slider.sliderReleased.connect(lambda: self.thresholdChanged.emit(self.threshold()))
        row.addWidget(self.threshold_slider, 1)
        row.addWidget(self.threshold_label)
        return row

    # -- state -----------------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.mode_combo.currentData()

    def raster(self) -> QgsRasterLayer | None:
        layer = self.layer_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) and layer.isValid() else None

    def threshold(self) -> float:
        return self.threshold_slider.value() / SLIDER_STEPS

    def set_threshold(self, value: float) -> None:
        """Move the slider without re-labelling anything (a newly loaded model's own threshold)."""
        self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(int(round(value * SLIDER_STEPS)))
        self.threshold_slider.blockSignals(False)
        self.threshold_label.setText(f"{self.threshold():.3f}")

    def _threshold_moved(self, _value: int) -> None:
        self.threshold_label.setText(f"{self.threshold():.3f}")
        if not self.threshold_slider.isSliderDown():
            self.thresholdChanged.emit(self.threshold())

    def _mode_changed(self, *_args) -> None:
        grid = self.mode != MODE_EXTENT
        polygons = self.mode == MODE_POLYGONS
        self.polygon_combo.setEnabled(polygons)
        self.selected_only.setEnabled(polygons)
        self.cell_size_spin.setEnabled(grid)
        self.cell_unit_combo.setEnabled(grid)
        self.run_button.setText("Run" if grid else "Draw")
        self.run_button.setToolTip("Classify the grid" if grid else
                                   "Drag a rectangle over the raster on the map to classify it (Esc cancels)")

    def raster_changed(self, *_args) -> None:
        """Offer the default cell size of the chosen raster."""
        pixels = default_cell_pixels(self.model, self.layer_combo.currentLayer())
        if pixels is not None:
            self.cell_unit_combo.setCurrentText("pixels")
            self.cell_size_spin.setValue(pixels)
        self.update_cell_hint()

    def update_cell_hint(self, *_args) -> None:
        """Say how big a cell is on the ground and at which scale the model will read it."""
        layer, model = self.layer_combo.currentLayer(), self.model
        native = native_gsd_m(layer)
        size = self.cell_size_spin.value() or (default_cell_pixels(model, layer) or 0)
        metres_unit = self.cell_unit_combo.currentText() == "metres"
        if model is None or size <= 0 or (native is None and not metres_unit):
            self.cell_hint.setText("")
            return
        cell_m = size if metres_unit else size * native
        self.cell_hint.setText(cell_scale_words(cell_m, model.contract.input_size, model.contract.gsd_range_m))

    def grid_choice(self, canvas) -> GridChoice:
        """The grid the panel asks for (``canvas``: for the canvas-extent mode); :class:`GridChoiceError` when
        the polygon mode lacks its polygons."""
        size = self.cell_size_spin.value()
        choice = GridChoice(size if size > 0 else None, self.cell_unit_combo.currentText())
        if self.mode == MODE_GRID_CANVAS:
            return replace(choice, extent=QgsReferencedRectangle(canvas.extent(),
                                                                 canvas.mapSettings().destinationCrs()))
        if self.mode == MODE_POLYGONS:
            polygons = self.polygon_combo.currentLayer()
            if not isinstance(polygons, QgsVectorLayer) or polygons.geometryType() != QgsWkbTypes.PolygonGeometry:
                raise GridChoiceError("Choose a polygon layer for the 'Grid under polygons' mode.")
            selected = self.selected_only.isChecked()
            if selected and polygons.selectedFeatureCount() == 0:
                raise GridChoiceError(f"No feature of '{polygons.name()}' is selected.")
            return replace(choice, polygons=polygons, selected_only=selected)
        return choice

    def set_running(self, ready: bool, grid_running: bool, cancellable: bool) -> None:
        """Run while ``ready`` and no grid runs (more rectangles may be dragged while one runs); Cancel while
        ``cancellable``."""
        self.run_button.setEnabled(ready and not grid_running)
        self.cancel_button.setEnabled(cancellable)
