"""The panel's "Why this label" section: for the selected cell of a result layer, what the model saw.

* **Probability bars**: every class of the result (the layer's ``p_*`` fields: the model's classes, or a taught
  head's), the label and, for ``unknown``, the reason in plain words (``messages.abstention_words``).
* **Heatmap**: the occlusion map of the cell (``core.explain``) run as a QGIS task (task bar: progress, cancel)
  and added as a raster layer over the cell, "why <label> (cell N)" (``qgis_io.explain``).
* **Nearest training examples**: the 5 training images of the model's gallery (``core.gallery``) nearest to
  the cell's embedding, with label, source image and similarity, and the data set's citation. One image through
  the model (milliseconds), so it runs on the main thread when the selection changes.

It follows the selection of the active layer when that is a Planet Terrain result, else of the panel's result
layer. Collapsed by default: the dock keeps its size until the user opens it. Main-thread code only.
"""
from __future__ import annotations

from typing import Callable

from qgis.core import Qgis, QgsApplication, QgsFeature, QgsFeatureRequest, QgsMapLayer, QgsVectorLayer
from qgis.gui import QgsCollapsibleGroupBox
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QImage, QPainter, QPixmap
from qgis.PyQt.QtWidgets import QGridLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..core import explain
from ..core.contract import KNOWN_BODIES, PROBABILITY_PREFIX, UNKNOWN_LABEL
from ..core.gallery import NO_GALLERY, GalleryError, gallery_for
from ..core.models import MODELS_DIR
from ..core.session import TerrainModel
from ..qgis_io import explain as qgis_explain
from ..qgis_io.fields import CONFIDENCE_FIELD, LABEL_FIELD, REASON_FIELD
from ..qgis_io.raster_read import ExtentError, raster_source
from ..qgis_io.style import class_colour
from .messages import abstention_words
from .review_panel import source_raster_of

THUMB_PX = 48
NEIGHBOURS = 5


def probability_fields(layer: QgsVectorLayer) -> list[str]:
    """The layer's per-class probability fields, in layer order (empty: not a Planet Terrain result)."""
    names = layer.fields().names()
    return [n for n in names if n.startswith(PROBABILITY_PREFIX)] if LABEL_FIELD in names else []


def class_name(field_name: str, model: TerrainModel | None) -> str:
    """The class a ``p_*`` field holds: the model's own name when it has that field, else the field's words."""
    if model is not None:
        for c in model.contract.classes:
            if c.field_name == field_name:
                return c.name
    return field_name[len(PROBABILITY_PREFIX):].replace("_", " ")


def number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class ProbabilityBars(QWidget):
    """One row per class: the name, a bar in the class colour, the percentage; the label's row in bold."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[str, float]] = []
        self.label = ""
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)

    def set_rows(self, rows: list[tuple[str, float]], label: str) -> None:
        self.rows, self.label = rows, label
        self.updateGeometry()
        self.update()

    def _row_height(self) -> int:
        return self.fontMetrics().height() + 4

    def sizeHint(self) -> QSize:  # noqa: N802 -- Qt's name
        return QSize(160, self._row_height() * len(self.rows))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 -- Qt's name
        return QSize(120, self.sizeHint().height())

    def paintEvent(self, _event) -> None:  # noqa: N802 -- Qt's name
        painter = QPainter(self)
        metrics, h = self.fontMetrics(), self._row_height()
        widest = max((metrics.horizontalAdvance(name) for name, _ in self.rows), default=0) + 6
        name_w = min(widest, int(self.width() * 0.45))  # long class names are elided, the bar keeps its room
        pct_w = metrics.horizontalAdvance("100%") + 4
        bar_w = max(10, self.width() - name_w - pct_w - 4)
        for i, (name, p) in enumerate(self.rows):
            top = i * h
            font = painter.font()
            font.setBold(name == self.label)
            painter.setFont(font)
            painter.setPen(self.palette().windowText().color())
            painter.drawText(QRectF(0, top, name_w - 4, h), Qt.AlignVCenter | Qt.AlignLeft,
                             metrics.elidedText(name, Qt.ElideRight, name_w - 4))
            painter.fillRect(QRectF(name_w, top + 3, bar_w, h - 6), QColor("#e0e0e0"))
            share = min(max(p, 0.0), 1.0) if p == p else 0.0
            painter.fillRect(QRectF(name_w, top + 3, bar_w * share, h - 6), class_colour(name))
            painter.drawText(QRectF(name_w + bar_w + 4, top, pct_w, h), Qt.AlignVCenter | Qt.AlignRight,
                             f"{p:.0%}" if p == p else "–")
        painter.end()


def thumbnail_pixmap(gray) -> QPixmap:
    """A uint8 (T, T) thumbnail as a pixmap of :data:`THUMB_PX` px."""
    data = bytes(gray.tobytes())
    image = QImage(data, gray.shape[1], gray.shape[0], gray.shape[1], QImage.Format_Grayscale8).copy()
    return QPixmap.fromImage(image).scaled(THUMB_PX, THUMB_PX, Qt.KeepAspectRatio, Qt.SmoothTransformation)


class WhyPanel(QgsCollapsibleGroupBox):
    """See the module docstring. ``result_layer``/``model``/``threshold`` are the dock's; ``active_layer`` QGIS's."""

    def __init__(self, result_layer: Callable[[], QgsVectorLayer | None], model: Callable[[], TerrainModel | None],
                 threshold: Callable[[], float], message: Callable[[str, int], None],
                 active_layer: Callable[[], QgsMapLayer | None] = lambda: None, parent: QWidget | None = None) -> None:
        super().__init__("Why this label", parent)
        self._result_layer, self._model, self._threshold, self.message = result_layer, model, threshold, message
        self._active_layer = active_layer
        self._layer: QgsVectorLayer | None = None
        self.feature: QgsFeature | None = None
        self.task: qgis_explain.ExplainTask | None = None
        self.heatmap_layer = None
        self.neighbours: list = []
        self.gallery_dir = MODELS_DIR  # where the model's training gallery is looked for
        self._build()
        self.setCollapsed(True)
        self.collapsedStateChanged.connect(lambda collapsed: None if collapsed else self.refresh())
        self.refresh()

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.bars = ProbabilityBars(self)
        self.heatmap_button = QPushButton("Heatmap", self)
        self.heatmap_button.setToolTip("Grey out each part of the cell in turn and show, as a red layer over the "
                                       "cell, where hiding it lowers the label's probability most (a background "
                                       "task: cancel it here or in the task bar)")
        self.heatmap_button.clicked.connect(self.heatmap_clicked)
        self.examples_title = QLabel("Nearest training examples", self)
        self.examples_title.setWordWrap(True)
        self.examples = QGridLayout()
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #606060;")
        small = self.note.font()
        small.setPointSizeF(small.pointSizeF() * 0.85)
        self.note.setFont(small)
        for widget in (self.summary, self.bars, self.heatmap_button, self.examples_title):
            outer.addWidget(widget)
        outer.addLayout(self.examples)
        outer.addWidget(self.note)

    # -- which layer and feature -----------------------------------------------------------------------------
    def layer(self) -> QgsVectorLayer | None:
        """The active layer when it is a Planet Terrain result, else the panel's result layer."""
        active = self._active_layer()
        if isinstance(active, QgsVectorLayer) and not sip.isdeleted(active) and probability_fields(active):
            return active
        return self._result_layer()

    def refresh(self, *_args) -> None:
        """Follow the current layer's selection (re-connecting to a new layer) and show its first selected cell."""
        layer = self.layer()
        if layer is not self._layer:
            if self._layer is not None and not sip.isdeleted(self._layer):
                self._layer.selectionChanged.disconnect(self.refresh)
            self._layer = layer
            if layer is not None:
                layer.selectionChanged.connect(self.refresh)
        ids = sorted(layer.selectedFeatureIds()) if layer is not None else []
        self.feature = next(layer.getFeatures(QgsFeatureRequest(ids[0])), None) if ids else None
        self._show_bars(layer, len(ids))
        if not self.isCollapsed():
            self._show_examples()
        self._update_button()

    def _show_bars(self, layer: QgsVectorLayer | None, selected: int) -> None:
        fields = probability_fields(layer) if layer is not None else []
        if not fields or self.feature is None:
            self.summary.setText("Select a cell of a Planet Terrain result layer (Select Features tool) to see why "
                                 "it got its label." if layer is None or fields else
                                 f"'{layer.name()}' is not a Planet Terrain result.")
            self.bars.set_rows([], "")
            return
        f, model = self.feature, self._model()
        label = str(f[LABEL_FIELD])
        more = f" ({selected} selected: the first is shown)" if selected > 1 else ""
        if label == UNKNOWN_LABEL:
            why = abstention_words(str(f[REASON_FIELD] or ""), number(f[CONFIDENCE_FIELD]), self._threshold())
            self.summary.setText(f"Cell {f.id()}: {UNKNOWN_LABEL}, because {why}{more}.")
        else:
            self.summary.setText(f"Cell {f.id()}: {label}, confidence {number(f[CONFIDENCE_FIELD]):.2f}{more}.")
        self.bars.set_rows([(class_name(n, model), number(f[n])) for n in fields], label)

    # -- what the model needs ------------------------------------------------------------------------------
    def explain_problem(self) -> str | None:
        """Why the selected cell cannot be run through the model here, or None."""
        model, f = self._model(), self.feature
        if f is None:
            return "select a cell first"
        if model is None:
            return "no model is loaded (see the Model box)"
        names = self._layer.fields().names() if self._layer is not None else []
        ours = (model.contract.model_name, model.contract.model_version)
        made_by = tuple(str(f[k]) if k in names else v for k, v in zip(("model", "model_version"), ours))
        if made_by != ours:
            return (f"this cell was classified by {' '.join(made_by)}, the panel's model is {' '.join(ours)}: "
                    "choose that model in the Model box to explain it")
        if source_raster_of(self._layer) is None:
            return "the raster of this result is not in the project; add it to explain the cell"
        return None

    def _cell(self) -> qgis_explain.CellInput:
        try:
            source = raster_source(source_raster_of(self._layer))
        except ExtentError as exc:
            raise qgis_explain.ExplainError(str(exc)) from None
        return qgis_explain.cell_input(source, self.feature, self._model())

    def _body(self) -> str | None:
        names = self._layer.fields().names()
        body = str(self.feature["body"]) if "body" in names else ""
        return body if body in KNOWN_BODIES else None

    # -- nearest training examples ---------------------------------------------------------------------------
    def _show_examples(self) -> None:
        self.neighbours = []
        self._clear_examples()
        model = self._model()
        backbone = getattr(model, "backbone", None) or model  # a taught head's examples are its backbone's
        try:
            gallery = gallery_for(backbone.contract, self.gallery_dir) if backbone is not None else None
        except GalleryError as exc:
            self.note.setText(str(exc))
            return
        if gallery is None:
            self.note.setText(NO_GALLERY)
            return
        problem = self.explain_problem()
        if problem is None:
            try:
                self.neighbours = qgis_explain.nearest_examples(model, self._cell(), gallery, NEIGHBOURS)
            except qgis_explain.ExplainError as exc:
                problem = str(exc)
        for row, n in enumerate(self.neighbours):
            source = n.source.replace("_", "_\u200b")  # a long image id may wrap at its underscores
            picture, words = QLabel(self), QLabel(f"{n.label}\n{source}\nsimilarity {n.similarity:.2f}", self)
            picture.setPixmap(thumbnail_pixmap(n.thumbnail))
            picture.setToolTip(n.file)
            words.setWordWrap(True)
            self.examples.addWidget(picture, row, 0)
            self.examples.addWidget(words, row, 1)
        cite = f"Training images: {gallery.citation}; {gallery.licence}."
        self.note.setText(cite if problem is None else f"{problem[0].upper()}{problem[1:]}.\n{cite}")

    def _clear_examples(self) -> None:
        while self.examples.count():
            widget = self.examples.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()

    # -- heatmap ---------------------------------------------------------------------------------------------
    def _update_button(self) -> None:
        running = self.task is not None
        self.heatmap_button.setText("Cancel heatmap" if running else "Heatmap")
        self.heatmap_button.setEnabled(running or self.explain_problem() is None)

    def heatmap_clicked(self) -> None:
        if self.task is not None:
            self.task.cancel()
            return
        self.start_heatmap()

    def start_heatmap(self) -> qgis_explain.ExplainTask | None:
        """Start the occlusion map of the selected cell as a QGIS task (None: refused, with a message)."""
        problem = self.explain_problem()
        try:
            if problem is not None:
                raise qgis_explain.ExplainError(problem)
            cell, model, f = self._cell(), self._model(), self.feature
        except qgis_explain.ExplainError as exc:
            self.message(f"Why this label: {exc}", Qgis.Warning)
            return None
        label = str(f[LABEL_FIELD])
        index = explain.class_to_explain(model.contract, label,
                                         [number(f[n.field_name]) for n in model.contract.classes])
        name = qgis_explain.heatmap_name(f)
        self.task = qgis_explain.ExplainTask(f"Planet Terrain: {name}", model, cell, index, self._body(),
                                             lambda task: self._heatmap_done(task, name))
        QgsApplication.taskManager().addTask(self.task)
        self._update_button()
        return self.task

    def _heatmap_done(self, task: qgis_explain.ExplainTask, name: str) -> None:
        self.task = None
        if sip.isdeleted(self):
            return
        self._update_button()
        if task.occlusion is None:
            self.message(f"Why this label: {task.error}", Qgis.Info if task.cancelled else Qgis.Warning)
            return
        self.heatmap_layer = qgis_explain.add_heatmap_layer(task.occlusion, task.cell, name)
        self.message(f"'{name}': red where greying out the cell lowers the probability of "
                     f"{task.model.contract.class_names[task.occlusion.class_index]} most (from "
                     f"{task.occlusion.base_probability:.2f})", Qgis.Info)

    def clean_up(self) -> None:
        """Cancel a running heatmap and stop following the layer (plugin unload)."""
        if self.task is not None:
            self.task.cancel()
        if self._layer is not None and not sip.isdeleted(self._layer):
            self._layer.selectionChanged.disconnect(self.refresh)
        self._layer = None
