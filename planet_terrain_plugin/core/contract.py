"""The model contract: the one definition of what a Planet Terrain ONNX file promises.

Every fact the plugin needs to use a model correctly (class list and output order, input size, normalisation,
temperature, abstention threshold, bodies, ground-sampling range, version, which export variant the file is and
how far it strays from fp32, test metrics) travels inside the ONNX file as ``metadata_props``, every key under
:data:`KEY_PREFIX`. This module is the only place that schema is written down: ``export/`` imports it to write
the keys, the plugin imports it to read them. Parsing is strict: a missing or malformed key raises
:class:`ContractError` naming the key and the file, because a silently defaulted normalisation or threshold
gives confident wrong answers.

No Qt, no torch, no onnx package: reading uses onnxruntime's model metadata, which the plugin already needs.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

#: Bump when a key is added, removed or changes meaning. Files with a newer schema are refused with a clear
#: message (the plugin is too old); older ones are migrated on reading (:func:`_variant_v1`). 2: the variant and
#: its agreement with fp32 moved from the free-form ``metrics`` into the typed ``variant`` key; and the network's
#: outputs (``outputs``) and out-of-distribution limit (``ood_threshold``), optional: without them, logits only.
SCHEMA_VERSION = 2
#: Every key lives under this prefix so that foreign metadata in the same file never collides.
KEY_PREFIX = "planet_terrain."
#: Channel modes the preprocessing knows. ``luminance3``: one luminance channel replicated to 3.
CHANNEL_MODES = ("luminance3",)
#: Class id and label given to an abstained prediction. The dataset's class 0 ("other") is handled this way.
UNKNOWN_ID = 0
UNKNOWN_LABEL = "unknown"
#: Bodies the plugin knows (see ``bodies.py``); the contract names the ones each class can occur on.
KNOWN_BODIES = ("Mars", "Moon", "Vesta")
#: The export variants of one network (``export/``): full precision, and the smaller ones scored against it.
VARIANT_NAMES = ("fp32", "fp16", "int8")
#: Temperatures a calibrated model can have. Outside, ``logits / T`` either saturates the softmax into 0/1
#: (T tiny: an overconfident label for every image, or inf - inf = NaN) or flattens it to uniform (T huge: every
#: image abstains); either way the file is broken, not calibrated. Fitted values lie within 0.05-20.
TEMPERATURE_RANGE = (1e-3, 1e3)
#: Prefix of the per-class probability attribute names (:attr:`TerrainClass.field_name`).
PROBABILITY_PREFIX = "p_"
#: Names of the network's outputs, in order: ``logits`` always; schema 2 files may add the penultimate
#: ``embedding`` (float32 (N, D)) and an ``ood_score`` computed from it (float32 (N,), higher = less familiar).
LOGITS, EMBEDDING, OOD_SCORE = "logits", "embedding", "ood_score"
OUTPUT_LAYOUTS = ((LOGITS,), (LOGITS, EMBEDDING), (LOGITS, EMBEDDING, OOD_SCORE))


class ContractError(ValueError):
    """A model file whose contract is missing, malformed or unsupported; the message says which key and file."""

    def __init__(self, source: str, key: str | None, problem: str, hint: str = "") -> None:
        where = f"key '{KEY_PREFIX}{key}' " if key else ""
        msg = f"Model '{source}': {where}{problem}"
        if hint:
            msg += f" {hint}"
        super().__init__(msg)
        self.source, self.key, self.problem = source, key, problem


@dataclass(frozen=True)
class TerrainClass:
    """One output of the network: dataset class id, human name, bodies where the landform can occur."""

    id: int
    name: str
    bodies: tuple[str, ...]

    @cached_property  # read for every feature a grid writes
    def field_name(self) -> str:
        """Attribute-safe name used for the ``p_<class>`` probability fields."""
        return PROBABILITY_PREFIX + "_".join(self.name.lower().split())


#: The HiRISE map-proj-v3 landforms (Wagstaff et al., Zenodo 10.5281/zenodo.2538136) the default model learns,
#: in network output order. Class 0 ("other") is not an output: it is what abstention reports.
#: Dunes and slope streaks need wind or volatiles moving on the surface; spiders and swiss cheese are Martian
#: CO2-ice forms; craters and ejecta occur on every rocky body.
HIRISE_LANDFORMS: tuple[TerrainClass, ...] = (
    TerrainClass(1, "crater", ("Mars", "Moon", "Vesta")),
    TerrainClass(2, "dark dune", ("Mars",)),
    TerrainClass(3, "slope streak", ("Mars",)),
    TerrainClass(4, "bright dune", ("Mars",)),
    TerrainClass(5, "impact ejecta", ("Mars", "Moon", "Vesta")),
    TerrainClass(6, "swiss cheese", ("Mars",)),
    TerrainClass(7, "spider", ("Mars",)),
)
#: Name of dataset class 0, the catch-all that abstention stands for.
HIRISE_OTHER = TerrainClass(UNKNOWN_ID, "other", KNOWN_BODIES)


@dataclass(frozen=True)
class VariantInfo:
    """Which export of the network a file holds, and how it compares with fp32 on the test split.

    The plugin picks int8 as the CPU default only from these figures (``core/models.py``), so they are typed and
    validated like the rest of the contract. ``name`` is None, and the figures too, for a file that never
    recorded them; the figures are None for fp32 itself.
    """

    name: str | None = "fp32"
    #: Test macro-F1 of this variant minus fp32's (negative: worse). ``low``: the smallest value that makes sense.
    macro_f1_delta_vs_fp32: float | None = field(default=None, metadata={"low": -1.0})
    #: Share of test images on which this variant's decision (a class, or unknown) equals fp32's.
    decision_agreement_vs_fp32: float | None = field(default=None, metadata={"low": 0.0})

    def problem(self) -> str | None:
        """What is wrong with these values, or None."""
        if self.name is not None and self.name not in VARIANT_NAMES:
            return f"names the variant '{self.name}'; known: {VARIANT_NAMES}."
        for f in dataclasses.fields(self):
            value, lo = getattr(self, f.name), f.metadata.get("low")
            if lo is not None and value is not None and not (isinstance(value, float) and lo <= value <= 1.0):
                return f"has {f.name} {value!r}; expected a number from {lo:g} to 1, or null."
        return None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The figures of a :class:`VariantInfo` (its fields besides the name), as export scores and records them.
VARIANT_FIGURES = tuple(f.name for f in dataclasses.fields(VariantInfo) if "low" in f.metadata)

@dataclass(frozen=True)
class ModelContract:
    """What a model file promises; parsed once per file and handed to every stage of the pipeline."""

    model_name: str
    model_version: str
    classes: tuple[TerrainClass, ...]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    temperature: float
    threshold: float
    bodies: tuple[str, ...]
    gsd_range_m: tuple[float, float]
    channel_mode: str = "luminance3"
    #: Percentiles of the per-image 8-bit stretch (low, high) applied before resizing, in training and plugin.
    stretch_percentiles: tuple[float, float] = (0.5, 99.5)
    #: Minimum share of valid (non-nodata) pixels for an image to be classified at all.
    min_valid_fraction: float = 0.5
    #: Which export variant this file is, with its agreement figures against fp32.
    variant: VariantInfo = VariantInfo()
    #: Test figures to show the user (macro-F1, ...); the plugin decides nothing from them.
    metrics: Mapping[str, Any] = field(default_factory=dict)
    #: The schema the contract was read with; :meth:`to_metadata` always writes :data:`SCHEMA_VERSION`.
    schema_version: int = SCHEMA_VERSION
    #: The network's outputs, in order (one of :data:`OUTPUT_LAYOUTS`).
    outputs: tuple[str, ...] = (LOGITS,)
    #: An image whose ``ood_score`` is above this is unlike the training images: it abstains whatever its
    #: probabilities (None: no OOD score in this file).
    ood_threshold: float | None = None

    def __post_init__(self) -> None:
        self.validate("<in memory>")

    # -- derived facts -------------------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def class_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def allowed_mask(self, body: str | None) -> tuple[bool, ...]:
        """Which outputs can occur on ``body``; every output when the body is unknown."""
        if body is None or body not in KNOWN_BODIES:
            return tuple(True for _ in self.classes)
        return tuple(body in c.bodies for c in self.classes)

    def replace(self, **changes: Any) -> "ModelContract":
        return dataclasses.replace(self, **changes)

    # -- validation ------------------------------------------------------------------------------------------
    def validate(self, source: str) -> None:
        """Raise :class:`ContractError` on values that would make the pipeline wrong rather than fail."""
        if not self.classes:
            raise ContractError(source, "classes", "lists no classes.")
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids) or UNKNOWN_ID in ids:
            raise ContractError(source, "classes", f"has duplicate ids or uses the reserved id {UNKNOWN_ID}: {ids}.")
        for c in self.classes:
            bad = [b for b in c.bodies if b not in KNOWN_BODIES]
            if bad or not c.bodies:
                raise ContractError(source, "classes", f"class '{c.name}' names unknown bodies {bad or c.bodies}.")
        if not (2 <= self.input_size <= 4096):
            raise ContractError(source, "input_size", f"must be 2..4096, got {self.input_size}.")
        if self.channel_mode not in CHANNEL_MODES:
            raise ContractError(source, "channel_mode", f"'{self.channel_mode}' is not one of {CHANNEL_MODES}.")
        for key, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise ContractError(source, key, f"must be 3 finite numbers, got {list(values)}.")
        if any(v <= 0 for v in self.std):
            raise ContractError(source, "std", f"must be 3 numbers > 0, got {list(self.std)}.")
        t_lo, t_hi = TEMPERATURE_RANGE
        if not (t_lo <= self.temperature <= t_hi):
            raise ContractError(source, "temperature", f"must be between {t_lo:g} and {t_hi:g}, got {self.temperature}.")
        if not (0.0 <= self.threshold <= 1.0):
            raise ContractError(source, "threshold", f"must be in [0, 1], got {self.threshold}.")
        lo, hi = self.gsd_range_m
        if not all(math.isfinite(v) for v in self.gsd_range_m):
            raise ContractError(source, "gsd_range_m", f"must be 2 finite numbers, got {list(self.gsd_range_m)}.")
        if not (0 < lo <= hi):
            raise ContractError(source, "gsd_range_m", f"must be 0 < min <= max, got {self.gsd_range_m}.")
        plo, phi = self.stretch_percentiles
        if not (0 <= plo < phi <= 100):
            raise ContractError(source, "stretch_percentiles", f"must be 0 <= low < high <= 100, got {self.stretch_percentiles}.")
        if not (0 < self.min_valid_fraction <= 1):
            raise ContractError(source, "min_valid_fraction", f"must be in (0, 1], got {self.min_valid_fraction}.")
        bad = [b for b in self.bodies if b not in KNOWN_BODIES]
        if bad or not self.bodies:
            raise ContractError(source, "bodies", f"names unknown bodies {bad or self.bodies}; known: {KNOWN_BODIES}.")
        if (problem := self.variant.problem()) is not None:
            raise ContractError(source, "variant", problem)
        self._validate_outputs(source)

    def _validate_outputs(self, source: str) -> None:
        if tuple(self.outputs) not in OUTPUT_LAYOUTS:
            raise ContractError(source, "outputs", f"must be one of {[list(o) for o in OUTPUT_LAYOUTS]}, got "
                                f"{list(self.outputs)}.")
        has_score = OOD_SCORE in self.outputs
        if has_score != (self.ood_threshold is not None):
            raise ContractError(source, "ood_threshold", "must be given exactly when the outputs include "
                                f"'{OOD_SCORE}' (outputs {list(self.outputs)}, threshold {self.ood_threshold}).")
        if has_score and not math.isfinite(self.ood_threshold):
            raise ContractError(source, "ood_threshold", f"must be a finite number, got {self.ood_threshold}.")

    # -- (de)serialisation -----------------------------------------------------------------------------------
    def to_metadata(self) -> dict[str, str]:
        """The ``metadata_props`` entries (all strings, JSON where structured) that embed this contract."""
        plain = {
            "schema_version": SCHEMA_VERSION,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "classes": [{"id": c.id, "name": c.name, "bodies": list(c.bodies)} for c in self.classes],
            "input_size": self.input_size,
            "channel_mode": self.channel_mode,
            "mean": list(self.mean),
            "std": list(self.std),
            "stretch_percentiles": list(self.stretch_percentiles),
            "min_valid_fraction": self.min_valid_fraction,
            "temperature": self.temperature,
            "threshold": self.threshold,
            "bodies": list(self.bodies),
            "gsd_range_m": list(self.gsd_range_m),
            "variant": self.variant.to_json(),
            "metrics": dict(self.metrics),
            "outputs": list(self.outputs),
            "ood_threshold": self.ood_threshold,
        }
        return {KEY_PREFIX + k: json.dumps(v) for k, v in plain.items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], source: str) -> "ModelContract":
        """Parse and validate ``metadata_props``; every problem names its key and ``source``."""
        if not any(k.startswith(KEY_PREFIX) for k in props):
            raise ContractError(
                source, None, "carries no Planet Terrain contract (no 'planet_terrain.*' metadata).",
                "Export it with `make export` (export/to_onnx.py) or pick a model made for this plugin.")
        reader = _KeyReader(props, source)
        version = reader.get("schema_version", int)
        if version > SCHEMA_VERSION:
            raise ContractError(source, "schema_version",
                                f"is {version}, newer than this plugin understands ({SCHEMA_VERSION}).",
                                "Update the Planet Terrain plugin.")
        if version < 1:
            raise ContractError(source, "schema_version", f"is {version}, which no plugin version wrote.")
        metrics = reader.get("metrics", dict)
        variant = _variant_v1(metrics) if version == 1 else _parse_variant(reader.get("variant", dict), source)
        classes = tuple(_parse_class(item, source) for item in reader.get("classes", list))
        fields = dict(
            model_name=reader.get("model_name", str),
            model_version=reader.get("model_version", str),
            classes=classes,
            input_size=reader.get("input_size", int),
            channel_mode=reader.get("channel_mode", str),
            mean=_floats(reader, "mean", 3),
            std=_floats(reader, "std", 3),
            stretch_percentiles=_floats(reader, "stretch_percentiles", 2),
            min_valid_fraction=reader.get("min_valid_fraction", float),
            temperature=reader.get("temperature", float),
            threshold=reader.get("threshold", float),
            bodies=tuple(reader.get("bodies", list)),
            gsd_range_m=_floats(reader, "gsd_range_m", 2),
            variant=variant,
            metrics={k: v for k, v in metrics.items() if k not in _V1_VARIANT_KEYS} if version == 1 else metrics,
            schema_version=version,
            **_output_fields(reader),
        )
        try:
            return cls(**fields)
        except ContractError as exc:  # validation ran with source "<in memory>": name the real file
            raise ContractError(source, exc.key, exc.problem, "Re-export the model with `make export`.") from None


class _KeyReader:
    """Reads one JSON-encoded key, raising a :class:`ContractError` that names it when missing or mistyped."""

    def __init__(self, props: Mapping[str, str], source: str) -> None:
        self.props, self.source = props, source

    def get(self, key: str, kind: type) -> Any:
        full = KEY_PREFIX + key
        if full not in self.props:
            raise ContractError(self.source, key, "is missing.", "Re-export the model with `make export`.")
        try:
            value = json.loads(self.props[full])
        except (TypeError, json.JSONDecodeError) as exc:
            raise ContractError(self.source, key, f"is not valid JSON ({exc}).") from None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise ContractError(self.source, key, f"should be {kind.__name__}, got {type(value).__name__}.")
        return value


#: Keys a file may leave out: without them the network has logits only (schema 1, early schema 2).
OPTIONAL_KEYS = ("outputs", "ood_threshold")


def _output_fields(reader: _KeyReader) -> dict[str, Any]:
    """``outputs`` and ``ood_threshold`` (:data:`OPTIONAL_KEYS`)."""
    if KEY_PREFIX + "outputs" not in reader.props:
        return {}
    threshold = reader.get("ood_threshold", object)
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise ContractError(reader.source, "ood_threshold", f"should be a number or null, got {threshold!r}.")
    return {"outputs": tuple(str(o) for o in reader.get("outputs", list)),
            "ood_threshold": None if threshold is None else float(threshold)}


def _floats(reader: _KeyReader, key: str, n: int) -> tuple[float, ...]:
    values = reader.get(key, list)
    if len(values) != n or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ContractError(reader.source, key, f"should be a list of {n} numbers, got {values!r}.")
    return tuple(float(v) for v in values)


def _parse_variant(item: dict, source: str) -> VariantInfo:
    names = {f.name for f in dataclasses.fields(VariantInfo)}
    if set(item) != names:
        raise ContractError(source, "variant", f"should have exactly the keys {sorted(names)}, got {sorted(item)}.",
                            "Re-export the model with `make export`.")
    figures = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
               for k, v in item.items() if k != "name"}
    return VariantInfo(name=item["name"], **figures)


#: Where schema 1 kept the variant facts: free-form ``metrics`` entries, by :class:`VariantInfo` field.
_V1_VARIANT_KEYS = {"variant": "name", **{name: name for name in VARIANT_FIGURES}}


def _variant_v1(metrics: Mapping[str, Any]) -> VariantInfo:
    """The variant of a schema-1 file, from its ``metrics``. Those were never validated, so a value of the wrong
    kind reads as not recorded (None), which the plugin treats as "no evidence": int8 is then not the default."""
    values = {field: metrics.get(key) for key, field in _V1_VARIANT_KEYS.items()}
    name = values.pop("name")
    figures = {k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None
               for k, v in values.items()}
    info = VariantInfo(name if name in VARIANT_NAMES else None, **figures)
    return info if info.problem() is None else VariantInfo(info.name)


def _parse_class(item: Any, source: str) -> TerrainClass:
    try:
        return TerrainClass(int(item["id"]), str(item["name"]), tuple(str(b) for b in item["bodies"]))
    except (TypeError, KeyError, ValueError):
        raise ContractError(source, "classes", f"entry {item!r} needs 'id', 'name' and 'bodies'.") from None


def check_model_file(path: str) -> None:
    """Raise :class:`ContractError` when ``path`` cannot be a model file at all: a folder, missing, or empty."""
    import os

    if os.path.isdir(path):
        onnx = sorted(name for name in os.listdir(path) if name.lower().endswith(".onnx"))
        holds = f": it holds {', '.join(onnx)}." if onnx else ", and it holds none."
        raise ContractError(path, None, f"is a folder, not a model file; an .onnx file inside it is expected{holds}",
                            "Give the path of the .onnx file itself.")
    if not os.path.isfile(path):
        raise ContractError(path, None, "does not exist.", "Check the path or install a model (see README).")
    if os.path.getsize(path) == 0:
        raise ContractError(path, None, "is an empty file.", "Re-download or re-export the model.")


def read_contract(path: str) -> ModelContract:
    """Read the contract embedded in an ONNX file, through a CPU session (:func:`session.open_session`)."""
    check_model_file(path)
    from .session import open_session  # an ImportError that says how to install onnxruntime

    return contract_of_session(open_session(path), path)


def contract_of_session(session: Any, path: str) -> ModelContract:
    """The contract of the model an onnxruntime ``session`` has open (read from ``path``)."""
    return ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map, path)
