"""``planet_terrain:classify_grid`` and ``planet_terrain:export_labeled_layer`` through processing.run.

Real rasters, a real tiny ONNX model (tests/model_factory.py) and a real Processing registry. Until the
provider registers these algorithms itself, the fixture registers a provider that adds them.
"""
from __future__ import annotations

import json
import math

import pytest
from qgis.core import (QgsApplication, QgsFeature, QgsGeometry, QgsProcessingException,
                       QgsProcessingFeatureSourceDefinition, QgsProcessingFeedback, QgsProject, QgsRectangle,
                       QgsVectorLayer)

from conftest import APOLLO, MARS_EQUI, MARS_POLAR, VESTA_DAWN, raster_path
from planet_terrain_plugin.core.bodies import semi_major_axis_m
from planet_terrain_plugin.core.grid import rect_area_m2
from planet_terrain_plugin.processing.classify_grid import ClassifyGridAlgorithm, GRID_FIELDS
from planet_terrain_plugin.processing.export_labeled_layer import ExportLabeledLayerAlgorithm
from planet_terrain_plugin.processing.provider import PROVIDER_ID, PlanetTerrainProvider
from planet_terrain_plugin.qgis_io import export

GRID = "planet_terrain:classify_grid"
EXPORT = "planet_terrain:export_labeled_layer"


class _ProviderWithGrid(PlanetTerrainProvider):
    """The plugin's provider plus this module's algorithms (what the registration lines in provider.py do)."""

    def loadAlgorithms(self) -> None:
        super().loadAlgorithms()
        for alg in (ClassifyGridAlgorithm(), ExportLabeledLayerAlgorithm()):
            if self.algorithm(alg.name()) is None:
                self.addAlgorithm(alg)


@pytest.fixture
def grid_processing(qgis_processing):
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById(PROVIDER_ID)
    if existing is not None and existing.algorithm("classify_grid") and existing.algorithm("export_labeled_layer"):
        yield existing
        return
    assert existing is None, "another Planet Terrain provider without the grid algorithms is registered"
    provider = _ProviderWithGrid()
    assert registry.addProvider(provider)
    yield provider
    registry.removeProvider(provider)


def run(alg: str = GRID, feedback=None, **params):
    import processing

    params.setdefault("OUTPUT", "memory:")
    return processing.run(alg, params, feedback=feedback)


def _features(layer):
    return list(layer.getFeatures())


def test_algorithms_are_registered_with_their_parameters(grid_processing):
    registry = QgsApplication.processingRegistry()
    grid = registry.algorithmById(GRID)
    assert grid is not None and grid.provider().id() == PROVIDER_ID
    assert [p.name() for p in grid.parameterDefinitions()] == [
        "INPUT", "EXTENT", "POLYGONS", "CELL_SIZE", "CELL_UNIT", "OVERLAP", "BATCH_SIZE", "MAX_CELLS", "ON_CANCEL", "MODEL",
        "THRESHOLD", "BODY", "HEAD", "OUTPUT"]
    assert registry.algorithmById(EXPORT) is not None


def test_only_input_and_output_classify_the_whole_layer_with_a_derived_cell(grid_processing, tiny_model,
                                                                           raster_layer):
    layer = raster_layer(VESTA_DAWN)  # 180 x 338 px, 162.7 m: coarser than the model's range -> 32 px cells
    res = run(INPUT=str(raster_path(VESTA_DAWN)), MODEL=str(tiny_model))
    out = res["OUTPUT"]
    assert (res["CELL_SIZE_USED"], res["CELL_UNIT_USED"]) == (32, "pixels")
    assert res["CELLS_TOTAL"] == math.ceil(180 / 32) * math.ceil(338 / 32) == 66
    assert res["CELLS_CLASSIFIED"] == out.featureCount() > 0
    assert res["CELLS_CLASSIFIED"] + res["CELLS_NODATA"] == 66 and res["CELLS_OUTSIDE"] == 0
    names = out.fields().names()
    assert names[-2:] == [name for name, _ in GRID_FIELDS] and "p_crater" in names and "label" in names
    feats = _features(out)
    cells = {(f["row"], f["col"]) for f in feats}
    assert len(cells) == len(feats)
    extent = layer.extent()
    px = layer.rasterUnitsPerPixelX()
    for f in feats:
        box = f.geometry().boundingBox()
        assert extent.contains(box) or box.toString(6) == box.intersect(extent).toString(6)
        # cell (row, col) starts col * 32 pixels from the raster's left edge: cells follow the pixel grid
        assert math.isclose(box.xMinimum(), extent.xMinimum() + f["col"] * 32 * px, rel_tol=1e-9, abs_tol=1e-6)
        assert f["body"] == "Vesta" and f["gsd_m"] == pytest.approx(162.673, rel=1e-3)
    counts = json.loads(res["CLASS_COUNTS"])
    assert sum(counts.values()) == len(feats)
    assert counts == {lab: sum(1 for f in feats if f["label"] == lab) for lab in counts}
    areas = json.loads(res["CLASS_AREAS_M2"])
    for label, area in areas.items():
        want = sum(f.geometry().area() for f in feats if f["label"] == label)  # projected metres
        assert area == pytest.approx(want, rel=1e-6)


def test_metre_cells_on_the_geographic_moon(grid_processing, tiny_model, raster_layer):
    layer = raster_layer(APOLLO)
    radius = semi_major_axis_m(layer.crs().toWkt())
    res = run(INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), CELL_SIZE=20000, CELL_UNIT=0)
    feats = _features(res["OUTPUT"])
    assert res["CELL_UNIT_USED"] == "metres" and feats
    deg = 20000 / (radius * math.pi / 180)  # ~0.66 lunar degrees, not Earth's ~0.18
    extent = layer.extent()
    for f in feats:
        box = f.geometry().boundingBox()
        if box.yMinimum() > extent.yMinimum() + 1e-9 and box.yMaximum() < extent.yMaximum() - 1e-9:
            assert box.height() == pytest.approx(deg, rel=1e-9)
        if box.xMaximum() < extent.xMaximum() - 1e-9:  # width grows as 1/cos(latitude), row by row
            lat = (f.geometry().boundingBox().yMinimum() + box.yMaximum()) / 2
            row_centre = extent.yMaximum() - (f["row"] + 0.5) * deg
            assert box.width() == pytest.approx(deg / math.cos(math.radians(row_centre)), rel=1e-9), lat
    # the Apollo frame's zero collar makes the corner cells mostly nodata: skipped and counted
    assert res["CELLS_NODATA"] > 0
    areas = json.loads(res["CLASS_AREAS_M2"])
    want = sum(rect_area_m2(b.xMinimum(), b.yMinimum(), b.xMaximum(), b.yMaximum(), True, radius)
               for b in (f.geometry().boundingBox() for f in feats))
    assert sum(areas.values()) == pytest.approx(want, rel=1e-6)
    assert 300e6 < sum(areas.values()) / len(feats) < 420e6  # ~20 km x 20 km per cell


def test_overlap_on_mars_polar_stereographic(grid_processing, tiny_model, raster_layer):
    layer = raster_layer(MARS_POLAR)  # 50 x 50 px, most of it nodata
    res = run(INPUT=str(raster_path(MARS_POLAR)), MODEL=str(tiny_model), CELL_SIZE=10, CELL_UNIT=1,
              OVERLAP=0.5, BATCH_SIZE=7)
    assert res["CELLS_TOTAL"] == (1 + math.ceil((50 - 10) / 5)) ** 2 == 81
    assert res["CELLS_CLASSIFIED"] + res["CELLS_NODATA"] == 81 and res["CELLS_NODATA"] > 40
    feats = _features(res["OUTPUT"])
    assert len(feats) == res["CELLS_CLASSIFIED"] > 0
    px = layer.rasterUnitsPerPixelX()
    e = layer.extent()
    for f in feats:  # cell (row, col) starts 5 px (the stride) times col from the left edge
        box = f.geometry().boundingBox()
        assert box.xMinimum() == pytest.approx(e.xMinimum() + 5 * px * f["col"], abs=1e-6)
        assert box.yMaximum() == pytest.approx(e.yMaximum() - 5 * px * f["row"], abs=1e-6)
    assert "PolarStereographic" in res["OUTPUT"].crs().description()


def test_extent_is_snapped_to_whole_pixels(grid_processing, tiny_model, raster_layer):
    layer = raster_layer(MARS_EQUI)
    e, px = layer.extent(), layer.rasterUnitsPerPixelX()
    sub = QgsRectangle(e.xMinimum() + 10.3 * px, e.yMinimum() + 10.6 * px, e.xMinimum() + 29.5 * px,
                       e.yMinimum() + 29.2 * px)
    res = run(INPUT=str(raster_path(MARS_EQUI)), MODEL=str(tiny_model), CELL_SIZE=10, CELL_UNIT=1,
              EXTENT=f"{sub.xMinimum()},{sub.xMaximum()},{sub.yMinimum()},{sub.yMaximum()}")
    assert res["CELLS_TOTAL"] == 4 == res["CELLS_CLASSIFIED"]
    boxes = [f.geometry().boundingBox() for f in _features(res["OUTPUT"])]
    assert min(b.xMinimum() for b in boxes) == pytest.approx(e.xMinimum() + 10 * px)
    assert max(b.xMaximum() for b in boxes) == pytest.approx(e.xMinimum() + 30 * px)
    assert min(b.yMinimum() for b in boxes) == pytest.approx(e.yMinimum() + 10 * px)
    assert max(b.yMaximum() for b in boxes) == pytest.approx(e.yMinimum() + 30 * px)


def _polygon_layer(crs, rects) -> QgsVectorLayer:
    poly = QgsVectorLayer("Polygon", "areas", "memory")
    poly.setCrs(crs)
    feats = []
    for r in rects:
        f = QgsFeature()
        f.setGeometry(QgsGeometry.fromRect(r))
        feats.append(f)
    poly.dataProvider().addFeatures(feats)
    return poly


def test_polygons_restrict_cells_all_or_selected(grid_processing, tiny_model, raster_layer):
    layer = raster_layer(MARS_EQUI)  # 50 x 50 px of 0.25 m; the lower right 30 x 30 px hold data
    e, px = layer.extent(), layer.rasterUnitsPerPixelX()

    def rect(col0, row0, col1, row1):  # pixel columns/rows from the top-left corner
        return QgsRectangle(e.xMinimum() + col0 * px, e.yMaximum() - row1 * px, e.xMinimum() + col1 * px,
                            e.yMaximum() - row0 * px)

    a, b = rect(30, 30, 50, 50), rect(10, 40, 20, 50)
    poly = _polygon_layer(layer.crs(), [a, b])
    QgsProject.instance().addMapLayer(poly)
    try:
        res = run(INPUT=str(raster_path(MARS_EQUI)), MODEL=str(tiny_model), CELL_SIZE=10, CELL_UNIT=1,
                  POLYGONS=poly)
        # the grid spans the polygons' bounding box (px 10-50 x 30-50): 4 x 2 cells of 10 px. Kept: the 4
        # under a and the one under b; cell (1, 1) only touches b's edge and is left out with (0, 0), (0, 1).
        assert res["CELLS_TOTAL"] == 8 and res["CELLS_OUTSIDE"] == 3
        assert res["CELLS_CLASSIFIED"] + res["CELLS_NODATA"] == 5
        cells = {(f["row"], f["col"]) for f in _features(res["OUTPUT"])}
        assert cells == {(0, 2), (0, 3), (1, 2), (1, 3), (1, 0)}
        poly.selectByIds([next(poly.getFeatures()).id()])
        res = run(INPUT=str(raster_path(MARS_EQUI)), MODEL=str(tiny_model), CELL_SIZE=10, CELL_UNIT=1,
                  POLYGONS=QgsProcessingFeatureSourceDefinition(poly.id(), selectedFeaturesOnly=True))
        assert res["CELLS_TOTAL"] == 4 and res["CELLS_OUTSIDE"] == 0
        assert {(f["row"], f["col"]) for f in _features(res["OUTPUT"])} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    finally:
        QgsProject.instance().removeMapLayer(poly.id())


def test_polygons_on_another_body_are_refused(grid_processing, tiny_model, raster_layer):
    moon = raster_layer(APOLLO).crs()
    layer = raster_layer(MARS_EQUI)
    poly = _polygon_layer(moon, [QgsRectangle(145, -22, 146, -21)])
    with pytest.raises(QgsProcessingException, match="POLYGONS"):
        run(INPUT=str(raster_path(MARS_EQUI)), MODEL=str(tiny_model), POLYGONS=poly)
    assert layer.isValid()


def test_batch_size_does_not_change_the_result(grid_processing, tiny_model):
    common = dict(INPUT=str(raster_path(VESTA_DAWN)), MODEL=str(tiny_model), CELL_SIZE=40, CELL_UNIT=1)
    def decisions(batch_size: int) -> dict:
        out = run(BATCH_SIZE=batch_size, **common)["OUTPUT"]
        return {(f["row"], f["col"]): (f["label"], f["confidence"]) for f in out.getFeatures()}

    one = decisions(1)
    assert len(one) > 5
    for many in (decisions(64), decisions(512)):  # 512: chunks too big to queue ahead (MAX_QUEUED_CELLS)
        assert one.keys() == many.keys()
        for key in one:
            assert one[key][0] == many[key][0] and one[key][1] == pytest.approx(many[key][1], rel=1e-5)


def test_max_cells_refuses_a_huge_grid(grid_processing, tiny_model):
    with pytest.raises(QgsProcessingException, match=r"66 cells, more than MAX_CELLS \(10\)"):
        run(INPUT=str(raster_path(VESTA_DAWN)), MODEL=str(tiny_model), MAX_CELLS=10)


def test_cancel_stops_between_chunks(grid_processing, tiny_model):
    """Cells are read and written in chunks of whole batches (32 cells at batch 4); a cancel after the first
    chunk leaves just that one written."""
    from planet_terrain_plugin.qgis_io.engine import MIN_CHUNK_CELLS

    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda p: feedback.cancel() if 0 < p < 100 else None)
    res = run(feedback=feedback, INPUT=str(raster_path(VESTA_DAWN)), MODEL=str(tiny_model), CELL_SIZE=16,
              CELL_UNIT=1, BATCH_SIZE=4)
    total = res["CELLS_TOTAL"]
    assert total == math.ceil(180 / 16) * math.ceil(338 / 16)
    assert 0 < res["CELLS_CLASSIFIED"] <= MIN_CHUNK_CELLS < total
    assert res["OUTPUT"].featureCount() == res["CELLS_CLASSIFIED"]


@pytest.mark.parametrize("on_cancel", [0, 1], ids=["keep", "write-nothing"])
def test_cancel_leaves_a_valid_file_of_what_was_done_or_nothing(grid_processing, tiny_model, tmp_path, on_cancel):
    """The user's choice (ON_CANCEL): a GeoPackage holding the cells classified so far, or no file at all."""
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda p: feedback.cancel() if 40 < p < 100 else None)  # past the edge rows
    path = tmp_path / "cancelled.gpkg"
    params = dict(feedback=feedback, INPUT=str(raster_path(VESTA_DAWN)), MODEL=str(tiny_model), CELL_SIZE=16,
                  CELL_UNIT=1, BATCH_SIZE=4, ON_CANCEL=on_cancel, OUTPUT=str(path))
    if on_cancel == 1:  # a cancel is no failure: the run ends normally, without OUTPUT, and says so
        messages = []
        feedback.pushWarning = messages.append
        res = run(**params)
        assert not path.exists() and list(tmp_path.iterdir()) == []
        assert res.get("OUTPUT") is None and res["CELLS_CLASSIFIED"] == 0 and res["CELLS_TOTAL"] > 0
        assert any("nothing was written" in m for m in messages)
        return
    res = run(**params)
    count, crs, names, _ = _reload(str(path))
    assert 0 < count == res["CELLS_CLASSIFIED"] < res["CELLS_TOTAL"]
    assert {"row", "col", "label"} <= set(names) and crs.isValid()


def test_gdal_block_cache_is_bounded_during_a_run_and_restored_after(grid_processing, tiny_model, tmp_path):
    """A grid run walks the whole raster: GDAL's cache must not keep every decoded block (memory would grow with
    the cells), and the process-wide limit must come back when the run ends."""
    from osgeo import gdal

    from planet_terrain_plugin.qgis_io.raster_read import MIN_BLOCK_CACHE_BYTES

    before = gdal.GetCacheMax()
    gdal.SetCacheMax(1024 * 2**20)
    try:
        seen = []
        feedback = QgsProcessingFeedback()
        feedback.progressChanged.connect(lambda p: seen.append(gdal.GetCacheMax()) if p < 100 else None)
        res = run(feedback=feedback, INPUT=str(raster_path(VESTA_DAWN)), MODEL=str(tiny_model), CELL_SIZE=16,
                  CELL_UNIT=1, BATCH_SIZE=8, OUTPUT=str(tmp_path / "grid.gpkg"))
        assert res["CELLS_CLASSIFIED"] > 0
        assert set(seen) == {MIN_BLOCK_CACHE_BYTES}  # a small raster needs no more than the floor
        assert gdal.GetCacheMax() == 1024 * 2**20
    finally:
        gdal.SetCacheMax(before)


def _reload(path: str):
    """Plain facts about an exported file; the OGR layer dies with this frame (see the fixture above)."""
    layer = export.load_export(path)
    return (layer.featureCount(), layer.crs(), layer.fields().names(),
            {f["label"] for f in layer.getFeatures()})


def test_export_algorithm_writes_filtered_gpkg_with_crs_and_refuses_to_overwrite(grid_processing, tiny_model,
                                                                                 tmp_path):
    grid = run(INPUT=str(raster_path(VESTA_DAWN)), MODEL=str(tiny_model), CELL_SIZE=40, CELL_UNIT=1,
               THRESHOLD=0.2)["OUTPUT"]
    confident = sum(1 for f in grid.getFeatures() if not f["abstained"])
    assert 0 < confident
    path = str(tmp_path / "grid.gpkg")
    res = run(EXPORT, INPUT=grid, OUTPUT=path, CONFIDENT_ONLY=True)
    assert res["OUTPUT"] == path and res["FEATURE_COUNT"] == confident
    count, crs, names, labels = _reload(path)
    assert count == confident and crs == grid.crs()
    assert {"row", "col"} <= set(names) and "unknown" not in labels
    with pytest.raises(QgsProcessingException, match="already exists"):
        run(EXPORT, INPUT=grid, OUTPUT=path)
    shp = run(EXPORT, INPUT=grid, OUTPUT=str(tmp_path / "grid.shp"), LABELS="crater, spider")
    mapping = json.loads(shp["FIELD_NAMES"])
    assert mapping["p_slope_streak"] == "p_slope_st"
    count, _, _, labels = _reload(shp["OUTPUT"])
    assert labels <= {"crater", "spider"} and count == shp["FEATURE_COUNT"]


def test_a_cell_over_the_raster_edge_is_padded_as_nodata_not_stretched(raster_layer):
    from planet_terrain_plugin.core.grid import Cell
    from planet_terrain_plugin.qgis_io.engine import read_cell
    from planet_terrain_plugin.qgis_io.raster_read import raster_source, read_extent

    layer = raster_layer(MARS_EQUI)  # 50 x 50 px; the lower right holds data
    e, px = layer.extent(), layer.rasterUnitsPerPixelX()
    source = raster_source(layer)
    # 20 x 20 px cell whose right half lies beyond the raster's right edge
    cell = Cell(0, 0, e.xMinimum() + 40 * px, e.yMaximum() - 50 * px, e.xMinimum() + 60 * px, e.yMaximum() - 30 * px)
    data, mask, extent, width, height = read_cell(source, cell, 32, 0.5)
    assert (width, height) == (20, 20) and data.shape == (1, 20, 20)
    assert extent.width() == pytest.approx(20 * px)
    on_raster = read_extent(source, QgsRectangle(cell.xmin, cell.ymin, e.xMaximum(), cell.ymax), 32)
    assert (data[:, :, :10] == on_raster.data).all() and (mask[:, :10] == on_raster.nodata_mask).all()
    assert mask[:, 10:].all()  # the overhang is nodata
    # less than min_valid_fraction of the cell on the raster: not even read
    far = Cell(0, 0, e.xMinimum() + 45 * px, cell.ymin, e.xMinimum() + 65 * px, cell.ymax)
    assert read_cell(source, far, 32, 0.5) is None


def test_chunks_hold_whole_batches_of_valid_cells_across_a_nodata_collar(qgis_app):
    """The reader fills each chunk with cells that have data, so onnxruntime's batches stay full where half the
    grid is the Apollo frame's collar; a chunk also ends after MAX visits, so a long stretch of collar still
    reports progress."""
    from qgis.core import QgsRasterLayer

    from model_factory import tiny_contract
    from planet_terrain_plugin.core import grid as core_grid
    from planet_terrain_plugin.qgis_io.engine import ChunkReader
    from planet_terrain_plugin.qgis_io.raster_read import raster_source

    layer = QgsRasterLayer(str(raster_path(APOLLO)), "apollo")
    source = raster_source(layer)
    px, py = source.pixel_size
    e = source.extent
    grid = core_grid.Grid(core_grid.Extent(e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()),
                          core_grid.cell_size_from_pixels(48, px, py), 0.0, edge="extend")
    reader = ChunkReader(iter(grid), None, source, tiny_contract(), 16, 60)
    chunks = []
    while (chunk := reader()) is not None:
        chunks.append(chunk)
    assert sum(c.visited for c in chunks) == grid.count
    assert all(len(c.reads) == 16 or c.visited == 60 for c in chunks[:-1])
    assert any(c.visited == 60 and len(c.reads) < 16 for c in chunks), "the collar rows end chunks by visits"
    assert all(c.batch.tensors is None or len(c.batch.tensors) == len(c.batch.usable) for c in chunks)
    skipped = sum(c.skipped for c in chunks)
    assert 0.2 * grid.count < skipped < 0.8 * grid.count, "about half the frame is collar"


def test_write_nothing_on_cancel_loads_no_layer_either(grid_processing, tiny_model):
    """A temporary (memory) output holds the cells written before the cancel: with ON_CANCEL "write nothing" it
    must not be loaded on completion, now that the cancelled run ends normally."""
    from qgis.core import QgsProcessingContext, QgsProcessingOutputLayerDefinition, QgsProject

    alg = QgsApplication.processingRegistry().createAlgorithmById(GRID)
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda p: feedback.cancel() if 40 < p < 100 else None)
    params = dict(INPUT=str(raster_path(VESTA_DAWN)), MODEL=str(tiny_model), CELL_SIZE=16, CELL_UNIT=1,
                  BATCH_SIZE=4, ON_CANCEL=1,  # as the Processing dialog passes it: load the result when done
                  OUTPUT=QgsProcessingOutputLayerDefinition("TEMPORARY_OUTPUT", QgsProject.instance()))
    results, ok = alg.run(params, context, feedback)
    assert ok and feedback.isCanceled() and results.get("OUTPUT") is None
    assert context.layersToLoadOnCompletion() == {}
