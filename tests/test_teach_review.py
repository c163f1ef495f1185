"""Review, correct, teach (issue 17) in a real QGIS: real rasters, real Processing, real ONNX files.

The done-when path: classify a grid, correct three cells, move the threshold (the corrections stay), teach a
two-class head from drawn points and classify a grid with it. The tiny network's embedding is its channel means
(tests/model_factory.py), so "bright" and "dark" cells are classes a head can learn from it.
"""
from __future__ import annotations

import json

import pytest
from qgis.core import (QgsFeature, QgsField, QgsGeometry, QgsPointXY, QgsProcessingException, QgsSymbolLayer,
                       QgsVectorLayer)
from qgis.PyQt.QtCore import QVariant

from conftest import APOLLO, VESTA_DAWN, raster_path
from model_factory import TWO_OUTPUTS, write_valid_model
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.qgis_io import fields, relabel, review, style

GRID, TEACH = "planet_terrain:classify_grid", "planet_terrain:teach_head"


@pytest.fixture(scope="module")
def embedding_model(tmp_path_factory):
    """The tiny network with its embedding output (what a head is taught on)."""
    return write_valid_model(tmp_path_factory.mktemp("emb") / "tiny_emb.onnx", outputs=TWO_OUTPUTS)


def run(alg: str, **params):
    import processing

    if alg == GRID:
        params.setdefault("OUTPUT", "memory:")
    return processing.run(alg, params)


def grid_layer(model, raster=VESTA_DAWN, **params) -> QgsVectorLayer:
    return run(GRID, INPUT=str(raster_path(raster)), MODEL=str(model), **params)["OUTPUT"]


def _by_id(layer) -> dict:
    return {f.id(): f for f in layer.getFeatures()}


def test_corrections_stay_when_the_threshold_moves(terrain_processing, embedding_model):
    layer = grid_layer(embedding_model)
    contract = session_mod.load_model(str(embedding_model)).contract
    assert set(n for n, _ in fields.REVIEW_FIELDS) <= set(layer.fields().names())
    assert all(f[fields.REVIEWED_FIELD] is False for f in layer.getFeatures())
    ids = sorted(_by_id(layer))[:3]
    assert review.review_features(layer, ids, "slope streak", contract, reviewer="tester") == 3
    accepted = sorted(_by_id(layer))[3]
    model_label = _by_id(layer)[accepted][fields.LABEL_FIELD]
    review.review_features(layer, [accepted], None, contract, reviewer="tester")
    for threshold in (0.0, 0.99, 1.0, 0.3):
        counts = relabel.relabel_layer(layer, contract, threshold)
        feats = _by_id(layer)
        for fid in ids:
            f = feats[fid]
            assert (f["label"], f["class_id"], f["abstained"]) == ("slope streak", 3, False)
            assert (f["reviewed_label"], f["reviewed"], f["reviewed_by"]) == ("slope streak", True, "tester")
            assert f["reviewed_utc"].endswith("Z")
        assert feats[accepted]["label"] == model_label == feats[accepted]["reviewed_label"]
        assert counts["slope streak"] >= 3 and sum(counts.values()) == layer.featureCount()
    expected = {"slope streak": 3}
    expected[model_label] = expected.get(model_label, 0) + 1
    assert review.reviewed_counts(layer) == expected


def test_reviewed_features_are_outlined_and_restyling_keeps_labels(terrain_processing, embedding_model):
    layer = grid_layer(embedding_model)
    contract = session_mod.load_model(str(embedding_model)).contract
    review.review_features(layer, [next(iter(_by_id(layer)))], "crater", contract)
    before = [f.attributes() for f in layer.getFeatures()]
    style.apply_style(layer, contract)
    assert [f.attributes() for f in layer.getFeatures()] == before
    for category in layer.renderer().categories():
        props = category.symbol().symbolLayer(0).dataDefinedProperties()
        for key in (QgsSymbolLayer.PropertyStrokeColor, QgsSymbolLayer.PropertyStrokeWidth):
            assert "reviewed" in props.property(key).expressionString()


def test_a_layer_without_review_fields_still_relabels_and_gets_them_on_review(terrain_processing, embedding_model):
    new = grid_layer(embedding_model)
    contract = session_mod.load_model(str(embedding_model)).contract
    old_names = [n for n in new.fields().names() if n not in dict(fields.REVIEW_FIELDS)]
    old = QgsVectorLayer(f"Polygon?crs={new.crs().authid() or 'EPSG:4326'}", "old", "memory")
    old.setCrs(new.crs())
    old.dataProvider().addAttributes([new.fields().field(n) for n in old_names])
    old.updateFields()
    feats = []
    for f in new.getFeatures():
        g = QgsFeature(old.fields())
        g.setGeometry(f.geometry())
        g.setAttributes([f[n] for n in old_names])
        feats.append(g)
    old.dataProvider().addFeatures(feats)
    counts = relabel.relabel_layer(old, contract, 1.0)
    assert counts == {"unknown": old.featureCount()}
    review.review_features(old, [next(iter(_by_id(old)))], "crater", contract)
    assert "reviewed_label" in old.fields().names() and review.reviewed_counts(old) == {"crater": 1}
    with pytest.raises(review.ReviewError, match="no feature is selected"):
        review.review_features(old, [], "crater", contract)
    with pytest.raises(review.ReviewError, match="corrected label is empty"):
        review.review_features(old, [1], "  ", contract)


def _points(layer, examples: list[tuple[QgsGeometry, str]]) -> QgsVectorLayer:
    points = QgsVectorLayer("Point", "examples", "memory")
    points.setCrs(layer.crs())
    points.dataProvider().addAttributes([QgsField("class", QVariant.String)])
    points.updateFields()
    feats = []
    for geom, label in examples:
        f = QgsFeature(points.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(geom.centroid().asPoint())))
        f.setAttributes([label])
        feats.append(f)
    points.dataProvider().addFeatures(feats)
    return points


@pytest.mark.parametrize("raster", [VESTA_DAWN, APOLLO])
def test_teach_a_two_class_head_from_points_and_classify_a_grid_with_it(terrain_processing, embedding_model,
                                                                        tmp_path, raster):
    extent = None if raster == VESTA_DAWN else "146.5,148.0,-22.2,-20.7"  # the middle of the Apollo frame
    params = {} if extent is None else {"EXTENT": extent}
    base = grid_layer(embedding_model, raster, **params)
    cells = sorted(base.getFeatures(), key=lambda f: f["p_crater"])  # the tiny network: p_crater grows with brightness
    examples = [(f.geometry(), "dark plain") for f in cells[:4]] + [(f.geometry(), "bright rim") for f in cells[-4:]]
    points = _points(base, examples)
    out = tmp_path / "bright_dark"
    res = run(TEACH, INPUT=str(raster_path(raster)), EXAMPLES=points, LABEL_FIELD="class", MODEL=str(embedding_model),
              NAME="bright-dark", VERSION="2", OUTPUT=str(out))
    assert res["OUTPUT"] == str(out) + ".head.json"
    report = json.loads(res["REPORT"])
    assert report["classes"] == ["dark plain", "bright rim"]
    assert set(report["cv"]["per_class_accuracy"]) == {"dark plain", "bright rim"} and res["CV_ACCURACY"] >= 0.75
    taught = grid_layer(embedding_model, raster, HEAD=res["OUTPUT"], THRESHOLD=0.0, **params)
    names = taught.fields().names()
    assert "p_dark_plain" in names and "p_bright_rim" in names and "p_crater" not in names
    got = {f.geometry().centroid().asWkt(3): f for f in taught.getFeatures()}
    for geom, label in examples:
        f = got[geom.centroid().asWkt(3)]
        assert (f["label"], f["model"], f["model_version"]) == (label, "bright-dark", "2")
    with pytest.raises(QgsProcessingException, match="never replaces"):
        run(TEACH, INPUT=str(raster_path(raster)), EXAMPLES=points, LABEL_FIELD="class", MODEL=str(embedding_model),
            OUTPUT=res["OUTPUT"])


def test_a_head_refuses_another_model_and_a_model_without_embedding(terrain_processing, embedding_model, tiny_model,
                                                                     tmp_path):
    from planet_terrain_plugin.core.heads import save_head, teach

    model = session_mod.load_model(str(embedding_model))
    from planet_terrain_plugin.core.heads import backbone_info

    head = teach([[0.0, 1.0, 2.0], [0.1, 1.1, 2.1], [3.0, 1.0, 0.0], [3.1, 1.2, 0.1]], ["a", "a", "b", "b"], "h", "1",
                 backbone_info(model))
    path = save_head(head, str(tmp_path / "h"))
    other = write_valid_model(tmp_path / "other.onnx", outputs=TWO_OUTPUTS, model_version="9")
    with pytest.raises(QgsProcessingException, match="HEAD: the head 'h' was taught on the model tiny-test-model"):
        grid_layer(other, HEAD=path)
    with pytest.raises(QgsProcessingException, match="has no embedding output"):
        grid_layer(tiny_model, HEAD=path)
