"""Heads: small classifiers taught on the frozen embedding of a shipped model, in seconds on the CPU.

A scientist's classes are rarely the shipped seven (gullies, lunar pits, Vesta's grooves). A head is a
multinomial logistic regression (numpy, L2, accelerated gradient descent) on the backbone's penultimate
``embedding`` output, so teaching needs tens of labelled cells, not a GPU. It is

* calibrated by cross-validation: the temperature that makes the out-of-fold probabilities honest, and the
  per-class out-of-fold accuracy the user is shown;
* given its own abstention: a label is given only where, out of fold, labels at that confidence were more often
  right than wrong; and with a pool of background ("other") examples, an extra background output whose
  probability plays the role of the backbone's out-of-distribution score (cells like the background abstain);
* saved as plain JSON (data, never code: a head file may come from a colleague) and bound to its backbone by the sha256
  of the ONNX file, because an embedding means nothing to a head taught on another network.

:func:`attach_head` turns a loaded backbone into a model whose contract carries the head's classes, name and
version, so every consumer of a model (the engine, the result fields, re-labelling, the CLI) uses a head
unchanged. No Qt, no torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import checksum
from .calibrate import softmax
from .contract import EMBEDDING, LOGITS, OOD_SCORE, UNKNOWN_LABEL, ModelContract, TerrainClass
from .session import NetworkOutputs, TerrainModel

HEAD_FORMAT = "planet_terrain.head"
HEAD_FORMAT_VERSION = 1
HEAD_SUFFIX = ".head.json"
#: Labels that mean "none of the taught classes": the pool the abstention is fitted on.
BACKGROUND_LABELS = ("other", "background")
#: L2 strengths tried by cross-validation (on standardised features, loss averaged over examples).
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
FIT_STEPS = 300
MAX_FOLDS = 5


class HeadError(ValueError):
    """A head that cannot be taught, read or used here; the message says what to do."""


def is_background(label: str) -> bool:
    return label.strip().lower() in BACKGROUND_LABELS


@dataclass(frozen=True)
class Head:
    """A taught head: features -> logits over ``classes`` (+ one background output when ``background``)."""

    name: str
    version: str
    classes: tuple[str, ...]
    weights: np.ndarray  # (D, K) or (D, K + 1): the last column is the background output
    bias: np.ndarray
    mean: np.ndarray  # (D,) feature standardisation
    std: np.ndarray
    temperature: float
    threshold: float
    background_threshold: float | None  # None: taught without background examples
    backbone: dict  # sha256, model_name, model_version, embedding_dim
    cv: dict = field(default_factory=dict)
    created_utc: str = ""

    @property
    def background(self) -> bool:
        return self.background_threshold is not None

    def logits(self, embedding: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> (N, K[+1]) raw logits (the temperature is applied by the decision)."""
        z = (np.asarray(embedding, np.float64) - self.mean) / self.std
        return z @ self.weights + self.bias

    def outputs(self, net: NetworkOutputs) -> NetworkOutputs:
        """The backbone's outputs -> the head's: class logits and, with background, its probability as the
        out-of-distribution score."""
        if net.embedding is None:
            raise HeadError("the model returned no embedding; a head needs a model exported with one")
        raw = self.logits(net.embedding)
        k = len(self.classes)
        score = softmax(raw, self.temperature)[:, k] if self.background else None
        return NetworkOutputs(raw[:, :k].astype(np.float32), net.embedding,
                              None if score is None else score.astype(np.float32))

    def contract_for(self, backbone: ModelContract) -> ModelContract:
        """``backbone``'s contract with this head's classes, calibration, name and version."""
        classes = tuple(TerrainClass(i + 1, n, backbone.bodies) for i, n in enumerate(self.classes))
        outputs = (LOGITS, EMBEDDING, OOD_SCORE) if self.background else (LOGITS, EMBEDDING)
        metrics = {"cv_accuracy": self.cv.get("accuracy"), "backbone": backbone.model_name,
                   "backbone_version": backbone.model_version}
        return backbone.replace(model_name=self.name, model_version=self.version, classes=classes,
                                temperature=self.temperature, threshold=self.threshold, outputs=outputs,
                                ood_threshold=self.background_threshold, metrics=metrics)

    def to_json(self) -> dict:
        plain = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("weights", "bias", "mean", "std"):
            plain[key] = np.asarray(plain[key]).tolist()
        plain["classes"] = list(self.classes)
        return {"format": HEAD_FORMAT, "format_version": HEAD_FORMAT_VERSION, **plain}


# -- fitting -------------------------------------------------------------------------------------------------
def fit_logistic(x: np.ndarray, y: np.ndarray, n_out: int, l2: float, steps: int = FIT_STEPS):
    """Multinomial logistic regression by Nesterov-accelerated gradient descent: (weights (D, n_out), bias)."""
    n, d = x.shape
    onehot = np.eye(n_out)[y]
    v = np.random.default_rng(0).standard_normal(d)
    for _ in range(20):  # power iteration: the step size from the largest curvature
        v = x.T @ (x @ v)
        v /= np.linalg.norm(v) or 1.0
    lipschitz = 0.5 * (np.linalg.norm(x @ v) ** 2 / n + 1.0) + l2
    w = np.zeros((d, n_out))
    b = np.zeros(n_out)
    w_prev, b_prev = w, b
    for t in range(1, steps + 1):
        mom = (t - 1) / (t + 2)
        yw, yb = w + mom * (w - w_prev), b + mom * (b - b_prev)
        grad = (softmax(x @ yw + yb) - onehot) / n
        w_prev, b_prev = w, b
        w = yw - (x.T @ grad + l2 * yw) / lipschitz
        b = yb - grad.sum(axis=0) / lipschitz
    return w, b


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (floored) standard deviation per feature: constant features stay harmless."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.maximum(std, 1e-3 * float(std.mean()) + 1e-12)


def folds_of(y: np.ndarray, n_folds: int) -> np.ndarray:
    """A stratified fold number per example (deterministic)."""
    fold = np.zeros(len(y), int)
    rng = np.random.default_rng(0)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % n_folds
    return fold


def out_of_fold_logits(x: np.ndarray, y: np.ndarray, n_out: int, l2: float, fold: np.ndarray) -> np.ndarray:
    out = np.zeros((len(y), n_out))
    for f in np.unique(fold):
        test = fold == f
        mean, std = standardise(x[~test])
        w, b = fit_logistic((x[~test] - mean) / std, y[~test], n_out, l2)
        out[test] = ((x[test] - mean) / std) @ w + b
    return out


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the out-of-fold negative log-likelihood (log-spaced search)."""
    grid = np.exp(np.linspace(math.log(0.05), math.log(20.0), 121))
    nll = [-np.log(softmax(logits, t)[np.arange(len(y)), y] + 1e-12).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def best_cut(scores: np.ndarray, good: np.ndarray) -> float:
    """The cut c (accept scores >= c) maximising accepted good minus accepted bad; the smallest on ties."""
    candidates = np.concatenate([[0.0], np.sort(scores)])
    gain = [int(np.sum(good & (scores >= c))) - int(np.sum(~good & (scores >= c))) for c in candidates]
    return float(candidates[int(np.argmax(gain))])


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """The taught class names in first-seen order; :class:`HeadError` when they cannot make a head."""
    names: list[str] = []
    for label in labels:
        label = str(label).strip()
        if not label:
            raise HeadError("an example has an empty label; give every example a class name (or 'other' for "
                            "background)")
        if label.lower() == UNKNOWN_LABEL:
            raise HeadError(f"'{UNKNOWN_LABEL}' is what an abstaining head reports, not a class; label "
                            "background examples 'other'")
        if not is_background(label) and label not in names:
            names.append(label)
    fields = [TerrainClass(1, n, ("Mars",)).field_name for n in names]
    if len(set(fields)) != len(fields):
        raise HeadError(f"the class names {names} differ only in letter case or spaces; use distinct names")
    background = any(is_background(str(x)) for x in labels)
    if len(names) < 2 and not (names and background):
        raise HeadError(f"a head needs two classes, or one class and 'other' (background) examples; got {names}")
    return tuple(names)


def teach(embeddings: np.ndarray, labels: Sequence[str], name: str, version: str, backbone: dict) -> Head:
    """Fit a head on (N, D) ``embeddings`` with ``labels`` (``other``/``background`` = background pool)."""
    classes = check_labels(labels)
    x = np.asarray(embeddings, np.float64)
    if x.ndim != 2 or len(x) != len(labels) or not np.isfinite(x).all():
        raise HeadError(f"expected one finite embedding per example, got shape {x.shape} for {len(labels)} labels")
    k = len(classes)
    background = any(is_background(str(label)) for label in labels)
    y = np.array([k if is_background(str(label)) else classes.index(str(label).strip()) for label in labels])
    n_out = k + int(background)
    counts = np.bincount(y, minlength=n_out)
    n_folds = min(MAX_FOLDS, int(counts.min()))
    cv: dict = {"examples": {n: int(c) for n, c in zip(list(classes) + ["other"] * background, counts)}}
    l2, temperature, threshold, bg_threshold = L2_GRID[1], 1.0, 0.0, (0.5 if background else None)
    if n_folds >= 2:
        fold = folds_of(y, n_folds)
        oof = {lam: out_of_fold_logits(x, y, n_out, lam, fold) for lam in L2_GRID}
        l2 = min(L2_GRID, key=lambda lam: -np.log(softmax(oof[lam])[np.arange(len(y)), y] + 1e-12).mean())
        temperature = fit_temperature(oof[l2], y)
        threshold, bg_threshold, cv = _cv_report(oof[l2], y, k, temperature, background, n_folds, cv)
    else:
        cv["note"] = f"no cross-validation: a class has {int(counts.min())} example(s); give 2 or more each"
    mean, std = standardise(x)
    w, b = fit_logistic((x - mean) / std, y, n_out, l2)
    cv["l2"] = l2
    return Head(name, version, classes, w, b, mean, std, temperature, threshold, bg_threshold, dict(backbone), cv)


def _cv_report(oof: np.ndarray, y: np.ndarray, k: int, temperature: float, background: bool, n_folds: int,
               cv: dict) -> tuple[float, float | None, dict]:
    """Abstention cuts and the per-class accuracy, from out-of-fold logits."""
    named = y < k
    probs = softmax(oof[:, :k], temperature)
    pred = probs.argmax(axis=1)
    threshold = best_cut(probs.max(axis=1)[named], pred[named] == y[named])
    bg_threshold = None
    if background:
        p_bg = softmax(oof, temperature)[:, k]
        # reject when p_bg > cut: the cut that best separates background rejected from classes kept, placed
        # half-way to the next score so that it does not sit on a training example's score
        cuts = np.unique(np.concatenate([[0.0, 1.0], p_bg]))
        gain = [np.mean(p_bg[~named] > c) - np.mean(p_bg[named] > c) for c in cuts]
        best = int(np.argmax(gain))
        bg_threshold = float((cuts[best] + cuts[min(best + 1, len(cuts) - 1)]) / 2)
        cv["background_rejected"] = round(float(np.mean(p_bg[~named] > bg_threshold)), 4)
    names = list(cv["examples"])[:k]  # every class has at least n_folds examples
    cv.update(folds=n_folds, accuracy=round(float(np.mean(pred[named] == y[named])), 4),
              per_class_accuracy={n: round(float(np.mean(pred[y == i] == i)), 4) for i, n in enumerate(names)})
    return threshold, bg_threshold, cv


def embed_blocks(model: TerrainModel, blocks: Sequence[np.ndarray], masks: Sequence[np.ndarray | None],
                 batch: int = 32) -> tuple[np.ndarray, list[str]]:
    """Embeddings of raw raster blocks, preprocessed as a classification preprocesses them; a mostly-nodata
    block has a row of NaN and its reason in the list ("" for the others)."""
    from .pipeline import prepare_blocks

    prepared = prepare_blocks(model.contract, list(blocks), list(masks))
    reasons = [r.skipped_reason for r in prepared.results]
    out = np.full((len(blocks), 0), np.nan)
    if prepared.tensors is not None:
        parts = [model.run(prepared.tensors[i:i + batch]).embedding for i in range(0, len(prepared.tensors), batch)]
        if parts[0] is None:
            raise HeadError(backbone_problem(model))
        found = np.concatenate(parts)
        out = np.full((len(blocks), found.shape[1]), np.nan)
        out[list(prepared.usable)] = found
    return out, reasons


# -- files and binding ---------------------------------------------------------------------------------------
_HASHES: dict[tuple, str] = {}


def file_sha256(path: str) -> str:
    """sha256 of a file, cached by (path, mtime, size): a model is hashed once per session."""
    st = os.stat(path)
    key = os.path.abspath(path), st.st_mtime_ns, st.st_size
    if key not in _HASHES:
        _HASHES[key] = checksum.file_sha256(path)
    return _HASHES[key]


def backbone_info(model: TerrainModel) -> dict:
    """What binds a head to ``model``: the file's hash, its name, version and embedding size."""
    if EMBEDDING not in model.contract.outputs:
        raise HeadError(backbone_problem(model))
    return {"sha256": file_sha256(model.path), "model_name": model.contract.model_name,
            "model_version": model.contract.model_version}


def backbone_problem(model: TerrainModel) -> str:
    return (f"the model '{os.path.basename(model.path)}' has no embedding output, so no head can be taught or used "
            "on it; use the shipped model (1.2.0 or later) or re-export it with `make export`")


def head_to_text(head: Head) -> str:
    return json.dumps(head.to_json(), indent=1)


def read_head(path: str) -> Head:
    """Read a head file; :class:`HeadError` naming the file and the problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HeadError(f"head file '{path}' cannot be read ({exc}); give a file written by 'teach'") from None
    if not isinstance(data, dict) or data.get("format") != HEAD_FORMAT:
        raise HeadError(f"'{path}' is not a Planet Terrain head file (no \"format\": \"{HEAD_FORMAT}\")")
    if data.get("format_version") != HEAD_FORMAT_VERSION:
        raise HeadError(f"head file '{path}' has format version {data.get('format_version')}; this plugin reads "
                        f"{HEAD_FORMAT_VERSION}: update the plugin or teach the head again")
    try:
        head = Head(**{f.name: data[f.name] for f in dataclasses.fields(Head) if f.name in data})
        head = dataclasses.replace(head, classes=tuple(head.classes),
                                   **{k: np.asarray(getattr(head, k), np.float64)
                                      for k in ("weights", "bias", "mean", "std")})
    except (TypeError, ValueError) as exc:
        raise HeadError(f"head file '{path}' is incomplete or damaged ({exc}); teach the head again") from None
    d, n_out = len(head.mean), len(head.classes) + int(head.background)
    if head.weights.shape != (d, n_out) or head.bias.shape != (n_out,) or head.std.shape != (d,):
        raise HeadError(f"head file '{path}' has weights {head.weights.shape} for {n_out} outputs and {d} features; "
                        "it is damaged: teach the head again")
    return head


def binding_problem(head: Head, model_path: str, sha256: str | None = None,
                    remedy: str = "use that model file") -> str | None:
    """Why ``head`` cannot answer for the model file ``model_path`` (it was taught on another file), or None.

    ``sha256``: the file's, when the caller has it already; ``remedy``: how this entry point names the model."""
    sha256 = sha256 or file_sha256(model_path)
    if sha256 == head.backbone.get("sha256"):
        return None
    return (f"the head '{head.name}' was taught on the model {head.backbone.get('model_name')} "
            f"{head.backbone.get('model_version')} (sha256 {str(head.backbone.get('sha256'))[:12]}…), not on "
            f"'{os.path.basename(model_path)}' ({sha256[:12]}…); {remedy}, or teach the head again on this one")


def attach_head(model: TerrainModel, head: Head) -> "HeadedModel":
    """``model`` answering with ``head``'s classes; :class:`HeadError` when the head was taught on another file."""
    backbone_info(model)  # refuses a model without an embedding
    problem = binding_problem(head, model.path)
    if problem:
        raise HeadError(problem)
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(TerrainModel) if f.init and f.name != "_lock"}
    fields["contract"] = head.contract_for(model.contract)
    return HeadedModel(**fields, backbone=model, head=head)


@dataclass
class HeadedModel(TerrainModel):
    """A backbone with a head on its embedding: runs the backbone, answers with the head's outputs."""

    backbone: TerrainModel | None = None
    head: Head | None = None

    def run(self, batch: np.ndarray) -> NetworkOutputs:
        return self.head.outputs(self.backbone.run(batch))


def head_path(path: str) -> str:
    """``path`` as a head file name: ``.head.json`` added when it does not end in ``.json``."""
    return path if path.lower().endswith(".json") else path + HEAD_SUFFIX


def save_head(head: Head, path: str) -> str:
    """Write ``head`` to a new file (never replacing one); returns its path."""
    from .newfile import write_new

    return write_new(head_path(path), head_to_text(head).encode("utf-8"))
