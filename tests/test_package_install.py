"""The plugin installed into a (sandboxed) QGIS profile works headless: ``qgis_process.bin`` finds it and runs it.

This is how a user's batch job or CI calls the plugin, and it exercises what an in-process test cannot:
``metadata.txt``'s ``hasProcessingProvider=yes``, ``classFactory(None)`` + ``initProcessing()``, and output to
a real file. Debian's ``/usr/bin/qgis_process`` wrapper is broken, so the binary is called directly.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import APOLLO, raster_path
from paths import REPO
from planet_terrain_plugin.core import models
from scripts import qgis_process as qgis_process_runner
from scripts.package import build_zip, validate_zip

QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")
PLUGIN = "planet_terrain_plugin"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not QGIS_PROCESS.exists(), reason="qgis_process.bin is not installed")]


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    """A clean profile with the plugin installed from the `make package` zip and enabled by qgis_process."""
    zip_path, _ = build_zip(tmp_path_factory.mktemp("dist"))
    assert validate_zip(zip_path) == []
    root = qgis_process_runner.make_profile(tmp_path_factory.mktemp("qgis-profile"), zip_path)
    assert not (root / "profiles/default/python/plugins" / PLUGIN).is_symlink()
    return root


def qgis_process(profile: Path, *args: str) -> subprocess.CompletedProcess:
    return qgis_process_runner.run(list(args), profile, timeout=120)


def test_metadata_declares_a_processing_provider(profile):
    meta = (profile / "profiles/default/python/plugins" / PLUGIN / "metadata.txt").read_text(encoding="utf-8")
    assert "hasProcessingProvider=yes" in meta and "icon=icon.png" in meta
    assert (REPO / PLUGIN / "icon.png").is_file()


def test_qgis_process_loads_the_plugin_provider(profile):
    proc = qgis_process(profile, "plugins")
    assert proc.returncode == 0, proc.stderr
    assert f"* {PLUGIN}" in proc.stdout, proc.stdout + proc.stderr


def test_qgis_process_classifies_to_a_geopackage(profile, tiny_model, tmp_path):
    out = tmp_path / "classes.gpkg"
    proc = qgis_process(profile, "--json", "run", "planet_terrain:classify_extent", "--",
                        f"INPUT={raster_path(APOLLO)}", f"MODEL={tiny_model}", f"OUTPUT={out}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(proc.stdout[proc.stdout.index("{"):])["results"]
    assert results["EXECUTION_PROVIDER"] == "CPUExecutionProvider" and results["LABEL"]

    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(str(out), "classes", "ogr")
    assert layer.isValid() and layer.featureCount() == 1
    (feat,) = list(layer.getFeatures())
    assert feat["label"] == results["LABEL"] and feat["body"] == "Moon" and feat["model"] == "tiny-test-model"
    assert 0.0 < feat["confidence"] <= 1.0 and feat["p_crater"] >= 0.0


def test_qgis_process_without_a_model_says_how_to_get_one(profile):
    if models.installed_variants():
        pytest.skip("a default model is installed in the plugin; the no-model path cannot occur")
    proc = qgis_process(profile, "run", "planet_terrain:classify_extent", "--",
                        f"INPUT={raster_path(APOLLO)}", "OUTPUT=TEMPORARY_OUTPUT")
    assert proc.returncode != 0
    assert "No default model is installed" in proc.stdout + proc.stderr
    assert "make train export" in proc.stdout + proc.stderr


def test_the_zip_classifies_the_apollo_frame_with_its_own_model_and_exports_it(profile, tmp_path):
    """Issue 18: what the plugin repository serves works offline: the zip carries a model (the int8 variant,
    within the 25 MB limit), the plugin finds it with no MODEL given, and the result exports."""
    plugin = profile / "profiles/default/python/plugins" / PLUGIN
    zipped = sorted(p.name for p in (plugin / "models").glob("*.onnx"))
    assert zipped == [models.variant_path("int8").name], zipped
    cells, exported = tmp_path / "cells.gpkg", tmp_path / "cells.geojson"
    result = qgis_process_runner.run_algorithm(
        "planet_terrain:classify_grid", {"INPUT": str(raster_path(APOLLO)), "CELL_SIZE": "20000", "CELL_UNIT": "0",
                                         "OUTPUT": str(cells)}, profile)["results"]
    assert result["CELLS_CLASSIFIED"] > 50
    qgis_process_runner.run_algorithm("planet_terrain:export_labeled_layer",
                                      {"INPUT": str(cells), "OUTPUT": str(exported)}, profile)

    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(str(exported), "cells", "ogr")
    assert layer.isValid() and layer.featureCount() == result["CELLS_CLASSIFIED"]
    feature = next(layer.getFeatures())
    assert feature["model"] == "planet_terrain_resnet50" and feature["body"] == "Moon"
