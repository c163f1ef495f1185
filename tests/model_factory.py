"""Real, tiny ONNX models with valid or deliberately broken contracts, built with ``onnx.helper``.

The network is a fixed, deterministic function (global average pool of the 3 input channels, then a linear
layer to the classes), so tests can predict its output: brighter images push towards one class, darker towards
another. It is never shipped and never presented as a classifier: it only exercises the plugin's plumbing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from planet_terrain_plugin.core.contract import EMBEDDING, HIRISE_LANDFORMS, KEY_PREFIX, LOGITS, OOD_SCORE, ModelContract

TEST_INPUT_SIZE = 32


def tiny_contract(**changes) -> ModelContract:
    """A valid contract for the tiny network; ``changes`` override fields."""
    base = ModelContract(
        model_name="tiny-test-model", model_version="0.0.1-test", classes=HIRISE_LANDFORMS,
        input_size=TEST_INPUT_SIZE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), temperature=1.0,
        threshold=0.3, bodies=("Mars", "Moon", "Vesta"), gsd_range_m=(0.25, 6.0),
        metrics={"macro_f1": 0.0, "note": "test fixture, not a classifier"})
    return base.replace(**changes) if changes else base


def tiny_weights(num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights mapping mean brightness (normalised, per channel) to logits: class 0 likes bright, 1 dark."""
    w = np.zeros((3, num_classes), np.float32)
    w[:, 0] = 2.0
    if num_classes > 1:
        w[:, 1] = -2.0
    b = np.linspace(0.0, -0.5, num_classes).astype(np.float32)
    return w, b


#: The tiny network's OOD score: the length of its 3-d embedding (the normalised channel means), so an image far
#: from mid-grey scores high: a uniform image of value v scores sqrt(3) * |v - 0.5| / 0.25.
TINY_OOD_STATS = dict(mean=np.zeros(3), projection=np.eye(3))
TWO_OUTPUTS, THREE_OUTPUTS = (LOGITS, EMBEDDING), (LOGITS, EMBEDDING, OOD_SCORE)


def build_tiny_model(input_size: int = TEST_INPUT_SIZE, num_classes: int = 7,
                     opset: int = 17, outputs: tuple[str, ...] = (LOGITS,)) -> onnx.ModelProto:
    """(N, 3, S, S) -> GlobalAveragePool -> Flatten -> Gemm -> (N, C) logits; with ``outputs`` naming them, also
    the (N, 3) embedding (the Gemm's input) and an OOD score from it, added by the exporter's own graph code."""
    w, b = tiny_weights(num_classes)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "W", "B"], ["logits"])],
        "tiny_terrain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, input_size, input_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if OOD_SCORE in outputs:
        from export.ood_graph import GaussianStats, add_ood_score

        return add_ood_score(model, GaussianStats(EMBEDDING, **TINY_OOD_STATS))
    if EMBEDDING in outputs:
        from export.embedding import add_embedding_output

        return add_embedding_output(model)
    return model


def write_model(path: Path, metadata: dict[str, str] | None, input_size: int = TEST_INPUT_SIZE,
                num_classes: int = 7, outputs: tuple[str, ...] = (LOGITS,)) -> Path:
    """Write the tiny network with exactly ``metadata`` as its ``metadata_props``."""
    model = build_tiny_model(input_size, num_classes, outputs=outputs)
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def write_valid_model(path: Path, **contract_changes) -> Path:
    contract = tiny_contract(**contract_changes)
    return write_model(path, contract.to_metadata(), contract.input_size, contract.num_classes, contract.outputs)


def broken_metadata(kind: str) -> dict[str, str]:
    """Metadata with one kind of damage, for the bad-model catalogue."""
    md = tiny_contract().to_metadata()
    if kind == "missing_key":
        md.pop(KEY_PREFIX + "temperature")
    elif kind == "malformed_json":
        md[KEY_PREFIX + "mean"] = "[0.5, 0.5"
    elif kind == "wrong_type":
        md[KEY_PREFIX + "input_size"] = '"thirty-two"'
    elif kind == "newer_schema":
        md[KEY_PREFIX + "schema_version"] = "999"
    elif kind == "bad_threshold":
        md[KEY_PREFIX + "threshold"] = "1.5"
    elif kind == "no_contract":
        md = {}
    else:
        raise ValueError(kind)
    return md
