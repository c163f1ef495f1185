"""The "Result" box of the Planet Terrain panel: the current result layer, its legend, warnings and export.

The legend counts the layer's cells per class in the palette's colours; moving the threshold re-labels the
layer from its stored probabilities (``qgis_io.relabel``) without running the model; a layer whose cells' ground
pixel size is far outside the model's trained range gets a warning under the legend (the run's one message
carries the same scale note); Export… writes the layer to a file (``qgis_io.export``; the format follows the
extension), optionally only its confident cells.
"""
from __future__ import annotations

import math
import os
from typing import Callable

from qgis.core import Qgis, QgsFeatureRequest, QgsMapLayerProxyModel, QgsProject, QgsVectorLayer
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QIcon, QPixmap
from qgis.PyQt.QtWidgets import (QAbstractItemView, QCheckBox, QFileDialog, QGroupBox, QHeaderView,
                                 QLabel, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..core.contract import UNKNOWN_LABEL, ModelContract
from ..processing.export_labeled_layer import FILE_FILTER
from ..qgis_io import export, relabel
from ..qgis_io.fields import REASON_FIELD, gsd_factor
from ..qgis_io.style import class_colour
from .messages import reason_words, scale_note


def worst_gsd(layer: QgsVectorLayer, contract: ModelContract) -> tuple[float, float] | None:
    """(factor, gsd_m) of the cell furthest outside ``contract.gsd_range_m``; None when no cell has a gsd."""
    index = layer.fields().indexOf("gsd_m")
    if index < 0:
        return None
    worst = None
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes([index])
    for feature in layer.getFeatures(request):
        try:
            gsd = float(feature.attribute(index))
        except (TypeError, ValueError):
            continue
        factor = gsd_factor(gsd, contract.gsd_range_m)
        if not math.isfinite(factor):
            continue
        far = max(factor, 1.0 / factor)
        if worst is None or far > worst[0]:
            worst = (far, factor, gsd)
    return None if worst is None else (worst[1], worst[2])


def why_unknown(layer: QgsVectorLayer) -> str:
    """'Why unknown: pixels too coarse (40), not confident enough (10)' from the layer's ``reason`` field ('' when
    no cell abstained or the layer has no reasons), most frequent first."""
    if layer.fields().indexOf(REASON_FIELD) < 0:
        return ""
    counts = {why: n for why, n in relabel.value_counts(layer, REASON_FIELD).items() if why}
    parts = [f"{reason_words(why)} ({n})" for why, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"Why {UNKNOWN_LABEL}: " + ", ".join(parts) if parts else ""


def legend_order(counts: dict[str, int], contract: ModelContract | None) -> list[str]:
    """The model's classes first (in its order), then other labels, ``unknown`` last."""
    order = list(contract.class_names) if contract is not None else []
    labels = [n for n in order if n in counts] + sorted(n for n in counts if n not in order and n != UNKNOWN_LABEL)
    return labels + ([UNKNOWN_LABEL] if UNKNOWN_LABEL in counts else [])


class ResultPanel(QGroupBox):
    """Shows ``contract``'s result layers; ``message(text, level)`` tells the user (the dock's message bar)."""

    layerChanged = pyqtSignal()

    def __init__(self, message: Callable[[str, int], None], parent: QWidget | None = None) -> None:
        super().__init__("Result", parent)
        self.message = message
        self.contract: ModelContract | None = None
        self.threshold = 0.0
        layout = QVBoxLayout(self)
        self.result_combo = QgsMapLayerComboBox(self)
        self.result_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.result_combo.setAllowEmptyLayer(True)
        self.result_combo.setLayer(None)
        self.result_combo.layerChanged.connect(self._result_changed)
        layout.addWidget(self.result_combo)
        self.legend = QTableWidget(0, 2, self)
        self.legend.setHorizontalHeaderLabels(["Class", "Cells"])
        self.legend.verticalHeader().setVisible(False)
        self.legend.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.legend.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        self.legend.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.legend.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.legend.setSelectionMode(QAbstractItemView.NoSelection)
        self.legend.setMinimumHeight(150)
        layout.addWidget(self.legend, 1)
        self.total_label = QLabel(self)
        self.total_label.setWordWrap(True)
        layout.addWidget(self.total_label)
        self.reasons_label = QLabel(self)
        self.reasons_label.setWordWrap(True)
        self.reasons_label.setToolTip("Why the model said 'unknown', cells per reason (the 'reason' field)")
        layout.addWidget(self.reasons_label)
        self.warning_label = QLabel(self)
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #b35900;")
        self.warning_label.hide()
        layout.addWidget(self.warning_label)
        self.confident_only = QCheckBox("Confident only", self)
        self.confident_only.setToolTip("Export only the cells that did not abstain (not 'unknown')")
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Write the result layer to a file (GeoPackage, Shapefile, GeoJSON, …)")
        self.export_button.clicked.connect(self.export_result)
        layout.addWidget(self.confident_only)
        layout.addWidget(self.export_button)

    # -- the result layer ------------------------------------------------------------------------------------
    def result_layer(self) -> QgsVectorLayer | None:
        layer = self.result_combo.currentLayer()
        return layer if isinstance(layer, QgsVectorLayer) and layer.isValid() else None

    def show_layer(self, layer: QgsVectorLayer) -> None:
        """Make ``layer`` the current result (its legend refreshed even when it already was)."""
        if self.result_combo.currentLayer() is layer:
            self.update_legend()
        else:
            self.result_combo.setLayer(layer)

    def _result_changed(self, *_args) -> None:
        self.update_legend()
        self._warn_gsd()
        self.layerChanged.emit()

    def legend_counts(self) -> dict[str, int]:
        """The counts the legend shows, by class label (read back from the table)."""
        return {self.legend.item(r, 0).text(): int(self.legend.item(r, 1).text())
                for r in range(self.legend.rowCount())}

    def update_legend(self) -> None:
        layer = self.result_layer()
        self.legend.setRowCount(0)
        self.reasons_label.setText("")
        if layer is None or layer.fields().indexOf(relabel.LABEL_FIELD) < 0:
            self.total_label.setText("" if layer is None else f"'{layer.name()}' is not a Terrain classes layer.")
            return
        counts = relabel.label_counts(layer)
        labels = legend_order(counts, self.contract)
        self.legend.setRowCount(len(labels))
        for row, label in enumerate(labels):
            swatch = QPixmap(14, 14)
            swatch.fill(QColor(class_colour(label)))
            count = QTableWidgetItem(str(counts[label]))
            count.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
            name = QTableWidgetItem(QIcon(swatch), label)
            name.setToolTip(label)  # a narrow panel elides long class names
            self.legend.setItem(row, 0, name)
            self.legend.setItem(row, 1, count)
        self.total_label.setText(f"{sum(counts.values())} cell(s) at threshold {self.threshold:.3f}")
        self.reasons_label.setText(why_unknown(layer))

    def _warn_gsd(self) -> None:
        layer = self.result_layer()
        self.warning_label.hide()
        if layer is None or self.contract is None:
            return
        worst = worst_gsd(layer, self.contract)
        note = scale_note(worst[1], self.contract.gsd_range_m) if worst is not None else ""
        if note:
            self.warning_label.setText(f"Treat the labels with care: cells of {worst[1]:.3g} m/px are {note}.")
            self.warning_label.show()

    # -- threshold -------------------------------------------------------------------------------------------
    def relabel(self, threshold: float) -> None:
        """Re-label the current result layer at ``threshold`` and refresh the legend."""
        self.threshold = threshold
        layer = self.result_layer()
        if layer is None or self.contract is None:
            return
        if not relabel.is_result_layer(layer, self.contract):
            self.total_label.setText(f"'{layer.name()}' was not made by {self.contract.model_name}; "
                                     "it cannot be re-labelled with this model's classes.")
            return
        try:
            relabel.relabel_layer(layer, self.contract, threshold)
        except relabel.RelabelError as exc:
            self.message(str(exc), Qgis.Critical)
        self.update_legend()

    # -- export ----------------------------------------------------------------------------------------------
    def ask_export_path(self) -> str:
        layer = self.result_layer()
        start = os.path.join(os.path.expanduser("~"), f"{layer.name() if layer else 'terrain'}.gpkg")
        path, _ = QFileDialog.getSaveFileName(self, "Export terrain classes", start, FILE_FILTER,
                                              options=QFileDialog.DontUseNativeDialog)
        return path

    def export_result(self) -> export.ExportResult | None:
        layer = self.result_layer()
        if layer is None:
            self.message("There is no result layer to export.", Qgis.Warning)
            return None
        path = self.ask_export_path()
        if not path:
            return None
        try:
            # The file dialog has already asked before replacing an existing file.
            result = export.export_layer(layer, path, confident_only=self.confident_only.isChecked(),
                                         overwrite=True,
                                         transform_context=QgsProject.instance().transformContext())
        except export.ExportError as exc:
            self.message(f"Export failed: {exc}", Qgis.Critical)
            return None
        self.message(f"Exported {result.feature_count} feature(s) to {result.path}", Qgis.Success)
        return result
