"""Issue 8's catalogue of bad input, outputs and runs: an existing output is never replaced, a read-only folder or
a full disk is named and leaves nothing, Cancel at any stage leaves no output, and a GPU provider that fails
falls back to the CPU and says so.

The user-facing paths (``processing.run``, the map tool's controller and its QgsTask) in the session's real
QGIS, on the shared Apollo raster and real ONNX files.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from qgis.core import Qgis, QgsProcessingException, QgsProject

from conftest import APOLLO, as_unprivileged_user, raster_path, run_in_fresh_qgis
from model_factory import write_valid_model
from planet_terrain_plugin.core import session as session_mod
from test_bad_input import (EXTENT_ALG, GRID_ALG, Recorder, _processing, assert_qgis_alive,  # noqa: F401
                            controller, files, refused, result_layers, run, run_task)
from test_qgis_raster_read import pixel_rect


# -- outputs ----------------------------------------------------------------------------------------------------
def test_existing_output_file_is_never_replaced(tiny_model, tmp_path):
    out = tmp_path / "classes.gpkg"
    run(INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), OUTPUT=str(out))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    for alg, extra in ((EXTENT_ALG, {}), (GRID_ALG, {"CELL_SIZE": 400, "CELL_UNIT": 1})):
        refused(rf"OUTPUT: '{out}' already exists, and Planet Terrain never replaces a file.*Choose another file",
                alg, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), OUTPUT=str(out), **extra)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    assert files(tmp_path) == {"classes.gpkg"}


def test_read_only_output_folder_names_the_folder(tiny_model):
    base = Path(tempfile.mkdtemp(prefix="planet-terrain-ro-", dir="/tmp"))  # /tmp: reachable by any user
    os.chmod(base, 0o755)
    model = base / "tiny.onnx"
    shutil.copy(tiny_model, model)
    os.chmod(model, 0o644)
    folder = base / "locked"
    folder.mkdir()
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        with as_unprivileged_user(), pytest.raises(QgsProcessingException) as info:
            run(INPUT=str(raster_path(APOLLO)), MODEL=str(model), OUTPUT=str(folder / "classes.gpkg"))
    finally:
        os.chmod(folder, stat.S_IRWXU)
    try:
        msg = str(info.value)
        assert msg.startswith("OUTPUT: ")
        assert f"cannot write to the folder '{folder}' (Permission denied); it is read-only or you lack " \
               "permission: choose another folder" in msg
        assert files(folder) == set()
        assert_qgis_alive()
    finally:
        shutil.rmtree(base)


def test_full_disk_leaves_no_partial_file(tiny_model, tmp_path):
    """A real file-size limit (RLIMIT_FSIZE, any user can set it) on a real QGIS in a child process: GDAL's
    writes fail as on a full disk. Both the classification output and an export report it and leave nothing."""
    out_dir = tmp_path / "full"
    out_dir.mkdir()
    before = """
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    """
    body = f"""
        params = {{'INPUT': {str(raster_path(APOLLO))!r}, 'MODEL': {str(tiny_model)!r}}}
        layer = processing.run('planet_terrain:classify_extent', dict(params, OUTPUT='memory:'))['OUTPUT']
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))  # 20 kB: the disk is "full"
        try:
            processing.run('planet_terrain:classify_extent', dict(params, OUTPUT={str(out_dir / 'classes.gpkg')!r}))
            print('NO ERROR')
        except QgsProcessingException as exc:
            print('CLASSIFY', exc)
        from planet_terrain_plugin.qgis_io.export import ExportError, export_layer
        try:
            export_layer(layer, {str(out_dir / 'export.gpkg')!r})
            print('NO ERROR')
        except ExportError as exc:
            print('EXPORT', exc)
        print('FILES', sorted(os.listdir({str(out_dir)!r})))
        print('ALIVE', QgsApplication.instance() is not None)
        del layer
    """
    proc = run_in_fresh_qgis(body, tmp_path / "profile", before)
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in proc.stdout.splitlines() if " " in line}
    assert "NO ERROR" not in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert lines.get("CLASSIFY", "").startswith("OUTPUT: "), proc.stdout + proc.stderr[-2000:]
    assert "nothing was written" in lines["CLASSIFY"] and "the disk is not full" in lines["CLASSIFY"]
    assert "nothing was written. Check that the disk is not full" in lines.get("EXPORT", ""), proc.stdout
    assert lines["FILES"] == "[]" and lines["ALIVE"] == "True"
    assert files(out_dir) == set()


# -- cancel -----------------------------------------------------------------------------------------------------
class CancelAt(Recorder):
    """Presses Cancel when the algorithm reaches a stage: a progress value, or a message it pushes."""

    def __init__(self, progress: float | None = None, info_prefix: str | None = None) -> None:
        super().__init__()
        self.info_prefix = info_prefix
        if progress is not None:
            self.progressChanged.connect(lambda p: self.cancel() if p >= progress else None)

    def pushInfo(self, info):  # noqa: N802
        super().pushInfo(info)
        if self.info_prefix and info.startswith(self.info_prefix):
            self.cancel()


@pytest.mark.parametrize("stage, feedback_args, words", [
    ("read", {"progress": 10}, "cancelled while reading the pixels; nothing was classified"),
    ("inference", {"progress": 50}, "cancelled during inference; nothing was written"),
    ("write", {"progress": 90}, "cancelled while writing; nothing was written"),
    ("write, after the sink exists", {"info_prefix": "Note:"}, "cancelled while writing; nothing was written"),
])
def test_cancel_at_each_stage_leaves_no_output(tiny_model, tmp_path, stage, feedback_args, words):
    """A cancel is no failure (no exception, so no "Task failed" in QGIS's task bar): no OUTPUT, and why."""
    out = tmp_path / "classes.gpkg"
    feedback = CancelAt(**feedback_args)
    result = run(feedback=feedback, INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), OUTPUT=str(out))
    assert "OUTPUT" not in result and result["LABEL"] == "" and result["NOT_CLASSIFIED"] == words
    assert feedback.isCanceled()
    if stage.startswith("write, after"):  # the output file existed when Cancel came: it was removed
        assert any(i.startswith("Note:") for i in feedback.infos)
    assert files(tmp_path) == set()
    assert_qgis_alive()


def test_task_cancelled_during_the_read_reports_cancelled(qgis_iface, qgis_new_project, controller, bar,
                                                          raster_layer, tiny_model, monkeypatch):
    """Cancel pressed the moment the worker starts reading (deterministic: from the worker's own progress call;
    a queued progressChanged slot would run too late, after the task had finished)."""
    from planet_terrain_plugin.gui.task import RunFeedback
    from qgis.core import QgsProcessingFeedback

    def progress_then_cancel(self, value):
        QgsProcessingFeedback.setProgress(self, value)
        if value >= 10:
            self.cancel()

    monkeypatch.setattr(RunFeedback, "setProgress", progress_then_cancel, raising=False)
    layer = raster_layer(APOLLO)
    QgsProject.instance().addMapLayer(layer)
    try:
        task = run_task(controller, lambda: controller.classify_layer_extent(
            layer, pixel_rect(layer, 600, 500, 80, 80), str(tiny_model)))
        assert task.succeeded is False and task.error is None  # a cancel is not an error
        assert bar.get_messages(Qgis.Info)[-1] == "Planet Terrain:Classification cancelled."
        assert result_layers(layer.id()) == []
    finally:
        QgsProject.instance().removeAllMapLayers()


# -- execution provider ---------------------------------------------------------------------------------------------
def test_gpu_provider_that_fails_falls_back_and_the_user_is_told(tmp_path, monkeypatch, qgis_iface,
                                                                 qgis_new_project, controller, bar, raster_layer):
    """onnxruntime is real; only its list of providers claims a CUDA this machine lacks (as a broken CUDA
    install does): the session starts on CPU, and the log, the outputs and the map-tool message say so."""
    session_mod.clear_cache()
    model = write_valid_model(tmp_path / "fallback.onnx")
    ort = session_mod.import_onnxruntime()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    try:
        feedback = Recorder()
        res = run(feedback=feedback, INPUT=str(raster_path(APOLLO)), MODEL=str(model))
        (feat,) = list(res["OUTPUT"].getFeatures())
        assert res["EXECUTION_PROVIDER"] == feat["provider"] == "CPUExecutionProvider"
        (note,) = [i for i in feedback.infos if i.startswith("Model ")]
        assert "CPUExecutionProvider (fallback)" in note and "CUDAExecutionProvider" in note
        layer = raster_layer(APOLLO)
        QgsProject.instance().addMapLayer(layer)
        task = run_task(controller, lambda: controller.classify_layer_extent(
            layer, pixel_rect(layer, 600, 500, 80, 80), str(model)))
        assert task.error is None, task.error
        (msg,) = bar.get_messages(Qgis.Success)
        assert "CPU (the preferred provider did not start: see the log)" in msg  # the names are in the log
    finally:
        QgsProject.instance().removeAllMapLayers()
        session_mod.clear_cache()
