"""``planet_terrain:classify_mosaic`` takes the HEAD every classification algorithm offers (issue 17, item 3): the
batch command runs with ``--head``, the merged GeoPackage carries the head's classes, name and version, and a
head taught on another model file is refused before any work. Real Processing, a real local Dask cluster, a head
taught with the real ``teach`` command (``test_batch_head``'s fixture)."""
from __future__ import annotations

import json

import pytest
from qgis.core import QgsApplication, QgsProcessingException, QgsVectorLayer

from conftest import APOLLO, raster_path
from model_factory import write_valid_model
from planet_terrain_plugin.core.contract import EMBEDDING, LOGITS
from test_batch_head import head_and_model  # noqa: F401 -- the fixture

MOSAIC = "planet_terrain:classify_mosaic"


def test_every_classification_algorithm_offers_the_same_head(terrain_processing):
    registry = QgsApplication.processingRegistry()
    heads = {name: registry.algorithmById(f"planet_terrain:{name}").parameterDefinition("HEAD")
             for name in ("classify_extent", "classify_grid", "classify_mosaic")}
    assert all(h is not None for h in heads.values()), heads
    mosaic, grid = heads["classify_mosaic"], heads["classify_grid"]
    assert (mosaic.description(), mosaic.extension(), mosaic.flags()) == \
        (grid.description(), grid.extension(), grid.flags())


def test_a_mosaic_with_a_head_answers_with_the_heads_classes_name_and_version(terrain_processing, head_and_model,
                                                                              tmp_path):
    import processing

    head, model = head_and_model
    taught = json.loads(head.read_text())
    output = tmp_path / "mosaic.gpkg"
    result = processing.run(MOSAIC, {"INPUT": [str(raster_path(APOLLO))], "CELL_SIZE": 200, "CELL_UNIT": 1,
                                     "MODEL": str(model), "HEAD": str(head), "WORKERS": 1,
                                     "RUN_FOLDER": str(tmp_path / "run"), "OUTPUT": str(output)})
    layer = QgsVectorLayer(f"{output}|layername=terrain_grid", "mosaic", "ogr")
    assert layer.isValid() and result["CELLS_CLASSIFIED"] == layer.featureCount() > 0
    names = layer.fields().names()
    assert {"p_bright", "p_dark"} <= set(names) and "p_crater" not in names
    features = list(layer.getFeatures())
    assert {f["label"] for f in features} <= {"bright", "dark", "unknown"}
    assert {(f["model"], f["model_version"]) for f in features} == {(taught["name"], taught["version"])}
    styled = {c.value() for c in layer.renderer().categories()}  # the embedded style is the head's classes
    assert {"bright", "dark"} <= styled and "crater" not in styled


def test_a_head_of_another_model_is_refused_before_any_work(terrain_processing, head_and_model, tmp_path):
    import processing

    head, _ = head_and_model
    other = write_valid_model(tmp_path / "other.onnx", outputs=(LOGITS, EMBEDDING), model_version="9.9.9-other")
    run_folder, output = tmp_path / "run", tmp_path / "mosaic.gpkg"
    with pytest.raises(QgsProcessingException, match=r"HEAD: the head '.*' was taught on the model .* not on "
                                                     r"'other.onnx'.*use that model file, or teach the head again"):
        processing.run(MOSAIC, {"INPUT": [str(raster_path(APOLLO))], "MODEL": str(other), "HEAD": str(head),
                                "RUN_FOLDER": str(run_folder), "OUTPUT": str(output)})
    assert not output.exists() and not run_folder.exists()
