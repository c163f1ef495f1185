"""The attribute schema of classified extents: one definition, used by the result layer, Processing and export.

Real types, not strings: confidences and ``p_<class>`` probabilities are doubles (so users can filter
``confidence > 0.8``), flags are booleans, and there is one probability field per class of the *model's*
contract (``TerrainClass.field_name``), so a model with other classes gets other fields automatically.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass

from qgis.core import QgsFeature, QgsField, QgsFields, QgsGeometry, QgsRectangle
from qgis.PyQt.QtCore import QVariant

from ..core.calibrate import Decision
from ..core.contract import ModelContract

#: The decision's fields, by what they hold; filters, re-labelling and styling use these names.
LABEL_FIELD, CLASS_ID_FIELD, CONFIDENCE_FIELD, ABSTAINED_FIELD = "label", "class_id", "confidence", "abstained"
#: Fields before the per-class probabilities.
HEAD_FIELDS: tuple[tuple[str, QVariant.Type], ...] = (
    (LABEL_FIELD, QVariant.String),
    (CLASS_ID_FIELD, QVariant.Int),
    (CONFIDENCE_FIELD, QVariant.Double),
    (ABSTAINED_FIELD, QVariant.Bool),
)
#: A person's verdict on a cell (``qgis_io.review``): re-labelling, styling and exports keep it.
REVIEWED_LABEL_FIELD, REVIEWED_FIELD = "reviewed_label", "reviewed"
REVIEWED_BY_FIELD, REVIEWED_UTC_FIELD = "reviewed_by", "reviewed_utc"
REVIEW_FIELDS: tuple[tuple[str, QVariant.Type], ...] = (
    (REVIEWED_LABEL_FIELD, QVariant.String),
    (REVIEWED_FIELD, QVariant.Bool),
    (REVIEWED_BY_FIELD, QVariant.String),
    (REVIEWED_UTC_FIELD, QVariant.String),
)
#: Fields after the per-class probabilities: provenance of the decision, then the review.
TAIL_FIELDS: tuple[tuple[str, QVariant.Type], ...] = (
    ("body", QVariant.String),
    ("body_renorm", QVariant.Bool),
    ("gsd_m", QVariant.Double),
    ("gsd_warn", QVariant.Bool),
    ("source_layer", QVariant.String),
    ("model", QVariant.String),
    ("model_version", QVariant.String),
    ("provider", QVariant.String),
    ("created_utc", QVariant.String),
) + REVIEW_FIELDS
#: Fields a grid run adds after :func:`result_fields`: the cell's row (0 = top) and column in its row.
ROW_FIELD, COL_FIELD = "row", "col"
GRID_FIELDS: tuple[tuple[str, QVariant.Type], ...] = ((ROW_FIELD, QVariant.Int), (COL_FIELD, QVariant.Int))


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


def is_reviewed(value) -> bool:
    """A ``reviewed`` value as any format reads it back (a bool, 0/1 from a Shapefile, NULL) as a bool."""
    return value is not None and not (isinstance(value, QVariant) and value.isNull()) and bool(value)


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


def result_fields(contract: ModelContract) -> QgsFields:
    """The typed fields of a result layer for ``contract``'s classes."""
    fields = QgsFields()
    for name, kind in HEAD_FIELDS:
        fields.append(QgsField(name, kind))
    for name in probability_field_names(contract):
        fields.append(QgsField(name, QVariant.Double))
    for name, kind in TAIL_FIELDS:
        fields.append(QgsField(name, kind))
    return fields


def decision_values(decision: Decision, contract: ModelContract, provenance: Provenance) -> dict[str, object]:
    """Attribute values by field name for one decision."""
    values: dict[str, object] = {
        LABEL_FIELD: decision.label,
        CLASS_ID_FIELD: int(decision.class_id),
        CONFIDENCE_FIELD: float(decision.confidence),
        ABSTAINED_FIELD: bool(decision.abstained),
        REVIEWED_FIELD: False,
        "body_renorm": bool(decision.body_renormalised),
    }
    values.update(zip(probability_field_names(contract), (float(p) for p in decision.probs)))
    values.update(body=provenance.body, gsd_m=float(provenance.gsd_m),
                  gsd_warn=gsd_warning(provenance.gsd_m, contract.gsd_range_m), source_layer=provenance.source_layer,
                  model=provenance.model, model_version=provenance.model_version, provider=provenance.provider,
                  created_utc=provenance.created_utc)
    return values


class FeatureMaker:
    """:func:`decision_feature` for the many features of one layer: its field order is worked out once.

    A grid writes thousands of features a second; a name lookup per field and feature was a measurable share
    of its time. Fields without a value stay NULL; a value without a field is an error.
    """

    def __init__(self, fields: QgsFields, contract: ModelContract) -> None:
        self.fields, self.contract = fields, contract
        self.index = {name: i for i, name in enumerate(fields.names())}

    def make(self, extent: QgsRectangle, decision: Decision, provenance: Provenance,
             extra: dict[str, object] | None = None) -> QgsFeature:
        values = decision_values(decision, self.contract, provenance)
        if extra:
            values.update(extra)
        attributes: list[object] = [None] * len(self.index)
        try:
            for name, value in values.items():
                attributes[self.index[name]] = value
        except KeyError as exc:
            raise KeyError(f"result layer has no field '{exc.args[0]}'") from None
        feature = QgsFeature(self.fields)
        feature.setGeometry(QgsGeometry.fromRect(extent))
        feature.setAttributes(attributes)
        return feature


def decision_feature(fields: QgsFields, extent: QgsRectangle, decision: Decision, contract: ModelContract,
                     provenance: Provenance, extra: dict[str, object] | None = None) -> QgsFeature:
    """A polygon feature covering ``extent`` with the decision's attributes (and ``extra`` ones) set on ``fields``."""
    return FeatureMaker(fields, contract).make(extent, decision, provenance, extra)
