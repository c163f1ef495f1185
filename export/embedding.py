"""Expose a classifier's penultimate feature as a second ONNX output, ``embedding``, without retraining.

Taught heads (a small classifier fitted on frozen features) and the out-of-distribution score both read the
pooled feature that the final linear layer turns into logits. Exporting it from the same graph keeps one
network, one preprocessing and one file: ``logits`` stays the first output, bit-for-bit on onnxruntime, and ``embedding``
(float32, (N, D)) is the input of the last Gemm/MatMul, cast to float32 when the graph computes in fp16.

``python -m export.embedding IN.onnx OUT.onnx`` rewrites a file; :func:`add_embedding_output` works in memory.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from planet_terrain_plugin.core.contract import EMBEDDING


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every value onnx's shape inference can name (inputs, outputs, intermediates)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    return {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}


def penultimate(model: onnx.ModelProto) -> str:
    """Name of the value the final linear layer reads: the Gemm/MatMul upstream of ``logits`` (through Casts)."""
    graph = model.graph
    prod = _producers(graph)
    name = graph.output[0].name
    node = prod.get(name)
    while node is not None and node.op_type in ("Cast", "Identity", "Add"):
        if node.op_type == "Add":  # MatMul + bias: follow the operand a MatMul produced
            node = next((prod[i] for i in node.input if i in prod and prod[i].op_type == "MatMul"), None)
            continue
        node = prod.get(node.input[0])
    if node is None or node.op_type not in ("Gemm", "MatMul"):
        raise ValueError(f"the first output '{name}' does not come from a Gemm/MatMul layer; cannot find the "
                         "penultimate feature")
    return node.input[0]


def add_embedding_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return ``model`` with ``embedding`` (float32, (N, D)) appended to its outputs; the first output is kept.

    A model that already has an ``embedding`` output is returned unchanged.
    """
    graph = model.graph
    if any(o.name == EMBEDDING for o in graph.output):
        return model
    feature = penultimate(model)
    elem = elem_types(model).get(feature, TensorProto.FLOAT)
    shape = feature_shape(model, feature)
    if elem == TensorProto.FLOAT:
        graph.node.append(helper.make_node("Identity", [feature], [EMBEDDING], name="embedding_out"))
    else:
        # A one-input Sum (the identity) before the Cast: onnxruntime's CPU provider has no fp16 Sum, so it keeps
        # the shared feature in float32 as in the original graph; a bare Cast would make it round that value to
        # fp16 for the final layer too, moving the logits by ~1e-4.
        graph.node.extend([helper.make_node("Sum", [feature], ["embedding_fp16"], name="embedding_keep"),
                           helper.make_node("Cast", ["embedding_fp16"], [EMBEDDING], name="embedding_cast",
                                            to=TensorProto.FLOAT)])
    graph.output.append(helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, shape))
    onnx.checker.check_model(model)
    return model


def feature_shape(model: onnx.ModelProto, feature: str) -> list:
    """(N, D) with D read from the final layer's weight, N symbolic like the logits' batch axis."""
    graph = model.graph
    batch = graph.output[0].type.tensor_type.shape.dim[0]
    n = batch.dim_param or (batch.dim_value or "N")
    consumer = next(node for node in graph.node if feature in node.input and node.op_type in ("Gemm", "MatMul"))
    inits = {i.name: i for i in graph.initializer}
    w = inits.get(consumer.input[1])
    if w is None:
        return [n, None]
    trans_b = any(a.name == "transB" and a.i == 1 for a in consumer.attribute)
    return [n, int(w.dims[1] if trans_b else w.dims[0])]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src")
    p.add_argument("dst")
    a = p.parse_args(argv)
    model = add_embedding_output(onnx.load(a.src))
    onnx.save(model, a.dst)
    print(f"wrote {Path(a.dst)} with outputs {[o.name for o in model.graph.output]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
