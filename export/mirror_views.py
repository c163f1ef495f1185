"""Test-time augmentation inside the model file: the mirror image as a second view (``make mirror-views``).

Grouped 5-fold cross-validation (docs/cv.md) found that averaging an image's logits with those of its mirror
image (``training.inference.TTA_VIEWS[2]``) beats one view by an interval that excludes zero, in macro-F1 and in
AUROC known/other. Putting the view in the graph keeps one file, one preprocessing and an unchanged plugin: the
graph runs its network on ``concat(x, mirror(x))`` and averages the two views' penultimate features before the
final linear layer, which is the same as averaging their logits (the layer is linear), so ``embedding`` is the
two views' mean too. The out-of-distribution score reads the first view only, so it, its statistics and its
threshold stay the ones ``make ood`` measured. Averaging makes the network less confident, so the temperature and
the abstention threshold are fitted again on the validation split with both views, exactly as
``training.calibrate`` fits them for one; the test split is then scored once.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from planet_terrain_plugin.core.contract import EMBEDDING, OOD_SCORE, read_contract

from .embedding import feature_shape, penultimate
from .ood_graph import CENTRE

#: Prefix of every node and initializer this module adds.
PREFIX = "mirror_"
#: The metrics key recording how many views the file averages.
VIEWS_KEY = "test_time_views"


def _const(graph: onnx.GraphProto, name: str, values: list[int]) -> str:
    graph.initializer.append(numpy_helper.from_array(np.array(values, np.int64), PREFIX + name))
    return PREFIX + name


def _rewire(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every node of ``graph`` that reads ``old`` reads ``new`` instead."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def has_mirror_view(model: onnx.ModelProto) -> bool:
    """Whether :func:`add_mirror_view` made this graph (its network then runs on twice the batch)."""
    return any(n.name.startswith(PREFIX) for n in model.graph.node)


def add_mirror_view(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return ``model`` computing its logits (and embedding) as the mean over the image and its mirror image."""
    graph = model.graph
    if has_mirror_view(model):
        raise ValueError("the model already averages a mirror view")
    image = graph.input[0].name
    feature = penultimate(model)
    width = feature_shape(model, feature)[1]
    if width is None:
        raise ValueError(f"cannot read the width of the penultimate feature '{feature}'")
    centre = next((n for n in graph.node if n.name == CENTRE), None)
    if centre is not None and centre.input[0] == EMBEDDING:
        raise ValueError("the out-of-distribution score reads the embedding, which becomes the mean of the views: "
                         "its statistics would no longer hold; fit it again (`make ood`) after adding the view")
    int64_min = int(np.iinfo(np.int64).min)
    views = [
        helper.make_node("Slice", [image, _const(graph, "last", [-1]), _const(graph, "before_first", [int64_min]),
                                   _const(graph, "width_axis", [3]), _const(graph, "backwards", [-1])],
                         [PREFIX + "flipped"], name=PREFIX + "flip"),
        helper.make_node("Concat", [image, PREFIX + "flipped"], [PREFIX + "views"], name=PREFIX + "views", axis=0),
    ]
    mean = [helper.make_node("Reshape", [feature, _const(graph, "pair_shape", [2, -1, width])], [PREFIX + "pair"],
                             name=PREFIX + "pair"), _mean_of_pair(model)]
    _rewire(graph, image, PREFIX + "views")
    _rewire(graph, feature, PREFIX + "mean")
    first = []
    if centre is not None:
        first = [helper.make_node("Shape", [image], [PREFIX + "n"], name=PREFIX + "n", start=0, end=1),
                 helper.make_node("Slice", [centre.input[0], _const(graph, "zero", [0]), PREFIX + "n",
                                            _const(graph, "batch_axis", [0])], [PREFIX + "first"],
                                  name=PREFIX + "first")]
        centre.input[0] = PREFIX + "first"
    nodes = views + list(graph.node) + mean + first
    del graph.node[:]
    graph.node.extend(_topological(nodes, {i.name for i in graph.input} | {i.name for i in graph.initializer}))
    onnx.checker.check_model(model)
    return model


def _mean_of_pair(model: onnx.ModelProto) -> onnx.NodeProto:
    """ReduceMean over the views axis; its axes became an input in opset 18."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset >= 18:
        return helper.make_node("ReduceMean", [PREFIX + "pair", _const(model.graph, "views_axis", [0])],
                                [PREFIX + "mean"], name=PREFIX + "mean", keepdims=0)
    return helper.make_node("ReduceMean", [PREFIX + "pair"], [PREFIX + "mean"], name=PREFIX + "mean", axes=[0],
                            keepdims=0)


def _topological(nodes: list[onnx.NodeProto], ready: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` ordered so that every node comes after the producers of its inputs (ONNX requires it)."""
    done, out, pending = set(ready), [], list(nodes)
    while pending:
        later = []
        for node in pending:
            if all(not i or i in done for i in node.input):
                out.append(node)
                done.update(node.output)
            else:
                later.append(node)
        if len(later) == len(pending):
            raise ValueError(f"the graph has inputs nobody produces: {[n.name for n in later][:5]}")
        pending = later
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.mirror_views", description=__doc__.splitlines()[0])
    p.add_argument("model", help="a Planet Terrain model file (fp32 or fp16) with one view")
    p.add_argument("out", help="where the two-view file goes (refused if it exists)")
    a = p.parse_args(argv)
    out = Path(a.out)
    if out.exists():
        raise SystemExit(f"'{out}' already exists; remove it first if it should be rebuilt")
    contract = read_contract(a.model)
    model = add_mirror_view(onnx.load(a.model))
    onnx.save(model, str(out))
    print(json.dumps({"wrote": str(out), "outputs": [o.name for o in model.graph.output],
                      "ood_from_first_view": OOD_SCORE in contract.outputs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
