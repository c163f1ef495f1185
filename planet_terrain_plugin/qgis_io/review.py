"""A person's review of result features: accept the model's label, or correct it, so that it sticks.

A review writes ``reviewed_label``, ``reviewed`` (true), ``reviewed_by`` and ``reviewed_utc``, and makes the
reviewed label *the* label (``label``, ``class_id``, ``abstained``), so filters, the legend, exports and the
training-data harvest all see the person's verdict. Re-labelling at another threshold skips reviewed features
(``relabel``), and the style outlines them (``style``). The model's own opinion stays in the ``p_<class>``
fields. A layer written before reviews existed gets the review fields added on its first review.
"""
from __future__ import annotations

import getpass
from collections import Counter
from typing import Iterable

from qgis.core import QgsFeatureRequest, QgsField, QgsVectorLayer
from qgis.PyQt.QtCore import QVariant

from ..core.contract import UNKNOWN_ID, UNKNOWN_LABEL, ModelContract
from .fields import (ABSTAINED_FIELD, CLASS_ID_FIELD, LABEL_FIELD, REASON_FIELD, REVIEW_FIELDS, REVIEWED_BY_FIELD,
                     REVIEWED_FIELD, REVIEWED_LABEL_FIELD, REVIEWED_UTC_FIELD, is_reviewed, utc_now)
from .relabel import RelabelError, apply_changes


class ReviewError(RelabelError):
    """The features cannot be reviewed (no label field, nothing selected, an empty label)."""


def reviewer_name() -> str:
    """Who reviews: the operating-system user (a project can be shared; the name says whose verdict it is)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return ""


def ensure_review_fields(layer: QgsVectorLayer) -> None:
    """Add the review fields a layer lacks (one written before reviews existed)."""
    missing = [QgsField(name, kind) for name, kind in REVIEW_FIELDS if layer.fields().indexOf(name) < 0]
    if not missing:
        return
    if not layer.dataProvider().addAttributes(missing):
        raise ReviewError(f"the layer '{layer.name()}' has no review fields and they cannot be added (read-only "
                          "source?); save it as a GeoPackage (Export) and review that")
    layer.updateFields()


def review_features(layer: QgsVectorLayer, feature_ids: Iterable[int], label: str | None = None,
                    contract: ModelContract | None = None, reviewer: str | None = None) -> int:
    """Mark features reviewed: ``label`` None accepts each one's current label, else it is the correction.

    ``contract``: the model's, to set ``class_id`` of a correction to one of its classes (a new class name gets
    no id). Returns how many features were reviewed; one undoable edit.
    """
    ids = list(feature_ids)
    if not ids:
        raise ReviewError("no feature is selected; select the cells to accept or correct first")
    if label is not None and not label.strip():
        raise ReviewError("the corrected label is empty; type or pick a class name")
    if layer.fields().indexOf(LABEL_FIELD) < 0:
        raise ReviewError(f"the layer '{layer.name()}' has no '{LABEL_FIELD}' field; review a Terrain classes layer")
    ensure_review_fields(layer)
    fields = layer.fields()
    idx = {name: fields.indexOf(name) for name in (LABEL_FIELD, CLASS_ID_FIELD, ABSTAINED_FIELD, REASON_FIELD,
                                                   REVIEWED_LABEL_FIELD, REVIEWED_FIELD, REVIEWED_BY_FIELD,
                                                   REVIEWED_UTC_FIELD)}
    ids_by_name = {c.name: c.id for c in contract.classes} if contract is not None else {}
    who, when = reviewer if reviewer is not None else reviewer_name(), utc_now()
    request = QgsFeatureRequest().setFilterFids(ids).setFlags(QgsFeatureRequest.NoGeometry)
    changes: dict[int, dict[int, object]] = {}
    for feature in layer.getFeatures(request):
        current = feature.attribute(idx[LABEL_FIELD])
        verdict = label.strip() if label is not None else ("" if current in (None, QVariant()) else str(current))
        values = {idx[REVIEWED_LABEL_FIELD]: verdict, idx[REVIEWED_FIELD]: True, idx[REVIEWED_BY_FIELD]: who,
                  idx[REVIEWED_UTC_FIELD]: when, idx[LABEL_FIELD]: verdict}
        if label is not None:
            if idx[CLASS_ID_FIELD] >= 0:
                values[idx[CLASS_ID_FIELD]] = UNKNOWN_ID if verdict == UNKNOWN_LABEL else ids_by_name.get(verdict)
            if idx[ABSTAINED_FIELD] >= 0:
                values[idx[ABSTAINED_FIELD]] = verdict == UNKNOWN_LABEL
            if idx[REASON_FIELD] >= 0 and verdict != UNKNOWN_LABEL:
                values[idx[REASON_FIELD]] = ""  # a label is given: no reason to abstain
        changes[feature.id()] = {k: v for k, v in values.items() if k >= 0}
    if changes:
        apply_changes(layer, changes, f"Review {len(changes)} feature(s)")
    return len(changes)


def reviewed_counts(layer: QgsVectorLayer) -> dict[str, int]:
    """Reviewed features per label (empty when the layer has no review fields)."""
    fields = layer.fields()
    i_label, i_reviewed = fields.indexOf(LABEL_FIELD), fields.indexOf(REVIEWED_FIELD)
    if i_label < 0 or i_reviewed < 0:
        return {}
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes([i_label, i_reviewed])
    counts: Counter[str] = Counter()
    for feature in layer.getFeatures(request):
        if is_reviewed(feature.attribute(i_reviewed)):
            counts[str(feature.attribute(i_label))] += 1
    return dict(counts)

