"""The batch command and ``classify_grid`` give the same cells, labels and probabilities on the same raster.

Both run for real: ``processing.run("planet_terrain:classify_grid")`` in this QGIS, the batch command in its own
process (rasterio reads the pixels, no QGIS), with the same tiny ONNX model and the same cell size.
"""
from __future__ import annotations

import math

import pytest
from qgis.core import QgsVectorLayer

from batch_helpers import partition_rows, run_batch
from conftest import APOLLO, MARS_EQUI, VESTA_DAWN, raster_path
from planet_terrain_plugin.core.batch.parquet import wkb_box
from planet_terrain_plugin.core.result_schema import result_field_kinds
from planet_terrain_plugin.core.contract import read_contract

GRID = "planet_terrain:classify_grid"
#: Fields that name the run, not the cell (timestamps differ between the two runs).
RUN_FIELDS = {"created_utc"}


def _qgis_cells(layer: QgsVectorLayer) -> dict[tuple[int, int], dict]:
    cells = {}
    for f in layer.getFeatures():
        values = dict(zip(layer.fields().names(), f.attributes()))
        box = f.geometry().boundingBox()
        values["box"] = (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum())
        cells[(values["row"], values["col"])] = values
    return cells


def _batch_cells(folder) -> dict[tuple[int, int], dict]:
    cells = {}
    for values in partition_rows(folder):
        values["box"] = wkb_box(values.pop("geometry"))
        key = (values["row"], values["col"])
        assert key not in cells, f"cell {key} written twice"
        cells[key] = values
    return cells


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is None and b is None
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5) or (math.isnan(a) and math.isnan(b))
    return a == b


@pytest.mark.parametrize("raster, params, cli", [
    (APOLLO, {}, []),  # Moon, geographic, undeclared zero collar; classify_grid's default cell size
    (VESTA_DAWN, {"CELL_SIZE": 24, "CELL_UNIT": 1}, ["--cell-px", "24"]),  # ISIS3 cube: mask band, edge cells
    (MARS_EQUI, {"CELL_SIZE": 3, "CELL_UNIT": 0, "OVERLAP": 0.25}, ["--cell-size-m", "3", "--overlap", "0.25"]),
])
def test_batch_command_and_classify_grid_find_the_same_cells(terrain_processing, tiny_model, tmp_path, raster,
                                                             params, cli):
    assert_same_cells(str(raster_path(raster)), params, cli, tiny_model, tmp_path)


def test_a_paletted_raster_gives_the_same_cells_too(terrain_processing, tiny_model, tmp_path):
    from osgeo import gdal
    from test_bad_input_cli import shuffled_palette, write_paletted_tif

    source = gdal.Open(str(raster_path(APOLLO)))
    indices, palette = shuffled_palette(source.GetRasterBand(1).ReadAsArray())
    paletted = write_paletted_tif(tmp_path / "paletted.tif", indices, palette, source.GetGeoTransform(),
                                  source.GetProjection())
    assert_same_cells(str(paletted), {"CELL_SIZE": 48, "CELL_UNIT": 1}, ["--cell-px", "48"], tiny_model, tmp_path)


def assert_same_cells(path: str, params: dict, cli: list[str], tiny_model, tmp_path) -> None:
    """classify_grid in this QGIS and the batch command in its own process: every cell and field the same."""
    import processing

    qgis_layer = processing.run(GRID, dict(INPUT=path, MODEL=str(tiny_model), OUTPUT="memory:", **params))["OUTPUT"]
    done = run_batch("grid", path, "--out", str(tmp_path / "run"), "--model", str(tiny_model), "--workers", "0",
                     "--partition-cells", "64", *cli)
    assert done.returncode == 0, done.stderr
    ours, theirs = _batch_cells(tmp_path / "run"), _qgis_cells(qgis_layer)
    assert len(theirs) > 0 and sorted(ours) == sorted(theirs)
    names = [n for n, _ in result_field_kinds(read_contract(str(tiny_model)), grid=True)]
    assert qgis_layer.fields().names() == names
    for key, want in theirs.items():
        got = ours[key]
        assert set(got) == set(names) | {"box"}
        for name in set(names) - RUN_FIELDS:
            assert _same(got[name], want[name]), (key, name, got[name], want[name])
        assert all(math.isclose(g, w, rel_tol=0, abs_tol=1e-9 * max(1.0, abs(w)))
                   for g, w in zip(got["box"], want["box"])), (key, got["box"], want["box"])
