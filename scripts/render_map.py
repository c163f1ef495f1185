"""Render a classified grid over its raster to a PNG with QGIS's own renderer: map, coloured cells, legend.

``make demo`` calls :func:`render` in-process after the ``classify_grid`` run (the Makefile exports
``QT_QPA_PLATFORM=offscreen``, so no display is needed); it also runs alone::

    .venv/bin/python -m scripts.render_map RASTER GRID.gpkg OUT.png --model MODEL.onnx [--width 1400]

The README's picture (``docs/img/demo_map.png``, kept under 300 KB) is made from ``make demo``'s grid with::

    .venv/bin/python -m scripts.render_map $RASTER build/demo/AS15-M-0295_SML_geo_grid.gpkg docs/img/demo_map.png \
        --model planet_terrain_plugin/models/<model>.onnx --width 900 --height 640 --indexed

A print layout (``QgsPrintLayout``) holds the map (raster + cells, in the raster's CRS), a title and a legend
item listing only the classes present with their cell counts; ``QgsLayoutExporter`` writes the PNG. The
GeoPackage is opened with ``qgis_io.export.load_export`` so its planetary CRS comes back as it was written.
``GDAL_PAM_ENABLED=NO`` keeps GDAL from writing ``.aux.xml`` statistics next to (shared, read-only) rasters.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

os.environ["GDAL_PAM_ENABLED"] = "NO"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: Layout proportions (fractions of the page): title band at the top, legend column on the right.
TITLE_H, LEGEND_W, MARGIN = 0.08, 0.3, 0.02
_PT_PER_MM = 72 / 25.4
DPI = 150.0


def _ensure_qgis():
    """The running QgsApplication, or a headless one started here (kept for the life of the process)."""
    from qgis.core import QgsApplication

    app = QgsApplication.instance()
    if app is None:
        app = QgsApplication([], True)
        app.initQgis()
        _ensure_qgis.app = app  # keep a reference: a collected QgsApplication takes QGIS down
    return app


def shutdown() -> None:
    """Release what :func:`render` kept and stop the QgsApplication started here (none when one was running)."""
    import gc

    render._keep = None  # noqa: SLF001
    gc.collect()
    app = getattr(_ensure_qgis, "app", None)
    if app is not None:
        app.exitQgis()
        _ensure_qgis.app = None


def _with_aspect(extent, aspect: float):
    """``extent`` grown (about its centre) to the width/height ratio ``aspect`` of the map frame."""
    from qgis.core import QgsRectangle

    w, h = extent.width(), extent.height()
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    c = extent.center()
    return QgsRectangle(c.x() - w / 2, c.y() - h / 2, c.x() + w / 2, c.y() + h / 2)


def class_renderer(layer, contract):
    """The plugin's palette (``qgis_io.style``) restricted to the labels present, each labelled with its count."""
    from planet_terrain_plugin.qgis_io.fields import LABEL_FIELD
    from planet_terrain_plugin.qgis_io.style import categorized_renderer

    index = layer.fields().indexOf(LABEL_FIELD)
    if index < 0:
        raise ValueError(f"'{layer.source()}' has no '{LABEL_FIELD}' field: not a Planet Terrain result")
    counts = Counter(str(f.attribute(index)) for f in layer.getFeatures())
    renderer = categorized_renderer(contract)
    for i in reversed(range(len(renderer.categories()))):
        value = renderer.categories()[i].value()
        if value in counts:
            renderer.updateCategoryLabel(i, f"{value} ({counts[value]})")
        else:
            renderer.deleteCategory(i)
    return renderer, counts


def _add_title(layout, text: str, page_w: float, page_h: float, margin: float) -> None:
    from qgis.core import QgsLayoutItemLabel, QgsLayoutPoint, QgsLayoutSize
    from qgis.PyQt.QtGui import QFont

    label = QgsLayoutItemLabel(layout)
    label.setText(text)
    font = QFont()
    font.setPointSizeF(page_h * TITLE_H * 0.45 * _PT_PER_MM)
    label.setFont(font)
    label.attemptMove(QgsLayoutPoint(margin, margin * 0.5))
    label.attemptResize(QgsLayoutSize(page_w - 2 * margin, page_h * TITLE_H))
    layout.addLayoutItem(label)


def _add_map(layout, raster, cells, map_w: float, map_h: float, top: float, margin: float):
    """The map frame: the cells over the raster, the raster's whole extent at the frame's aspect."""
    from qgis.core import QgsLayoutItemMap, QgsLayoutPoint, QgsLayoutSize
    from qgis.PyQt.QtGui import QColor

    item = QgsLayoutItemMap(layout)
    item.attemptMove(QgsLayoutPoint(margin, top))
    item.attemptResize(QgsLayoutSize(map_w, map_h))
    item.setCrs(raster.crs())
    item.setLayers([cells, raster])
    item.setKeepLayerSet(True)
    item.setBackgroundColor(QColor("white"))
    item.setExtent(_with_aspect(raster.extent(), map_w / map_h))
    item.setFrameEnabled(True)
    layout.addLayoutItem(item)
    return item


def _add_legend(layout, cells, map_item, legend_w: float, left: float, top: float):
    """The class legend of ``cells``; returns the layer tree, which the legend model holds by pointer only."""
    from qgis.core import QgsLayerTree, QgsLayoutItemLegend, QgsLayoutPoint, QgsLegendStyle
    from qgis.PyQt.QtGui import QFont

    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("Terrain classes (cells)")
    for style, share in ((QgsLegendStyle.Title, 0.07), (QgsLegendStyle.SymbolLabel, 0.06)):
        legend_font = QFont()
        legend_font.setPointSizeF(legend_w * share * _PT_PER_MM)
        legend.setStyleFont(style, legend_font)
    legend.setSymbolWidth(legend_w * 0.14)
    legend.setSymbolHeight(legend_w * 0.08)
    legend.setLinkedMap(map_item)
    legend.setAutoUpdateModel(False)
    root = QgsLayerTree()
    node = root.addLayer(cells)
    node.setName("")  # the layer title adds nothing under the legend title
    legend.model().setRootGroup(root)
    legend.attemptMove(QgsLayoutPoint(left, top))
    layout.addLayoutItem(legend)
    legend.adjustBoxSize()
    return root


def _save_png(layout, png_path: Path, width: int, height: int, indexed: bool) -> None:
    from qgis.core import QgsLayoutExporter
    from qgis.PyQt.QtCore import QSize, Qt
    from qgis.PyQt.QtGui import QImage

    png_path.parent.mkdir(parents=True, exist_ok=True)
    # renderPageToImage + QImage.save rather than exportToImage: the latter georeferences the PNG through GDAL,
    # whose PNG driver cannot update a file (a spurious "ERROR 6" on every run).
    image = QgsLayoutExporter(layout).renderPageToImage(0, QSize(width, height), DPI)
    if indexed and not image.isNull():
        image = image.convertToFormat(QImage.Format_Indexed8, Qt.DiffuseDither | Qt.PreferDither)
    if image.isNull() or not image.save(str(png_path), "PNG"):
        raise RuntimeError(f"QGIS could not render or save the map to '{png_path}'")


def render(raster_path: str | Path, grid_path: str | Path, png_path: str | Path, model_path: str | Path,
           width: int = 1400, height: int = 1000, title: str | None = None, indexed: bool = False) -> Path:
    """Write ``png_path`` (``width`` x ``height`` px): the raster, the grid cells coloured by class, a legend.

    ``indexed``: save with a 256-colour palette (a third of the size; for pictures in the docs).
    """
    _ensure_qgis()
    from qgis.core import QgsLayoutSize, QgsPrintLayout, QgsProject, QgsRasterLayer, QgsUnitTypes

    from planet_terrain_plugin.core.contract import read_contract
    from planet_terrain_plugin.qgis_io.export import load_export

    raster_path, grid_path, png_path = Path(raster_path), Path(grid_path), Path(png_path)
    raster = QgsRasterLayer(str(raster_path), raster_path.stem)
    if not raster.isValid():
        raise ValueError(f"'{raster_path}' could not be opened as a raster")
    cells = load_export(str(grid_path), "Terrain classes")
    contract = read_contract(str(model_path))
    renderer, counts = class_renderer(cells, contract)
    cells.setRenderer(renderer)

    project = QgsProject()  # a private project: the caller's (or QGIS's) project is left alone
    project.addMapLayers([raster, cells])
    project.setCrs(raster.crs())
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    page_w, page_h = width / DPI * 25.4, height / DPI * 25.4
    layout.pageCollection().page(0).setPageSize(QgsLayoutSize(page_w, page_h, QgsUnitTypes.LayoutMillimeters))
    margin = MARGIN * page_w
    _add_title(layout, title or f"{raster_path.stem}: {sum(counts.values())} cells, {contract.model_name} "
                                f"{contract.model_version}", page_w, page_h, margin)
    map_w = page_w * (1 - LEGEND_W) - 2 * margin
    top = page_h * TITLE_H + margin
    map_item = _add_map(layout, raster, cells, map_w, page_h * (1 - TITLE_H) - 2 * margin, top, margin)
    root = _add_legend(layout, cells, map_item, page_w * LEGEND_W - margin, margin * 2 + map_w, top)
    render._keep = (project, root)  # noqa: SLF001 -- the legend model holds root by pointer only
    _save_png(layout, png_path, width, height, indexed)
    return png_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raster", type=Path)
    parser.add_argument("grid", type=Path, help="a classify_grid output (GeoPackage or any export format)")
    parser.add_argument("png", type=Path)
    parser.add_argument("--model", required=True, type=Path, help="the model that made the grid (its classes)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--title")
    parser.add_argument("--indexed", action="store_true", help="256-colour PNG (smaller; for the docs)")
    args = parser.parse_args(argv)
    try:
        out = render(args.raster, args.grid, args.png, args.model, args.width, args.height, args.title,
                     args.indexed)
    finally:
        shutdown()
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
