"""The batch command end to end: partitions, manifest, resume after a killed run, merge into a GeoPackage that
QGIS opens with the raster's CRS, and the messages for bad input.

The runs are real (the shared Apollo 15 frame, a tiny real ONNX model) and in their own processes; the in-process
mode (``--workers 0``) runs the same partition function as a Dask worker, so most tests use it to stay fast.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from qgis.core import QgsRasterLayer, QgsVectorLayer

from batch_helpers import partition_rows, run_batch
from conftest import APOLLO, raster_path
from paths import REPO
from crs_equivalence import equivalent_crs

RUN_FIELDS = ("created_utc",)


def _cells(folder) -> list[tuple]:
    """The run's cells without the per-run timestamp, sorted: comparable between runs."""
    rows = [tuple(v for k, v in sorted(r.items()) if k not in RUN_FIELDS) for r in partition_rows(folder)]
    return sorted(rows)


def _grid(tiny_model, out, *extra: str) -> subprocess.CompletedProcess:
    return run_batch("grid", str(raster_path(APOLLO)), "--out", str(out), "--model", str(tiny_model),
                     "--workers", "0", *extra)


@pytest.fixture(scope="module")
def apollo_run(tiny_model, tmp_path_factory):
    """One finished in-process run over the Apollo frame (default cells), shared by the read-only tests."""
    out = tmp_path_factory.mktemp("apollo") / "run"
    done = _grid(tiny_model, out, "--partition-cells", "256")
    assert done.returncode == 0, done.stderr
    return out


def test_a_run_writes_geoparquet_partitions_with_the_planetary_crs_and_a_manifest(apollo_run):
    import pyarrow.parquet as pq

    lines = [json.loads(line) for line in (apollo_run / "manifest.jsonl").read_text().splitlines()]
    request, done = lines[0]["request"], [line["done"] for line in lines[1:]]
    assert len(done) == request["inputs"][0]["partitions"] == len(list(apollo_run.glob("part-*.parquet"))) > 1
    table = pq.read_table(apollo_run / done[0]["file"])
    geo = json.loads(table.schema.metadata[b"geo"])
    column = geo["columns"][geo["primary_column"]]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    assert column["crs"]["datum"]["ellipsoid"]["radius"] == 1737400  # the Moon, not Earth
    extra = json.loads(table.schema.metadata[b"planet_terrain"])
    assert 'ELLIPSOID["unnamed",1737400' in extra["wkt"] or 'SPHEROID["unnamed",1737400' in extra["wkt"]
    assert sum(d["classified"] for d in done) == len(partition_rows(apollo_run))


def test_merge_writes_a_geopackage_qgis_opens_with_the_raster_crs_and_every_cell(apollo_run, tmp_path, qgis_app):
    out = tmp_path / "mosaic.gpkg"
    done = run_batch("merge", str(apollo_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    layer = QgsVectorLayer(f"{out}|layername=terrain_grid", "merged", "ogr")
    assert layer.isValid()
    raster = QgsRasterLayer(str(raster_path(APOLLO)), "apollo")
    assert equivalent_crs(raster.crs(), layer.crs(), raster.extent())
    assert layer.featureCount() == len(partition_rows(apollo_run))
    assert layer.fields().names()[1:4] == ["label", "class_id", "confidence"]  # after the GeoPackage's fid
    feature = next(layer.getFeatures())
    assert raster.extent().contains(feature.geometry().boundingBox())
    again = run_batch("merge", str(apollo_run), "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and "never replaces" in again.stderr


def test_a_rerun_skips_finished_partitions_and_redoes_a_changed_one(apollo_run, tiny_model, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(apollo_run, copy)
    before = _cells(copy)
    first = sorted(copy.glob("part-*.parquet"))[0]
    first.write_bytes(first.read_bytes()[:-10])  # damaged: its checksum no longer matches
    done = _grid(tiny_model, copy, "--partition-cells", "256")
    assert done.returncode == 0, done.stderr
    total = len(list(copy.glob("part-*.parquet")))
    assert f"{total - 1} already finished, 1 to run" in done.stderr
    assert _cells(copy) == before


def test_a_killed_run_resumes_and_ends_with_every_cell_once(tiny_model, tmp_path):
    out, reference = tmp_path / "killed", tmp_path / "clean"
    args = [sys.executable, "-m", "planet_terrain_plugin.core", "grid", str(raster_path(APOLLO)), "--out", str(out),
            "--model", str(tiny_model), "--workers", "0", "--cell-px", "16", "--partition-cells", "64"]
    proc = subprocess.Popen(args, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, start_new_session=True)
    for line in proc.stderr:
        if " 2/" in line and "partitions" in line:  # two partitions written: kill the run, workers and all
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.stderr.close()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resumed = _grid(tiny_model, out, "--cell-px", "16", "--partition-cells", "64")
    assert resumed.returncode == 0, resumed.stderr
    finished = int(resumed.stderr.split(" already finished")[0].rsplit(" ", 1)[1])
    assert finished >= 2 and ", 0 to run" not in resumed.stderr
    clean = _grid(tiny_model, reference, "--cell-px", "16", "--partition-cells", "64")
    assert clean.returncode == 0, clean.stderr
    assert _cells(out) == _cells(reference)


@pytest.mark.parametrize("args, message", [
    (["grid", "/nonexistent/mosaic.vrt", "--out", "{tmp}/o"], "the input '/nonexistent/mosaic.vrt' does not exist"),
    (["grid", "{raster}", "--out", "{tmp}/o", "--cell-px", "4"], "too small; each cell needs at least 8 x 8"),
    (["grid", "{raster}", "--out", "{tmp}/o", "--overlap", "0.95"], "--overlap must be between 0 and 0.9"),
    (["grid", "{raster}", "--out", "{tmp}", "--cell-px", "64"], "is not empty and holds no manifest"),
    (["merge", "{tmp}", "--out", "{tmp}/m.gpkg"], "holds no manifest.jsonl"),
])
def test_bad_input_is_refused_with_a_message(tiny_model, tmp_path, args, message):
    (tmp_path / "user_file.txt").write_text("mine")
    filled = [a.format(tmp=tmp_path, raster=raster_path(APOLLO)) for a in args]
    if filled[0] == "grid":
        filled += ["--model", str(tiny_model), "--workers", "0"]
    done = run_batch(*filled)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert (tmp_path / "user_file.txt").read_text() == "mine"


def test_a_raster_of_another_body_is_refused_as_in_qgis(tiny_model, tmp_path):
    from osgeo import gdal

    earth = tmp_path / "apollo_as_earth.tif"
    gdal.Translate(str(earth), str(raster_path(APOLLO)), outputSRS="EPSG:4326")
    done = run_batch("grid", str(earth), "--out", str(tmp_path / "o"), "--model", str(tiny_model), "--workers", "0")
    assert done.returncode == 2 and "the raster's CRS ('WGS 84') is an Earth CRS" in done.stderr, done.stderr
    assert "choose its body explicitly (--body)" in done.stderr
    moon = run_batch("grid", str(earth), "--out", str(tmp_path / "o2"), "--model", str(tiny_model), "--workers",
                     "0", "--body", "Moon")
    assert moon.returncode == 0, moon.stderr


def test_a_rotated_raster_is_refused(tiny_model, tmp_path):
    from osgeo import gdal

    rotated = tmp_path / "rotated.tif"
    ds = gdal.Translate(str(rotated), str(raster_path(APOLLO)))
    x0, px, _, y0, _, py = ds.GetGeoTransform()
    ds.SetGeoTransform((x0, px, px / 10, y0, px / 10, py))
    ds = None
    done = run_batch("grid", str(rotated), "--out", str(tmp_path / "o"), "--model", str(tiny_model))
    assert done.returncode == 2 and "has a rotated or sheared geotransform" in done.stderr, done.stderr
    assert "gdalwarp" in done.stderr and not (tmp_path / "o").exists()


def test_a_rerun_with_other_settings_is_refused(apollo_run, tiny_model):
    done = _grid(tiny_model, apollo_run, "--partition-cells", "256", "--cell-px", "48")
    assert done.returncode == 2 and "holds a run with other settings (inputs differ)" in done.stderr


def test_merge_refuses_an_unfinished_run(apollo_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(apollo_run, copy)
    sorted(copy.glob("part-*.parquet"))[0].unlink()
    done = run_batch("merge", str(copy), "--out", str(tmp_path / "m.gpkg"))
    assert done.returncode == 2 and "rerun the same `grid` command to finish it" in done.stderr
    assert not (tmp_path / "m.gpkg").exists()
