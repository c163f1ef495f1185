"""The look of result layers: one fixed colour per class, ``unknown`` hatched, categorised by the label field.

Fixed colours (not a random ramp) so a crater is the same colour in every layer, project and screenshot.
``unknown`` keeps its grey in the legend but is drawn with a light outline and a diagonal hatch: a grey fill
alone vanishes on grey lunar and Martian images.
"""
from __future__ import annotations

import hashlib

from qgis.core import (QgsCategorizedSymbolRenderer, QgsExpression, QgsFillSymbol, QgsLinePatternFillSymbolLayer,
                       QgsProperty, QgsRendererCategory, QgsSimpleFillSymbolLayer, QgsSymbolLayer, QgsVectorLayer)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor

from ..core.contract import HIRISE_LANDFORMS, UNKNOWN_LABEL, ModelContract
from .fields import LABEL_FIELD, REVIEWED_FIELD

#: A colour per HiRISE landform, in the contract's output order (colour-blind-friendly where possible).
LANDFORM_COLOURS = ("#e6194b", "#3b2f8f", "#f58231", "#ffe119", "#911eb4", "#42d4f4", "#3cb44b")
if len(LANDFORM_COLOURS) != len(HIRISE_LANDFORMS):
    raise ImportError(f"style.py has {len(LANDFORM_COLOURS)} landform colours for {len(HIRISE_LANDFORMS)} classes")
#: The palette by class name, derived from the contract's class list; defined only here.
PALETTE: dict[str, str] = {**{c.name: colour for c, colour in zip(HIRISE_LANDFORMS, LANDFORM_COLOURS)},
                           UNKNOWN_LABEL: "#9e9e9e"}
FILL_ALPHA = 90  # of 255: the raster stays readable under the polygons
#: How ``unknown`` stands out on grey images: a near-white outline and hatch, over the palette's grey.
UNKNOWN_LINE = "#f5f5f5"
UNKNOWN_HATCH_MM = 3.0  # distance between hatch lines
UNKNOWN_HATCH_ALPHA = 170  # of 255: the terrain under the hatch stays readable


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


def _unknown_symbol() -> QgsFillSymbol:
    """A light outline and a diagonal hatch over a faint grey fill: visible on dark and on grey images."""
    symbol = _symbol(class_colour(UNKNOWN_LABEL))
    symbol.symbolLayer(0).setStrokeColor(QColor(UNKNOWN_LINE))
    symbol.symbolLayer(0).setStrokeWidth(0.6)
    symbol.symbolLayer(0).setStrokeStyle(Qt.DashLine)
    hatch = QgsLinePatternFillSymbolLayer()
    hatch.setLineAngle(45)
    hatch.setDistance(UNKNOWN_HATCH_MM)
    hatch_colour = QColor(UNKNOWN_LINE)
    hatch_colour.setAlpha(UNKNOWN_HATCH_ALPHA)
    hatch.setColor(hatch_colour)
    hatch.setLineWidth(0.25)
    symbol.appendSymbolLayer(hatch)
    return symbol


def categorized_renderer(contract: ModelContract) -> QgsCategorizedSymbolRenderer:
    """Categories for every class of ``contract`` plus ``unknown``, on the label field."""
    categories = [QgsRendererCategory(label, _symbol(class_colour(label)), label) for label in contract.class_names]
    categories.append(QgsRendererCategory(UNKNOWN_LABEL, _unknown_symbol(), UNKNOWN_LABEL))
    return QgsCategorizedSymbolRenderer(LABEL_FIELD, categories)


def apply_style(layer: QgsVectorLayer, contract: ModelContract) -> None:
    layer.setRenderer(outline_reviewed(categorized_renderer(contract)))
    layer.triggerRepaint()


#: Outline of a reviewed feature: thick and black, whatever its class colour (``qgis_io.review``).
REVIEWED_OUTLINE = ("#000000", 1.4)


def outline_reviewed(renderer: QgsCategorizedSymbolRenderer) -> QgsCategorizedSymbolRenderer:
    """Every category's outline drawn thick and black where the feature is reviewed (data-defined, so a layer
    without the review fields draws as before)."""
    test = f"coalesce({QgsExpression.quotedColumnRef(REVIEWED_FIELD)}, false)"
    colour, width = REVIEWED_OUTLINE
    for index, category in enumerate(renderer.categories()):
        symbol = category.symbol().clone()
        for layer in (sl for sl in symbol.symbolLayers() if isinstance(sl, QgsSimpleFillSymbolLayer)):
            stroke = layer.strokeColor().name(QColor.HexArgb)
            layer.setDataDefinedProperty(QgsSymbolLayer.PropertyStrokeColor, QgsProperty.fromExpression(
                f"if({test}, '{colour}', '{stroke}')"))
            layer.setDataDefinedProperty(QgsSymbolLayer.PropertyStrokeWidth, QgsProperty.fromExpression(
                f"if({test}, {width}, {layer.strokeWidth()})"))
        renderer.updateCategorySymbol(index, symbol)
    return renderer
