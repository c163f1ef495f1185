"""``core.heads``: teaching, calibration, abstention, the head file and its binding to a backbone (no Qt).

Fitting is tested on synthetic embeddings (what the head sees); binding and running on real tiny ONNX files.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from model_factory import TWO_OUTPUTS, write_valid_model
from planet_terrain_plugin.core import heads
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.calibrate import Reason
from planet_terrain_plugin.core.newfile import NewFileError
from planet_terrain_plugin.core.pipeline import classify_blocks
from planet_terrain_plugin.core.session import NetworkOutputs, load_model

BACKBONE = {"sha256": "0" * 64, "model_name": "synthetic", "model_version": "0"}


def clusters(n: int = 12, d: int = 16, seed: int = 0):
    """Two classes and a background pool, well apart in a d-dimensional embedding."""
    rng = np.random.default_rng(seed)
    centres = {"gully": np.eye(d)[0] * 6, "lunar pit": np.eye(d)[1] * 6, "other": -np.eye(d)[2] * 6}
    x = np.concatenate([c + rng.standard_normal((n, d)) for c in centres.values()])
    return x, [name for name in centres for _ in range(n)]


def test_a_head_learns_new_classes_reports_cv_per_class_and_rejects_background():
    x, y = clusters()
    head = heads.teach(x, y, "mine", "3", BACKBONE)
    assert head.classes == ("gully", "lunar pit") and head.background
    assert head.cv["per_class_accuracy"] == {"gully": 1.0, "lunar pit": 1.0} and head.cv["folds"] == 5
    assert head.cv["examples"] == {"gully": 12, "lunar pit": 12, "other": 12}
    assert 0.0 <= head.threshold <= 1.0 and 0.0 < head.background_threshold < 1.0
    assert head.cv["background_rejected"] >= 0.9
    x_new, y_new = clusters(seed=1)
    out = head.outputs(NetworkOutputs(np.zeros((len(x_new), 7)), x_new.astype(np.float32)))
    assert out.logits.shape == (len(x_new), 2)
    bg = np.array([label == "other" for label in y_new])
    assert (out.ood_score[bg] > head.background_threshold).mean() >= 0.9
    assert (out.ood_score[~bg] <= head.background_threshold).mean() >= 0.9


def test_one_example_per_class_still_teaches_and_says_there_was_no_cross_validation():
    head = heads.teach([[0.0, 1.0], [1.0, 0.0]], ["crater", "plain"], "k1", "1", BACKBONE)
    assert "no cross-validation" in head.cv["note"] and head.threshold == 0.0 and not head.background


@pytest.mark.parametrize("labels, message", [
    (["a", "a", "a"], "needs two classes"),
    (["a", "unknown", "b"], "'unknown' is what an abstaining head reports"),
    (["Gully", "gully", "b"], "differ only in letter case or spaces"),
    (["Lunar pit", "lunar_pit", "b"], "differ only in letter case or spaces"),
    (["a", "", "b"], "has an empty label"),
])
def test_labels_that_cannot_make_a_head_are_named(labels, message):
    with pytest.raises(heads.HeadError, match=message):
        heads.check_labels(labels)


def test_the_head_file_is_json_round_trips_and_is_never_replaced(tmp_path):
    x, y = clusters()
    head = heads.teach(x, y, "mine", "3", BACKBONE)
    path = heads.save_head(head, str(tmp_path / "mine"))
    with open(path, encoding="utf-8") as fh:
        assert path.endswith(".head.json") and json.load(fh)["format"] == heads.HEAD_FORMAT
    back = heads.read_head(path)
    assert np.allclose(back.logits(x), head.logits(x)) and back.classes == head.classes and back.cv == head.cv
    with pytest.raises(NewFileError, match="never replaces"):
        heads.save_head(head, path)


@pytest.mark.parametrize("content, message", [
    ("not json", "cannot be read"),
    ('{"format": "something else"}', "is not a Planet Terrain head file"),
    ('{"format": "planet_terrain.head", "format_version": 99}', "has format version 99"),
])
def test_a_damaged_head_file_is_named(tmp_path, content, message):
    path = tmp_path / "bad.head.json"
    path.write_text(content)
    with pytest.raises(heads.HeadError, match=message):
        heads.read_head(str(path))


def test_weights_of_the_wrong_shape_are_refused(tmp_path):
    x, y = clusters()
    data = heads.teach(x, y, "mine", "3", BACKBONE).to_json()
    data["bias"] = data["bias"][:1]
    path = tmp_path / "cut.head.json"
    path.write_text(json.dumps(data))
    with pytest.raises(heads.HeadError, match="it is damaged: teach the head again"):
        heads.read_head(str(path))


def test_a_head_runs_on_its_backbone_only_and_answers_with_its_classes(tmp_path, tiny_model):
    session_mod.clear_cache()
    path = write_valid_model(tmp_path / "emb.onnx", outputs=TWO_OUTPUTS)
    model = load_model(str(path))
    # the per-image stretch keeps the share of dark pixels: mostly-dark and mostly-bright images stay apart
    ramp = [np.where(np.arange(1600).reshape(1, 40, 40) < share * 1600, 0.0, 255.0)
            for share in (0.95, 0.9, 0.85, 0.15, 0.1, 0.05)]
    emb, reasons = heads.embed_blocks(model, ramp, [None] * 6)
    assert not any(reasons) and emb.shape == (6, 3)
    head = heads.teach(emb, ["dark"] * 3 + ["bright"] * 3, "bd", "1", heads.backbone_info(model))
    taught = heads.attach_head(model, head)
    assert taught.contract.class_names == ("dark", "bright") and taught.contract.model_name == "bd"
    assert all(c.bodies == model.contract.bodies for c in taught.contract.classes)
    results = classify_blocks(taught, [ramp[0], ramp[-1]], [None, None], threshold=0.0)
    assert [r.decision.label for r in results] == ["dark", "bright"]
    assert results[0].decision.reason is Reason.NONE
    other = load_model(str(write_valid_model(tmp_path / "other.onnx", outputs=TWO_OUTPUTS, model_version="2")))
    with pytest.raises(heads.HeadError, match="was taught on the model tiny-test-model 0.0.1-test"):
        heads.attach_head(other, head)
    with pytest.raises(heads.HeadError, match="has no embedding output"):
        heads.attach_head(load_model(str(tiny_model)), head)
