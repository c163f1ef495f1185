"""The panel's Review box: accept or correct the selected cells of the result layer, and harvest them.

One click (or its key: Alt+A accepts, Alt+C corrects to the label in the box) reviews every selected feature of
the result layer (``qgis_io.review``); the box says how many cells are reviewed per label. On the map canvas or
in the result layer's attribute table plain keys do the same (``review_keys``: A accepts, C opens the labels,
1–9 correct to the label of that number in the box's list). "Training data…" runs
``planet_terrain:export_training_data`` on them (a new folder). Main-thread code only.
"""
from __future__ import annotations

from typing import Callable

from qgis.core import Qgis, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtGui import QCursor
from qgis.PyQt.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QMenu, QPushButton,
                                 QVBoxLayout, QWidget)

from ..core.contract import UNKNOWN_LABEL, ModelContract
from ..core.session import TerrainModel
from ..qgis_io import review
from ..qgis_io.result_layer import SOURCE_PROPERTY
from .review_keys import DIGIT_KEYS, ReviewKeys

EXPORT_ALGORITHM = "planet_terrain:export_training_data"


class ReviewPanel(QGroupBox):
    """Accept / correct the selected cells; export the reviewed ones as training data."""

    #: Emitted after cells were reviewed: their labels (and so the legend's counts) may have changed.
    reviewed = pyqtSignal()

    def __init__(self, layer: Callable[[], QgsVectorLayer | None], model: Callable[[], TerrainModel | None],
                 message: Callable[[str, int], None], parent: QWidget | None = None) -> None:
        super().__init__("Review", parent)
        self._layer, self._model, self.message = layer, model, message
        self.label_combo = QComboBox(self)
        self.label_combo.setEditable(True)  # a new class name ("gully") may be typed
        self.accept_button = QPushButton("&Accept", self)
        self.accept_button.setToolTip("Mark the selected cells reviewed, keeping their label (Alt+A; on the map or "
                                      "in the attribute table: A)")
        self.correct_button = QPushButton("&Correct", self)
        self.correct_button.setToolTip("Give the selected cells the label in the box, reviewed (Alt+C; on the map "
                                       "or in the attribute table: C opens the labels, 1–9 picks one at once)")
        self.export_button = QPushButton("Training data…", self)
        self.export_button.setToolTip("Write the reviewed cells as training data (HiRISE v3 layout) in a new folder")
        self.counts_label = QLabel(self)
        self.counts_label.setWordWrap(True)
        self.label_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.label_combo.setMinimumContentsLength(6)  # a long class name must not widen the panel
        row = QHBoxLayout()
        for widget in (self.correct_button, self.accept_button):
            row.addWidget(widget)
        outer = QVBoxLayout(self)
        outer.addWidget(self.label_combo)
        outer.addLayout(row)
        outer.addWidget(self.counts_label)
        outer.addWidget(self.export_button)
        self.accept_button.clicked.connect(lambda: self.review(None))
        self.correct_button.clicked.connect(lambda: self.review(self.label_combo.currentText()))
        self.export_button.clicked.connect(self.export_training_data)
        self.correction_menu: QMenu | None = None
        self.keys = ReviewKeys(self._layer, lambda: self.review(None), self.open_correction_menu,
                               self.correct_to_number, self)
        self.refresh()

    def _contract(self) -> ModelContract | None:
        model = self._model()
        return model.contract if model is not None else None

    def refresh(self, *_args) -> None:
        """Labels to pick from (the model's classes, ``unknown``, and those already in the layer) and the counts."""
        contract, layer = self._contract(), self._layer()
        current, listed = self.label_combo.currentText(), self.labels()
        names = list(contract.class_names) + [UNKNOWN_LABEL] if contract is not None else []
        counts = review.reviewed_counts(layer) if layer is not None else {}
        names += [n for n in sorted(counts) if n not in names]
        self.label_combo.clear()
        self.label_combo.addItems(names)
        if current and (current in names or current not in listed):  # a typed name stays; another model's goes
            self.label_combo.setCurrentText(current)
        total = sum(counts.values())
        self.counts_label.setText(f"{total} reviewed" + (": " + ", ".join(f"{n} {c}" for n, c in
                                                                         sorted(counts.items())) if total else ""))
        for button in (self.accept_button, self.correct_button):
            button.setEnabled(layer is not None)
        self.export_button.setEnabled(total > 0)
        numbered = ", ".join(f"{n} {label}" for n, label in zip(range(1, len(DIGIT_KEYS) + 1), names))
        self.label_combo.setToolTip("The label a correction gives; type a new class name if it is not listed"
                                    + (f"\nKeys on the map or in the attribute table: {numbered}" if numbered else ""))

    def labels(self) -> list[str]:
        """The labels of the box's list, in order: the keys 1–9 stand for the first nine."""
        return [self.label_combo.itemText(i) for i in range(self.label_combo.count())]

    def correct_to_number(self, number: int) -> int:
        """Correct the selected cells to the ``number``-th label of the list (1-based); how many were."""
        labels = self.labels()
        if not 1 <= number <= len(labels):
            self.message(f"Review: no label has the number {number}; the list has {len(labels)}", Qgis.Warning)
            return 0
        self.label_combo.setCurrentText(labels[number - 1])
        return self.review(labels[number - 1])

    def open_correction_menu(self) -> QMenu:
        """The labels at the mouse, each with its digit; picking one corrects the selected cells to it."""
        menu = QMenu(self)
        for number, label in enumerate(self.labels(), 1):
            text = f"&{number} {label}" if number <= len(DIGIT_KEYS) else label
            menu.addAction(text).triggered.connect(lambda _checked=False, n=number: self.correct_to_number(n))
        menu.aboutToHide.connect(menu.deleteLater)
        self.correction_menu = menu
        menu.popup(QCursor.pos())
        return menu

    def review(self, label: str | None) -> int:
        """Review the selected features of the result layer (``label`` None: accept); returns how many."""
        layer = self._layer()
        if layer is None:
            self.message("Review: no result layer; classify first", Qgis.Warning)
            return 0
        try:
            done = review.review_features(layer, layer.selectedFeatureIds(), label, self._contract())
        except review.ReviewError as exc:
            self.message(f"Review: {exc}", Qgis.Warning)
            return 0
        self.refresh()
        self.reviewed.emit()
        self.message(f"{done} cell(s) {'accepted' if label is None else 'corrected to ' + label.strip()}", Qgis.Info)
        return done

    def source_raster(self) -> QgsRasterLayer | None:
        """The raster the result layer describes (:func:`source_raster_of`)."""
        return source_raster_of(self._layer())

    def export_training_data(self, folder: str | None = None) -> dict | None:
        """Run the export on the reviewed cells into a new ``folder`` (asked for when None)."""
        import processing
        from qgis.core import QgsProcessingException

        raster = self.source_raster()
        if raster is None:
            self.message("Export: the raster of this result layer is not in the project; use Processing > "
                         "Export reviewed features as training data and choose it", Qgis.Warning)
            return None
        folder = folder or QFileDialog.getExistingDirectory(self, "New folder for the training data")
        if not folder:
            return None
        try:
            model = self._model()
            result = processing.run(EXPORT_ALGORITHM, {"INPUT": self._layer(), "RASTER": raster, "OUTPUT": folder,
                                                       "MODEL": model.path if model is not None else None})
        except QgsProcessingException as exc:
            self.message(f"Export: {exc}", Qgis.Warning)
            return None
        self.message(f"{int(result['IMAGES'])} training image(s) written to {result['OUTPUT']}", Qgis.Success)
        return result


def source_raster_of(layer: QgsVectorLayer | None) -> QgsRasterLayer | None:
    """The raster a result layer describes: by the id a rectangle's layer carries, else by the name in the
    features' ``source_layer`` field (a grid's output), when one raster of the project has it."""
    project = QgsProject.instance()
    if layer is None:
        return None
    raster = project.mapLayer(layer.customProperty(SOURCE_PROPERTY) or "")
    if isinstance(raster, QgsRasterLayer):
        return raster
    feature = next(layer.getFeatures(), None)
    name = feature["source_layer"] if feature is not None and "source_layer" in layer.fields().names() else None
    named = [r for r in project.mapLayersByName(str(name)) if isinstance(r, QgsRasterLayer)] if name else []
    return named[0] if len(named) == 1 else None
