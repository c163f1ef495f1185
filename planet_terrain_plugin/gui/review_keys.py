"""Plain review keys while the map canvas or the result layer's attribute table has focus.

A reviewer looks at the map (or the table), selects cells and gives a verdict: reaching for the panel's buttons
each time breaks the flow. While a map canvas or an attribute table of the result layer has the keyboard focus,

* ``A`` accepts the selected cells (keeps their label, marks them reviewed),
* ``C`` opens the list of labels at the mouse (each with its digit) to correct them to one,
* ``1`` … ``9`` correct them at once to the label of that number in the Review box's list.

The keys are taken only there, and only when they cannot mean something else: never from a text field (an
editor inside the table has the focus itself, so it gets its keys), never while the result layer is being
edited, never while a digitizing tool is active on the canvas (the Advanced Digitizing panel uses plain letters
too). Anywhere else the key goes where it always went. The widgets are found as they take the focus
(``QApplication.focusChanged``), so an attribute table opened later is covered without any hook into it.
"""
from __future__ import annotations

from typing import Callable

from qgis.core import QgsVectorLayer
from qgis.gui import QgsAttributeTableFilterModel, QgsMapCanvas, QgsMapToolAdvancedDigitizing
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QEvent, QObject, Qt
from qgis.PyQt.QtWidgets import QApplication, QWidget

ACCEPT_KEY, CORRECT_KEY = Qt.Key_A, Qt.Key_C
DIGIT_KEYS = {getattr(Qt, f"Key_{n}"): n for n in range(1, 10)}
#: How the keys read in tooltips.
KEYS_WORDS = "A accepts, C opens the labels, 1–9 correct to a label (on the map or in the attribute table)"


#: Qt class names of the widgets that take the keys. By name: the table view inside QGIS's attribute table
#: reaches Python typed as its base class (QTableView), so ``isinstance`` would miss it.
CANVAS, TABLE = "QgsMapCanvas", "QgsAttributeTableView"


def review_target(widget: QWidget | None) -> QWidget | None:
    """The map canvas or attribute table view ``widget`` is (or lies inside), else None."""
    while widget is not None:
        if widget.inherits(CANVAS) or widget.inherits(TABLE):
            return widget
        widget = widget.parentWidget()
    return None


def table_layer(view: QWidget) -> QgsVectorLayer | None:
    """The layer an attribute table view shows (its model is a QgsAttributeTableFilterModel, typed as its base)."""
    model = view.model() if hasattr(view, "model") else None
    if model is None or not model.inherits("QgsAttributeTableFilterModel"):
        return None
    return sip.cast(model, QgsAttributeTableFilterModel).layer()


class ReviewKeys(QObject):
    """Installs itself as the key filter of each canvas or attribute table that takes the focus (Qt removes the
    filters when it is destroyed with its parent, the Review box).

    ``layer()`` is the result layer; ``accept()``, ``correct_menu()`` and ``correct(n)`` do the review."""

    def __init__(self, layer: Callable[[], QgsVectorLayer | None], accept: Callable[[], object],
                 correct_menu: Callable[[], object], correct: Callable[[int], object],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.layer, self.accept, self.correct_menu, self.correct = layer, accept, correct_menu, correct
        self.watched: list[QWidget] = []
        QApplication.instance().focusChanged.connect(self._focus_changed)

    def watch(self, widget: QWidget) -> None:
        """Take the review keys on ``widget`` (a map canvas or attribute table view); idempotent."""
        if widget not in self.watched:
            widget.installEventFilter(self)
            widget.destroyed.connect(lambda _=None, w=widget: self._forget(w))
            self.watched.append(widget)

    def _forget(self, widget: QWidget) -> None:
        self.watched = [w for w in self.watched if w is not widget]

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        if sip.isdeleted(self):
            return
        target = review_target(new)
        if target is not None:
            self.watch(target)

    def _applies(self, widget: QWidget) -> bool:
        """Whether a plain key on ``widget`` is a review key now (see the module docstring)."""
        layer = self.layer()
        if layer is None or sip.isdeleted(layer) or layer.isEditable():
            return False
        if widget.inherits(CANVAS):
            return not isinstance(sip.cast(widget, QgsMapCanvas).mapTool(), QgsMapToolAdvancedDigitizing)
        return widget.inherits(TABLE) and table_layer(widget) is layer

    def _action(self, widget: QWidget, event) -> Callable[[], object] | None:
        modifiers = event.modifiers() & ~Qt.KeypadModifier
        if modifiers != Qt.NoModifier or not self._applies(widget):
            return None
        key = event.key()
        if key == ACCEPT_KEY:
            return self.accept
        if key == CORRECT_KEY:
            return self.correct_menu
        if key in DIGIT_KEYS:
            return lambda n=DIGIT_KEYS[key]: self.correct(n)
        return None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 -- Qt's name
        if event.type() not in (QEvent.KeyPress, QEvent.ShortcutOverride) or not isinstance(watched, QWidget):
            return False
        action = self._action(watched, event)
        if action is None:
            return False
        if event.type() == QEvent.ShortcutOverride:  # the key is ours here: no window shortcut takes it
            event.accept()
            return True
        action()
        return True
