"""Fault injection: faults that strike *during* a run, and what is left afterwards.

For each fault -- the output's disk fills up mid-write, the raster is cut short mid-grid, the model file is
replaced mid-run, ``qgis_process`` is killed with SIGKILL while it writes -- the user's files beside the output
are byte-identical afterwards, no result (complete-looking or not) is left under the output's name, and a rerun
succeeds. Real QGIS (in this process, or a child process / ``qgis_process.bin`` where the fault needs one), real
rasters, real ONNX files.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

from conftest import APOLLO, raster_path, run_in_fresh_qgis
from model_factory import write_valid_model
from scripts import qgis_process as qgis_process_runner
from test_bad_input import moon_wkt, texture, write_tif

GRID_ALG = "planet_terrain:classify_grid"


@pytest.fixture(autouse=True)
def _processing(terrain_processing):
    yield terrain_processing


def snapshot(folder: Path) -> dict[str, str]:
    """Every file in ``folder`` (hidden ones too) with its SHA-256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def workspace(tmp_path) -> Path:
    """An output folder that already holds a user's files."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "field_notes.gpkg").write_bytes(os.urandom(4096))
    (folder / "survey.shp").write_bytes(os.urandom(512))
    return folder


def big_moon_tif(path: Path, side: int = 512) -> Path:
    """A tiled, compressed Moon raster: 1,024 cells of 16 px, so a grid run takes a while."""
    data = (texture((side, side)) * 200 + 20).astype(np.uint8)
    return write_tif(path, [data], gdal.GDT_Byte, (145.0, 0.005, 0, -20.0, 0, -0.005), moon_wkt(),
                     options=("TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "COMPRESS=DEFLATE"))


class AtProgress(QgsProcessingFeedback):
    """A real feedback that runs ``action`` once, when the run first reports ``percent`` progress or more."""

    def __init__(self, percent: float, action) -> None:
        super().__init__()
        self.fired = False

        def check(value: float) -> None:
            if not self.fired and value >= percent:
                self.fired = True
                action()

        self.progressChanged.connect(check)


def run_grid(feedback=None, **params):
    import processing

    params.setdefault("CELL_SIZE", 16)
    params.setdefault("CELL_UNIT", 1)
    return processing.run(GRID_ALG, params, feedback=feedback)


def test_disk_full_mid_write_leaves_the_users_files_and_a_rerun_succeeds(tiny_model, workspace, tmp_path):
    raster = big_moon_tif(tmp_path / "moon.tif")
    before = snapshot(workspace)
    out = workspace / "cells.gpkg"
    body = f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (150000, 150000))  # the disk fills up after ~150 kB
        try:
            processing.run('{GRID_ALG}', {{'INPUT': {str(raster)!r}, 'MODEL': {str(tiny_model)!r},
                           'CELL_SIZE': 16, 'CELL_UNIT': 1, 'OUTPUT': {str(out)!r}}})
            print('NO ERROR')
        except QgsProcessingException as exc:
            print('ERROR', exc)
    """
    proc = run_in_fresh_qgis(body, tmp_path / "profile")
    assert "ERROR OUTPUT:" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "nothing was written" in proc.stdout
    assert snapshot(workspace) == before  # no result, no temporary, the user's files untouched
    result = run_grid(INPUT=str(raster), MODEL=str(tiny_model), OUTPUT=str(out))
    assert QgsVectorLayer(result["OUTPUT"], "cells", "ogr").featureCount() == 1024


def test_raster_cut_short_mid_grid_fails_and_a_rerun_on_the_whole_file_succeeds(tiny_model, workspace, tmp_path):
    raster = big_moon_tif(tmp_path / "moon.tif")
    whole = raster.read_bytes()
    before = snapshot(workspace)
    out = workspace / "cells.gpkg"

    def cut_raster() -> None:  # as a copy or a download that is still being written would be
        with open(raster, "r+b") as f:
            f.truncate(len(whole) // 3)

    feedback = AtProgress(10, cut_raster)
    with pytest.raises(QgsProcessingException, match="could not be read at the cell in row"):
        run_grid(feedback, INPUT=str(raster), MODEL=str(tiny_model), OUTPUT=str(out), BATCH_SIZE=8)
    assert feedback.fired
    assert snapshot(workspace) == before
    raster.write_bytes(whole)
    assert run_grid(INPUT=str(raster), MODEL=str(tiny_model), OUTPUT=str(out))["CELLS_CLASSIFIED"] == 1024


@pytest.mark.parametrize("replacement", ["another model", "garbage"])
def test_model_file_replaced_mid_run(tiny_model, workspace, tmp_path, replacement):
    raster = big_moon_tif(tmp_path / "moon.tif")
    model = write_valid_model(tmp_path / "model.onnx", model_version="1.0.0-first")
    before = snapshot(workspace)

    def replace_model() -> None:
        if replacement == "garbage":
            model.write_bytes(b"not an onnx file")
        else:
            newer = write_valid_model(tmp_path / "newer.onnx", model_version="2.0.0-second")
            os.replace(newer, model)

    feedback = AtProgress(10, replace_model)
    first = run_grid(feedback, INPUT=str(raster), MODEL=str(model), OUTPUT=str(workspace / "first.gpkg"))
    assert feedback.fired
    layer = QgsVectorLayer(first["OUTPUT"], "first", "ogr")
    versions = {f["model_version"] for f in layer.getFeatures()}
    assert versions == {"1.0.0-first"}, "a run is made by one model from its first cell to its last"
    assert layer.featureCount() == 1024
    del layer
    if replacement == "garbage":
        with pytest.raises(QgsProcessingException, match="MODEL: "):
            run_grid(INPUT=str(raster), MODEL=str(model), OUTPUT=str(workspace / "second.gpkg"))
        assert not (workspace / "second.gpkg").exists()
    else:
        second = run_grid(INPUT=str(raster), MODEL=str(model), OUTPUT=str(workspace / "second.gpkg"))
        versions = {f["model_version"] for f in QgsVectorLayer(second["OUTPUT"], "s", "ogr").getFeatures()}
        assert versions == {"2.0.0-second"}, "the rerun reads the file as it is now"
    after = snapshot(workspace)
    assert {k: after[k] for k in before} == before


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/usr/bin/qgis_process.bin"), reason="qgis_process.bin is not installed")
def test_qgis_process_killed_while_writing(tiny_model, workspace, tmp_path):
    profile = qgis_process_runner.make_profile(tmp_path / "profile")
    out = workspace / "cells.gpkg"
    args = [qgis_process_runner.qgis_process_binary(), "run", GRID_ALG, "--", f"INPUT={raster_path(APOLLO)}",
            f"MODEL={tiny_model}", "CELL_SIZE=10", "CELL_UNIT=1", "BATCH_SIZE=1", f"OUTPUT={out}"]
    before = snapshot(workspace)
    proc = subprocess.Popen(args, env=qgis_process_runner.environment(profile), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(name.startswith(".cells.pt-") for name in os.listdir(workspace)):
                break  # the writer has its temporary file open: the run is writing
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it started writing; make the grid larger"
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "a killed run must not leave a result under the output's name"
    left = snapshot(workspace)
    assert {k: left[k] for k in before} == before
    assert all(name.startswith(".cells.pt-") for name in set(left) - set(before))  # only hidden temporaries
    result = qgis_process_runner.run_algorithm(
        GRID_ALG, {"INPUT": str(raster_path(APOLLO)), "MODEL": str(tiny_model), "CELL_SIZE": "40", "CELL_UNIT": "1",
                   "OUTPUT": str(out)}, profile)
    assert result["results"]["OUTPUT"] == str(out) and out.exists()
    assert snapshot(workspace).keys() == set(before) | {"cells.gpkg"}, "the rerun removed the dead run's temporaries"
