"""The attribute schema of classified extents: one definition, used by the result layer, Processing and export.

Real types, not strings: confidences and ``p_<class>`` probabilities are doubles (so users can filter
``confidence > 0.8``), flags are booleans, and there is one probability field per class of the *model's*
contract (``TerrainClass.field_name``), so a model with other classes gets other fields automatically.
"""
from __future__ import annotations

from qgis.core import QgsFeature, QgsField, QgsFields, QgsGeometry, QgsRectangle
from qgis.PyQt.QtCore import QVariant

from ..core import result_schema
from ..core.calibrate import Decision
from ..core.contract import ModelContract
# The schema itself is defined once, Qt-free, in core.result_schema (the batch command writes the same fields);
# these names are re-exported for the QGIS side.
from ..core.result_schema import (ABSTAINED_FIELD, CLASS_ID_FIELD, COL_FIELD, CONFIDENCE_FIELD,  # noqa: F401
                                  GSD_SLACK, LABEL_FIELD, OOD_SCORE_FIELD, REASON_FIELD, REVIEWED_BY_FIELD,
                                  REVIEWED_FIELD, REVIEWED_LABEL_FIELD, REVIEWED_UTC_FIELD, ROW_FIELD,
                                  SCALE_FACTOR_FIELD, Provenance,
                                  decision_values, gsd_factor, gsd_warning, probability_field_names, utc_now)

#: QVariant type of each kind of field in core.result_schema.
QVARIANT_TYPES: dict[str, QVariant.Type] = {"string": QVariant.String, "int": QVariant.Int,
                                           "double": QVariant.Double, "bool": QVariant.Bool}


def _typed(fields: tuple[tuple[str, str], ...]) -> tuple[tuple[str, QVariant.Type], ...]:
    return tuple((name, QVARIANT_TYPES[kind]) for name, kind in fields)


#: Fields before the per-class probabilities.
HEAD_FIELDS: tuple[tuple[str, QVariant.Type], ...] = _typed(result_schema.HEAD_FIELDS)
#: Fields after the per-class probabilities: provenance of the decision.
TAIL_FIELDS: tuple[tuple[str, QVariant.Type], ...] = _typed(result_schema.TAIL_FIELDS)
#: Fields a grid run adds after :func:`result_fields`: the cell's row (0 = top) and column in its row.
GRID_FIELDS: tuple[tuple[str, QVariant.Type], ...] = _typed(result_schema.GRID_FIELDS)
#: The review fields (part of TAIL_FIELDS), which a layer written before reviews existed lacks.
REVIEW_FIELDS: tuple[tuple[str, QVariant.Type], ...] = _typed(result_schema.REVIEW_FIELDS)


def is_reviewed(value) -> bool:
    """A ``reviewed`` value as any format reads it back (a bool, 0/1 from a Shapefile, NULL) as a bool."""
    return value is not None and not (isinstance(value, QVariant) and value.isNull()) and bool(value)


def result_fields(contract: ModelContract) -> QgsFields:
    """The typed fields of a result layer for ``contract``'s classes."""
    fields = QgsFields()
    for name, kind in result_schema.result_field_kinds(contract):
        fields.append(QgsField(name, QVARIANT_TYPES[kind]))
    return fields


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
