"""One run path: the panel and the map tool run the Processing algorithms ``qgis_process`` runs.

Driven through the real plugin on pytest-qgis's interface (fixtures of ``test_gui_dock``): a rectangle dragged
with the map tool is classified at the panel's threshold (written so, not re-labelled afterwards); a huge grid is
counted and asked about before any task starts, with the count the algorithm itself lays; and the same rectangle
and the same grid through the panel and through ``qgis_process.bin`` give the same features, field by field.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProject, QgsRectangle, QgsReferencedRectangle, QgsVectorLayer
from qgis.PyQt.QtCore import QPoint

from conftest import APOLLO, raster_path, wait_until
from planet_terrain_plugin.gui import run_panel
from planet_terrain_plugin.processing.grid_plan import count_cells
from planet_terrain_plugin.qgis_io.model_choice import load_run_model
from scripts import qgis_process as qgis_process_runner
from test_gui_dock import (_answer_question, apollo, choose, click, dock, huge_moon_raster,  # noqa: F401
                           no_model_setting, plugin, run_and_wait)
from test_plugin_task import drag
from test_qgis_raster_read import pixel_rect

QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")
#: Fields that may differ between two runs of the same input: when and where (CPU/GPU) the model ran.
RUN_FIELDS = {"created_utc", "provider"}


def drag_rectangle(plugin, dock, canvas, a: QPoint, b: QPoint):
    """Drag with the map tool, started from the panel in rectangle mode; the controller's finished run."""
    click(dock.run_box.run_button)
    assert canvas.mapTool() is plugin.tool
    done = []
    plugin.controller.listeners.append(done.append)
    try:
        drag(canvas, a, b)
        assert wait_until(lambda: bool(done), 30), "the rectangle was not classified in time"
    finally:
        plugin.controller.listeners.remove(done.append)
    return done[0]


@pytest.fixture
def apollo_canvas(qgis_iface, apollo):
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(apollo.crs())
    canvas.setExtent(pixel_rect(apollo, 500, 400, 300, 300))
    QgsApplication.processEvents()
    return canvas


def test_a_rectangle_is_classified_at_the_panels_threshold(plugin, dock, apollo, apollo_canvas):
    """The slider's threshold goes into the run: the feature is written abstained, no label is edited after."""
    edits: list = []

    def watch(layer) -> None:
        if isinstance(layer, QgsVectorLayer):
            layer.attributeValueChanged.connect(lambda *args: edits.append(args))

    QgsProject.instance().layerWasAdded.connect(watch)
    try:
        choose(dock, apollo, run_panel.MODE_EXTENT)
        dock.run_box.threshold_slider.setValue(1000)  # every label abstains below a confidence of 1
        run = drag_rectangle(plugin, dock, apollo_canvas, QPoint(50, 60), QPoint(200, 220))
    finally:
        QgsProject.instance().layerWasAdded.disconnect(watch)
    assert run.error is None and run.parameters["THRESHOLD"] == 1.0
    (feature,) = list(dock.result_layer().getFeatures())
    assert feature["confidence"] < 1.0 and feature["abstained"] is True and feature["label"] == "unknown"
    assert edits == [], "the layer was re-labelled after the run instead of being classified at the threshold"


@pytest.mark.parametrize("cells, area", [
    (dict(CELL_SIZE=20000, CELL_UNIT=0), None),
    (dict(CELL_SIZE=None, CELL_UNIT=1), None),
    (dict(CELL_SIZE=100, CELL_UNIT=1), (400, 300, 450, 400)),  # pixel rectangle of the raster
    (dict(CELL_SIZE=3.5, CELL_UNIT=0), (-5000, -5000, 10, 10)),  # off the raster: refused, not counted
])
def test_the_panels_count_is_the_grid_the_algorithm_lays(terrain_processing, raster_layer, tiny_model, cells,
                                                         area):
    import processing

    from qgis.core import QgsProcessingException

    layer = raster_layer(APOLLO)
    QgsProject.instance().addMapLayer(layer)
    try:
        params = dict(INPUT=layer.id(), MODEL=str(tiny_model), OUTPUT="memory:", **cells)
        if area is not None:
            params["EXTENT"] = extent_text(pixel_rect(layer, *area))
        counted = count_cells(params, load_run_model(str(tiny_model)))
        try:
            total = processing.run("planet_terrain:classify_grid", params)["CELLS_TOTAL"]
        except QgsProcessingException:
            total = None
    finally:
        QgsProject.instance().removeAllMapLayers()
    assert counted == total and (total is None or total > 0)


def test_a_huge_grid_is_asked_about_before_any_task_starts(dock, huge_moon_raster, bar):
    from qgis.PyQt.QtWidgets import QMessageBox

    started: list = []
    QgsApplication.taskManager().taskAdded.connect(started.append)
    choose(dock, huge_moon_raster, run_panel.MODE_GRID_LAYER, 8, "pixels")  # 1,025 x 1,025 cells
    seen: list = []
    _answer_question(QMessageBox.No, seen)
    finished: list = []
    dock.runFinished.connect(finished.append)
    try:
        click(dock.run_box.run_button)
        assert wait_until(lambda: bool(finished), 30) and finished == [False]
    finally:
        dock.runFinished.disconnect(finished.append)
        QgsApplication.taskManager().taskAdded.disconnect(started.append)
    assert "1,050,625 cells" in seen[0] and started == [] and dock.grid_run is None


# -- the same runs through the panel and through qgis_process ------------------------------------------------
@pytest.fixture(scope="module")
def qgis_profile(tmp_path_factory) -> Path:
    if not QGIS_PROCESS.exists():
        pytest.skip("qgis_process.bin is not installed")
    return qgis_process_runner.make_profile(tmp_path_factory.mktemp("qgis-profile"))


def extent_text(rect: QgsRectangle) -> str:
    """An EXTENT for qgis_process without a CRS: taken as the raster's own (planetary CRSs have no authid)."""
    return ",".join(repr(v) for v in (rect.xMinimum(), rect.xMaximum(), rect.yMinimum(), rect.yMaximum()))


def same_value(a, b, rel: float = 1e-9) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=rel, abs=rel * 1e-3)
    return a == b


#: The network computes in float32: a batch of other size or another thread count sums in another order, and
#: the probabilities may differ in their last float32 bits (~1e-7).
FLOAT32_REL = 1e-6


def assert_same_features(panel: QgsVectorLayer, cli: QgsVectorLayer, key) -> None:
    """Every field but :data:`RUN_FIELDS` equal (the model's numbers to :data:`FLOAT32_REL`, the others to
    1e-9), geometries vertex by vertex; the run fields only well-formed (a timestamp, a provider name)."""
    names = [n for n in panel.fields().names() if n not in RUN_FIELDS]
    model_numbers = {"confidence"} | {n for n in names if n.startswith("p_")}
    assert [n for n in cli.fields().names() if n != "fid"] == panel.fields().names()
    ours = {key(f): f for f in panel.getFeatures()}
    theirs = {key(f): f for f in cli.getFeatures()}
    assert ours.keys() == theirs.keys() and ours
    for k, a in ours.items():
        b = theirs[k]
        differing = [n for n in names if not same_value(a[n], b[n], FLOAT32_REL if n in model_numbers else 1e-9)]
        assert not differing, f"{k}: " + ", ".join(f"{n}: {a[n]!r} != {b[n]!r}" for n in differing)
        va, vb = list(a.geometry().vertices()), list(b.geometry().vertices())
        assert len(va) == len(vb) and all(same_value(p.x(), q.x()) and same_value(p.y(), q.y())
                                          for p, q in zip(va, vb))
        for f in (a, b):
            assert f["created_utc"].endswith("Z") and f["provider"].endswith("ExecutionProvider")


def cli_layer(profile: Path, algorithm: str, out: Path, **params) -> QgsVectorLayer:
    qgis_process_runner.run_algorithm(algorithm, dict(params, OUTPUT=str(out)), profile, timeout=300)
    layer = QgsVectorLayer(str(out), out.stem, "ogr")
    assert layer.isValid()
    return layer


@pytest.mark.slow
def test_panel_and_qgis_process_give_the_same_features(plugin, dock, apollo, apollo_canvas, tiny_model,
                                                       qgis_profile, tmp_path):
    common = dict(INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), THRESHOLD="0.5", BODY="0")
    choose(dock, apollo, run_panel.MODE_EXTENT)
    dock.run_box.threshold_slider.setValue(500)
    run = drag_rectangle(plugin, dock, apollo_canvas, QPoint(50, 60), QPoint(200, 220))
    assert run.error is None and isinstance(run.parameters["EXTENT"], QgsReferencedRectangle)
    cli = cli_layer(qgis_profile, "planet_terrain:classify_extent", tmp_path / "extent.gpkg",
                    EXTENT=extent_text(run.parameters["EXTENT"]), **common)
    assert_same_features(dock.result_layer(), cli, key=lambda f: 0)

    choose(dock, apollo, run_panel.MODE_GRID_LAYER, 20000, "metres")
    assert run_and_wait(dock)
    cli = cli_layer(qgis_profile, "planet_terrain:classify_grid", tmp_path / "grid.gpkg",
                    CELL_SIZE="20000", CELL_UNIT="0", **common)
    assert_same_features(dock.result_layer(), cli, key=lambda f: (f["row"], f["col"]))
