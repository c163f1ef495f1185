"""Re-label an existing result layer at a new threshold, from its stored probabilities.

Every result feature stores the calibrated (and body-renormalised) probability vector in its ``p_<class>``
fields, so moving the threshold needs no model run: abstention is recomputed by the same core function a fresh
run uses (:func:`core.calibrate.decide_from_probs`), which is why the result equals a fresh run at that threshold.
The edit is one undoable edit-buffer change on the layer, committed only when the layer was not already being
edited by the user. Only features whose label actually changes are touched, so sliding the threshold over a
large grid costs a read of the probabilities and a few edits. A feature a person reviewed (``reviewed`` true,
``qgis_io.review``) keeps its label at every threshold: their verdict outranks the model's.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
from qgis.core import QgsFeatureRequest, QgsVectorLayer
from qgis.PyQt.QtCore import QVariant

from ..core.calibrate import THRESHOLD_REASONS, Reason, at_scale, decide_from_probs
from ..core.contract import PROBABILITY_PREFIX, ModelContract
from ..core.result_schema import GSD_FIELD, OOD_SCORE_FIELD
from .fields import (ABSTAINED_FIELD, CLASS_ID_FIELD, LABEL_FIELD, REASON_FIELD, REVIEWED_FIELD, gsd_factor,
                     is_reviewed, probability_field_names)


class RelabelError(ValueError):
    """The layer cannot be re-labelled with this contract (not a result layer, or another model's classes)."""


def is_result_layer(layer, contract: ModelContract) -> bool:
    """True when ``layer`` has the label fields and exactly ``contract``'s probability fields."""
    if not isinstance(layer, QgsVectorLayer) or not layer.isValid():
        return False
    names = set(layer.fields().names())
    wanted = set(probability_field_names(contract)) | {LABEL_FIELD, CLASS_ID_FIELD, ABSTAINED_FIELD}
    others = {n for n in names if n.startswith(PROBABILITY_PREFIX)} - set(probability_field_names(contract))
    return wanted <= names and not others


def label_counts(layer: QgsVectorLayer) -> dict[str, int]:
    """Features per ``label`` value (no geometry read); NULL labels count as ``''``."""
    return value_counts(layer, LABEL_FIELD)


def value_counts(layer: QgsVectorLayer, name: str) -> dict[str, int]:
    """Features per value of the field ``name`` (no geometry read); NULL counts as ``''``."""
    index = layer.fields().indexOf(name)
    if index < 0:
        raise RelabelError(f"layer '{layer.name()}' has no '{name}' field")
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes([index])
    counts: Counter[str] = Counter()
    for feature in layer.getFeatures(request):
        value = feature.attribute(index)
        counts["" if value is None or value == QVariant() else str(value)] += 1
    return dict(counts)


def _number(value) -> float:
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _fixed_reason(stored, ood_score: float, contract: ModelContract) -> Reason:
    """The stored reason when no threshold can change it (out of distribution, ...), else ``Reason.NONE``.

    ``out_of_scale`` stands for either cause of an abstention on coarse pixels: it is fixed when the stored
    ``ood_score`` is above the model's limit (an out-of-distribution cell), and follows the threshold otherwise,
    as a fresh run's would."""
    try:
        reason = Reason(str(stored)) if stored not in (None, QVariant()) else Reason.NONE
    except ValueError:
        return Reason.NONE
    if reason is Reason.OUT_OF_SCALE:
        unfamiliar = contract.ood_threshold is not None and ood_score > contract.ood_threshold  # NaN: False
        return Reason.OUT_OF_DISTRIBUTION if unfamiliar else Reason.NONE
    return Reason.NONE if reason in THRESHOLD_REASONS else reason


def relabel_layer(layer: QgsVectorLayer, contract: ModelContract, threshold: float) -> dict[str, int]:
    """Recompute label, class_id and abstained (confidence is unchanged) for every feature at ``threshold``.

    Returns the feature count per label after the change. Reviewed features, and features without a complete
    probability vector (NULLs, e.g. edited by hand), are left as they are and counted under their current label.
    """
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if not is_result_layer(layer, contract):
        raise RelabelError(f"layer '{layer.name() if layer is not None else None}' is not a Planet Terrain result "
                           f"layer of the model '{contract.model_name}' (its fields do not match the model's "
                           "classes); re-labelling needs the probabilities that model stored")
    fields = layer.fields()
    idx_label, idx_id, idx_abst = (fields.indexOf(n) for n in (LABEL_FIELD, CLASS_ID_FIELD, ABSTAINED_FIELD))
    idx_reason = fields.indexOf(REASON_FIELD)  # -1 in layers made before reasons were stored
    idx_ood, idx_gsd = fields.indexOf(OOD_SCORE_FIELD), fields.indexOf(GSD_FIELD)
    prob_idx = [fields.indexOf(n) for n in probability_field_names(contract)]
    idx_reviewed = fields.indexOf(REVIEWED_FIELD)  # -1 in layers written before reviews existed
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes(
        prob_idx + [i for i in (idx_label, idx_id, idx_abst, idx_reason, idx_reviewed, idx_ood, idx_gsd) if i >= 0])
    ids, rows, current, fixed, scales = [], [], [], [], []
    for feature in layer.getFeatures(request):
        ids.append(feature.id())
        reviewed = idx_reviewed >= 0 and is_reviewed(feature.attribute(idx_reviewed))
        rows.append([math.nan] * len(prob_idx) if reviewed else [_number(feature.attribute(i)) for i in prob_idx])
        current.append((feature.attribute(idx_label), feature.attribute(idx_id), feature.attribute(idx_abst),
                        feature.attribute(idx_reason) if idx_reason >= 0 else None))
        ood = _number(feature.attribute(idx_ood)) if idx_ood >= 0 else math.nan
        fixed.append(_fixed_reason(feature.attribute(idx_reason) if idx_reason >= 0 else None, ood, contract))
        gsd = _number(feature.attribute(idx_gsd)) if idx_gsd >= 0 else math.nan
        scales.append(gsd_factor(gsd, contract.gsd_range_m))
    if not ids:
        return {}
    probs = np.array(rows, dtype=np.float64)
    complete = np.isfinite(probs).all(axis=1)
    kept = [why for why, ok in zip(fixed, complete) if ok]
    decisions = iter(decide_from_probs(probs[complete], contract, threshold, fixed=kept)) if complete.any() \
        else iter(())
    abst_is_bool = fields.at(idx_abst).type() == QVariant.Bool
    counts: Counter[str] = Counter()
    changes: dict[int, dict[int, object]] = {}
    for fid, ok, (label, class_id, abstained, reason), factor in zip(ids, complete, current, scales):
        if not ok:
            counts["" if label is None or label == QVariant() else str(label)] += 1
            continue
        d = at_scale(next(decisions), factor)
        counts[d.label] += 1
        new_abst = d.abstained if abst_is_bool else int(d.abstained)
        if label != d.label or _number(class_id) != d.class_id or abstained in (None, QVariant()) \
                or bool(abstained) != d.abstained or (idx_reason >= 0 and (reason or "") != d.reason.value):
            changes[fid] = {idx_label: d.label, idx_id: d.class_id, idx_abst: new_abst}
            if idx_reason >= 0:
                changes[fid][idx_reason] = d.reason.value
    if changes:
        apply_changes(layer, changes, f"Re-label at threshold {threshold:.3f}")
    return dict(counts)


def apply_changes(layer: QgsVectorLayer, changes: dict[int, dict[int, object]], command: str) -> None:
    """Attribute ``changes`` (feature id -> field index -> value) as one undoable edit named ``command``,
    committed unless the user was already editing the layer."""
    was_editing = layer.isEditable()
    if not was_editing and not layer.startEditing():
        raise RelabelError(f"layer '{layer.name()}' cannot be edited (read-only source?)")
    layer.beginEditCommand(command)
    ok = all(layer.changeAttributeValues(fid, values) for fid, values in changes.items())
    if not ok:
        layer.destroyEditCommand()
        if not was_editing:
            layer.rollBack()
        raise RelabelError(f"could not change the labels in '{layer.name()}'")
    layer.endEditCommand()
    if not was_editing and not layer.commitChanges():
        errors = "; ".join(layer.commitErrors())
        layer.rollBack()
        raise RelabelError(f"could not save the new labels in '{layer.name()}': {errors}")
    layer.triggerRepaint()
