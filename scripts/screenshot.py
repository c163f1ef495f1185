"""``make screenshot``: the panel as a user sees it, from the real QGIS desktop under Xvfb.

A throw-away QGIS profile (under ``--out``) links the plugin and enables it; QGIS starts with
:data:`STARTUP` as its ``--code`` script, which loads the Apollo frame, opens the panel, runs a 20 km grid
over the layer from the panel's Run button and, once it has finished, saves the whole screen
(``desktop.png``) and the panel's full contents (``dock.png``); then it selects the most confident crater cell,
opens "Why this label", draws its heatmap and saves that section beside the map zoomed on the cell
(``why.png``). The README shows the last two. The picture is the test of a layout change that a geometry check
cannot see: look at it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "planet_terrain_plugin"
RASTER = ROOT.parent / "shared" / "data" / "rasters" / "AS15-M-0295_SML_geo.tif"
STARTUP = textwrap.dedent('''
    import os
    from qgis.utils import iface, plugins
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
    from qgis.PyQt.QtCore import QTimer
    from qgis.PyQt.QtGui import QColor, QPainter, QPixmap
    from qgis.PyQt.QtWidgets import QApplication
    from planet_terrain_plugin.gui import run_panel

    OUT, RASTER = os.environ["SHOT_OUT"], os.environ["SHOT_RASTER"]
    iface.mainWindow().showMaximized()
    layer = QgsRasterLayer(RASTER, os.path.splitext(os.path.basename(RASTER))[0])
    QgsProject.instance().addMapLayer(layer)
    iface.mapCanvas().setExtent(layer.extent())
    plugin = plugins["planet_terrain_plugin"]
    plugin.dock_action.trigger()
    if plugin.dock is None or not plugin.dock.isVisible():  # a profile that remembered it open toggles it shut
        plugin.dock_action.trigger()
    dock = plugin.dock

    def run():
        box = dock.run_box
        box.layer_combo.setLayer(layer)
        box.mode_combo.setCurrentIndex(box.mode_combo.findData(run_panel.MODE_GRID_LAYER))
        box.cell_unit_combo.setCurrentText("metres")
        box.cell_size_spin.setValue(20000)
        dock.runFinished.connect(lambda _ok: QTimer.singleShot(1500, shoot))
        box.run_button.click()

    def shoot():
        QApplication.processEvents()
        QApplication.primaryScreen().grabWindow(0).save(os.path.join(OUT, "desktop.png"))
        dock.widget().widget().grab().save(os.path.join(OUT, "dock.png"))
        why()

    def why():  # the most confident crater cell, its "Why this label" section and its heatmap over the cell
        layer = dock.result_layer()
        cell = max((f for f in layer.getFeatures() if f["label"] == "crater"), key=lambda f: f["confidence"])
        layer.selectByIds([cell.id()])
        dock.why_box.setCollapsed(False)
        dock.why_box.refresh()
        dock.why_box.start_heatmap()
        canvas = iface.mapCanvas()
        canvas.setSelectionColor(QColor(0, 0, 0, 0))  # QGIS's yellow selection fill would hide the heatmap
        box = cell.geometry().boundingBox()
        box.grow(box.width() * 0.25)
        canvas.setExtent(canvas.mapSettings().layerToMapCoordinates(layer, box))
        canvas.refresh()
        wait(lambda: dock.why_box.task is None and dock.why_box.heatmap_layer is not None, compose)

    def wait(ready, then, tries=600):
        if ready() or tries == 0:
            QTimer.singleShot(3000, then)  # the canvas draws the new layer meanwhile
        else:
            QTimer.singleShot(100, lambda: wait(ready, then, tries - 1))

    def compose():
        QApplication.processEvents()
        side, view = dock.why_box.grab(), iface.mapCanvas().grab()
        view = view.scaledToHeight(min(view.height(), side.height()))
        picture = QPixmap(side.width() + view.width(), max(side.height(), view.height()))
        picture.fill(QColor("white"))
        painter = QPainter(picture)
        painter.drawPixmap(0, 0, side)
        painter.drawPixmap(side.width(), 0, view)
        painter.end()
        picture.save(os.path.join(OUT, "why.png"))
        QgsApplication.exit(0)

    QTimer.singleShot(3000, run)
''')


def profile(out: Path) -> Path:
    """A fresh profile folder with the plugin linked and enabled."""
    base = out / "profiles" / "profiles" / "default"
    (base / "python" / "plugins").mkdir(parents=True, exist_ok=True)
    (base / "QGIS").mkdir(exist_ok=True)
    link = base / "python" / "plugins" / PLUGIN.name
    if not link.exists():
        link.symlink_to(PLUGIN)
    (base / "QGIS" / "QGIS3.ini").write_text(f"[PythonPlugins]\n{PLUGIN.name}=true\n\n[qgis]\ncheckVersion=false\n")
    return out / "profiles"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/screenshot", help="folder for the profile and the pictures")
    parser.add_argument("--raster", default=str(RASTER))
    parser.add_argument("--timeout", type=int, default=300)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    startup = out / "startup.py"
    startup.write_text(STARTUP)
    site = [p for p in sys.path if p.endswith("site-packages") and str(ROOT) in p]  # the venv's onnxruntime
    # xcb: the desktop draws on Xvfb's screen; the Makefile's offscreen platform (for tests) has no clipboard, on
    # which QGIS's main window crashes while it starts.
    env = dict(os.environ, SHOT_OUT=str(out), SHOT_RASTER=args.raster, GDAL_PAM_ENABLED="NO", QT_QPA_PLATFORM="xcb",
               PYTHONPATH=os.pathsep.join(site + [str(ROOT)]))
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--profiles-path", str(profile(out)),
           "--nologo", "--noversioncheck", "--code", str(startup)]
    shots = [out / "desktop.png", out / "dock.png", out / "why.png"]
    for shot in shots:  # pictures of an earlier run must not pass for this one's
        shot.unlink(missing_ok=True)
    done = subprocess.run(cmd, env=env, timeout=args.timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if not all(p.is_file() for p in shots):
        print(done.stdout[-3000:], file=sys.stderr)
        print("error: QGIS ended without taking the screenshots (see its output above)", file=sys.stderr)
        return 1
    print("\n".join(str(p) for p in shots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
