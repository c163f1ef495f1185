"""Add an out-of-distribution score to a Planet Terrain network, as ONNX nodes with their statistics.

The score is the Mahalanobis distance of an image's pooled intermediate features to the Gaussian fitted on the
training split's images (known landforms and "other" terrain alike): ``ood_score = |(f - mean) @ W|``, where
``W`` (D, k) projects onto the top ``k`` principal axes and whitens them. A distance in a whitened space needs
no scale of its own: about sqrt(k) for a typical training image. It runs inside the model file (a few hundred
KB of initializers), so the plugin reads a third output ``ood_score`` and needs no statistics of its own.

Which features, how many axes and the threshold are chosen by measurement (``training/ood.py``, ``make ood``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from planet_terrain_plugin.core.contract import EMBEDDING, OOD_SCORE

from .embedding import elem_types, add_embedding_output

#: Prefix of every node and initializer this module adds.
PREFIX = "ood_"
#: The pooled float32 features the score reads, when they come from an intermediate stage.
POOLED = PREFIX + "features"
#: The node that reads the features (its first input): where the score's input can be re-routed.
CENTRE = PREFIX + "centre"


@dataclass(frozen=True)
class GaussianStats:
    """Mean (D,) and whitening projection (D, k) of the training features, and where the features come from."""

    feature: str  # the graph value pooled into the features (a (N, C, H, W) activation), or EMBEDDING
    mean: np.ndarray
    projection: np.ndarray

    def distance(self, features: np.ndarray) -> np.ndarray:
        """The score the graph computes, in numpy (for fitting, measuring and tests)."""
        z = (np.asarray(features, np.float64) - self.mean) @ self.projection
        return np.sqrt((z ** 2).sum(axis=1))


def fit_gaussian(features: np.ndarray, k: int, feature: str) -> GaussianStats:
    """Principal axes of ``features`` (N, D), whitened: the k largest, scaled to unit variance."""
    x = np.asarray(features, np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(k, len(s))
    std = s[:k] / np.sqrt(max(len(x) - 1, 1))
    return GaussianStats(feature, mean, vt[:k].T / np.maximum(std, 1e-6 * std[0]))


def stage_output(model: onnx.ModelProto, stage: str) -> str:
    """The last value a named stage computes (e.g. ``layer3`` of a torchvision ResNet: ``/layer3/.../Relu``)."""
    names = [out for node in model.graph.node for out in node.output if out.startswith(f"/{stage}/")]
    if not names:
        raise ValueError(f"the graph has no stage '{stage}' (no value named '/{stage}/...')")
    return names[-1]


def pooled_float(graph: onnx.GraphProto, value: str, is_float: bool) -> str:
    """Nodes pooling a (N, C, H, W) activation to (N, C) float32; a one-input Sum keeps onnxruntime's CPU
    provider computing the shared activation in float32, as :mod:`export.embedding` explains."""
    graph.node.extend([helper.make_node("GlobalAveragePool", [value], [PREFIX + "gap"], name=PREFIX + "gap"),
                       helper.make_node("Flatten", [PREFIX + "gap"], [PREFIX + "flat"], name=PREFIX + "flat")])
    if is_float:
        return PREFIX + "flat"
    graph.node.extend([helper.make_node("Sum", [PREFIX + "flat"], [PREFIX + "keep"], name=PREFIX + "keep"),
                       helper.make_node("Cast", [PREFIX + "keep"], [POOLED], name=PREFIX + "cast",
                                        to=TensorProto.FLOAT)])
    return POOLED


def add_ood_score(model: onnx.ModelProto, stats: GaussianStats) -> onnx.ModelProto:
    """Return ``model`` with outputs (logits, embedding, ood_score); ``ood_score`` is float32 (N,)."""
    graph = model.graph
    if any(o.name == OOD_SCORE for o in graph.output):
        raise ValueError(f"the model already has an '{OOD_SCORE}' output")
    add_embedding_output(model)
    if stats.feature == EMBEDDING:
        features = EMBEDDING
    else:
        elem = elem_types(model).get(stats.feature, TensorProto.FLOAT)
        features = pooled_float(graph, stats.feature, is_float=elem == TensorProto.FLOAT)
    graph.initializer.extend([numpy_helper.from_array(stats.mean.astype(np.float32), PREFIX + "mean"),
                              numpy_helper.from_array(stats.projection.astype(np.float32), PREFIX + "projection")])
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset >= 18:  # reduction axes became an input in opset 18
        graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), PREFIX + "axes"))
        reduce = helper.make_node("ReduceSumSquare", [PREFIX + "z", PREFIX + "axes"], [PREFIX + "d2"],
                                  name=PREFIX + "d2", keepdims=0)
    else:
        reduce = helper.make_node("ReduceSumSquare", [PREFIX + "z"], [PREFIX + "d2"], name=PREFIX + "d2", axes=[1],
                                  keepdims=0)
    graph.node.extend([
        helper.make_node("Sub", [features, PREFIX + "mean"], [PREFIX + "centred"], name=CENTRE),
        helper.make_node("MatMul", [PREFIX + "centred", PREFIX + "projection"], [PREFIX + "z"], name=PREFIX + "project"),
        reduce,
        helper.make_node("Sqrt", [PREFIX + "d2"], [OOD_SCORE], name=PREFIX + "distance")])
    batch = graph.output[0].type.tensor_type.shape.dim[0]
    graph.output.append(helper.make_tensor_value_info(OOD_SCORE, TensorProto.FLOAT, [batch.dim_param or "N"]))
    onnx.checker.check_model(model)
    return model
