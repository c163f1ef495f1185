"""The attributes of a classified extent or grid cell: names, kinds and values, without Qt.

One definition for every writer of results: the QGIS layers (``qgis_io.fields`` turns the kinds into QVariant
types) and the batch command's GeoParquet and GeoPackage files (``core.batch``), so a cell has the same fields,
in the same order, whichever path classified it.

Kinds are plain words (``string``, ``int``, ``double``, ``bool``) that each writer maps to its own types.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass

from .calibrate import Decision, at_scale
from .contract import ModelContract

#: The decision's fields, by what they hold; filters, re-labelling and styling use these names.
LABEL_FIELD, CLASS_ID_FIELD, CONFIDENCE_FIELD, ABSTAINED_FIELD = "label", "class_id", "confidence", "abstained"
#: Why the label is what it is (``core.calibrate.Reason``: empty for a label, else why ``unknown``), and the
#: model's out-of-distribution score (NULL for a model without one).
REASON_FIELD, OOD_SCORE_FIELD = "reason", "ood_score"
#: Fields before the per-class probabilities.
HEAD_FIELDS: tuple[tuple[str, str], ...] = (
    (LABEL_FIELD, "string"),
    (CLASS_ID_FIELD, "int"),
    (CONFIDENCE_FIELD, "double"),
    (ABSTAINED_FIELD, "bool"),
    (REASON_FIELD, "string"),
    (OOD_SCORE_FIELD, "double"),
)
#: A person's verdict on a cell (``qgis_io.review``): re-labelling, styling and exports keep it.
REVIEWED_LABEL_FIELD, REVIEWED_FIELD = "reviewed_label", "reviewed"
REVIEWED_BY_FIELD, REVIEWED_UTC_FIELD = "reviewed_by", "reviewed_utc"
REVIEW_FIELDS: tuple[tuple[str, str], ...] = (
    (REVIEWED_LABEL_FIELD, "string"),
    (REVIEWED_FIELD, "bool"),
    (REVIEWED_BY_FIELD, "string"),
    (REVIEWED_UTC_FIELD, "string"),
)
#: How many times coarser (> 1) or finer (< 1) than the model's training range the classified pixels are
#: (:func:`gsd_factor`; NULL when their size is unknown): an abstention on coarser pixels is ``out_of_scale``.
SCALE_FACTOR_FIELD = "scale_factor"
#: The classified pixels' ground size in metres (re-labelling derives the scale factor from it).
GSD_FIELD = "gsd_m"
#: Fields after the per-class probabilities: provenance of the decision, then the review.
TAIL_FIELDS: tuple[tuple[str, str], ...] = (
    ("body", "string"),
    ("body_renorm", "bool"),
    (GSD_FIELD, "double"),
    ("gsd_warn", "bool"),
    (SCALE_FACTOR_FIELD, "double"),
    ("source_layer", "string"),
    ("model", "string"),
    ("model_version", "string"),
    ("provider", "string"),
    ("created_utc", "string"),
) + REVIEW_FIELDS
#: Fields a grid adds after those: the cell's row (0 = top) and its column within the row.
ROW_FIELD, COL_FIELD = "row", "col"
GRID_FIELDS: tuple[tuple[str, str], ...] = ((ROW_FIELD, "int"), (COL_FIELD, "int"))
#: Kind of the per-class probability fields.
PROBABILITY_KIND = "double"


@dataclass(frozen=True)
class Provenance:
    """Where a decision came from: the same for every feature of one run."""

    body: str
    gsd_m: float
    source_layer: str
    model: str
    model_version: str
    provider: str
    created_utc: str


def utc_now() -> str:
    """ISO 8601 UTC timestamp with seconds, e.g. ``2026-11-23T17:05:00Z``."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


#: Relative slack at the ends of the model's ground-sampling range (float noise in a pixel size is not "outside").
GSD_SLACK = 1e-6


def gsd_factor(gsd_m: float, gsd_range_m: tuple[float, float]) -> float:
    """How far a ground pixel size lies outside the model's trained range, as a ratio.

    1.0 inside the range; ``gsd / max`` (> 1) when coarser than the training images; ``gsd / min`` (< 1) when
    finer; NaN when the pixel size is unknown.
    """
    if gsd_m is None or not math.isfinite(gsd_m) or gsd_m <= 0:
        return float("nan")
    lo, hi = gsd_range_m
    if gsd_m > hi * (1 + GSD_SLACK):
        return gsd_m / hi
    if gsd_m < lo * (1 - GSD_SLACK):
        return gsd_m / lo
    return 1.0


def gsd_warning(gsd_m: float, gsd_range_m: tuple[float, float]) -> bool | None:
    """The ``gsd_warn`` flag: True when the pixels are outside the model's range, None when their size is unknown."""
    factor = gsd_factor(gsd_m, gsd_range_m)
    return None if not math.isfinite(factor) else factor != 1.0


def probability_field_names(contract: ModelContract) -> list[str]:
    """The ``p_<class>`` field names, in the contract's output order."""
    return [c.field_name for c in contract.classes]


def result_field_kinds(contract: ModelContract, grid: bool = False) -> list[tuple[str, str]]:
    """(name, kind) of every field of a result layer for ``contract``'s classes, in layer order."""
    fields = list(HEAD_FIELDS) + [(name, PROBABILITY_KIND) for name in probability_field_names(contract)]
    return fields + list(TAIL_FIELDS) + (list(GRID_FIELDS) if grid else [])


def decision_values(decision: Decision, contract: ModelContract, provenance: Provenance) -> dict[str, object]:
    """Attribute values by field name for one decision; an abstention on pixels coarser than the model's range
    says ``out_of_scale`` (``core.calibrate.at_scale``)."""
    factor = gsd_factor(provenance.gsd_m, contract.gsd_range_m)
    decision = at_scale(decision, factor)
    values: dict[str, object] = {
        LABEL_FIELD: decision.label,
        CLASS_ID_FIELD: int(decision.class_id),
        CONFIDENCE_FIELD: float(decision.confidence),
        ABSTAINED_FIELD: bool(decision.abstained),
        REASON_FIELD: decision.reason.value,
        OOD_SCORE_FIELD: (float(decision.ood_score) if decision.ood_score is not None
                          and math.isfinite(decision.ood_score) else None),
        REVIEWED_FIELD: False,
        "body_renorm": bool(decision.body_renormalised),
    }
    values.update(zip(probability_field_names(contract), (float(p) for p in decision.probs)))
    values.update(body=provenance.body, gsd_m=float(provenance.gsd_m),
                  gsd_warn=gsd_warning(provenance.gsd_m, contract.gsd_range_m), source_layer=provenance.source_layer,
                  model=provenance.model, model_version=provenance.model_version, provider=provenance.provider,
                  created_utc=provenance.created_utc)
    values[SCALE_FACTOR_FIELD] = factor if math.isfinite(factor) else None
    return values
