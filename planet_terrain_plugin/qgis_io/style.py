"""The look of result layers: one fixed colour per class, ``unknown`` in grey, categorised by the label field.

Fixed colours (not a random ramp) so a crater is the same colour in every layer, project and screenshot.
"""
from __future__ import annotations

import hashlib

from qgis.core import QgsCategorizedSymbolRenderer, QgsFillSymbol, QgsRendererCategory, QgsVectorLayer
from qgis.PyQt.QtGui import QColor

from ..core.contract import HIRISE_LANDFORMS, UNKNOWN_LABEL, ModelContract
from .fields import LABEL_FIELD

#: A colour per HiRISE landform, in the contract's output order (colour-blind-friendly where possible).
LANDFORM_COLOURS = ("#e6194b", "#3b2f8f", "#f58231", "#ffe119", "#911eb4", "#42d4f4", "#3cb44b")
if len(LANDFORM_COLOURS) != len(HIRISE_LANDFORMS):
    raise ImportError(f"style.py has {len(LANDFORM_COLOURS)} landform colours for {len(HIRISE_LANDFORMS)} classes")
#: The palette by class name, derived from the contract's class list; defined only here.
PALETTE: dict[str, str] = {**{c.name: colour for c, colour in zip(HIRISE_LANDFORMS, LANDFORM_COLOURS)},
                           UNKNOWN_LABEL: "#9e9e9e"}
FILL_ALPHA = 90  # of 255: the raster stays readable under the polygons


def class_colour(name: str) -> QColor:
    """The palette colour, or a stable colour derived from the name for classes outside the palette."""
    if name in PALETTE:
        return QColor(PALETTE[name])
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return QColor.fromHsv(digest[0] * 360 // 256, 160 + digest[1] % 80, 170 + digest[2] % 70)


def _symbol(colour: QColor) -> QgsFillSymbol:
    fill = QColor(colour)
    fill.setAlpha(FILL_ALPHA)
    symbol = QgsFillSymbol.createSimple({"outline_width": "0.6", "outline_style": "solid"})
    symbol.setColor(fill)
    symbol.symbolLayer(0).setStrokeColor(colour)
    return symbol


def categorized_renderer(contract: ModelContract) -> QgsCategorizedSymbolRenderer:
    """Categories for every class of ``contract`` plus ``unknown``, on the label field."""
    labels = list(contract.class_names) + [UNKNOWN_LABEL]
    categories = [QgsRendererCategory(label, _symbol(class_colour(label)), label) for label in labels]
    return QgsCategorizedSymbolRenderer(LABEL_FIELD, categories)


def apply_style(layer: QgsVectorLayer, contract: ModelContract) -> None:
    layer.setRenderer(categorized_renderer(contract))
    layer.triggerRepaint()
