"""Re-label an existing result layer at a new threshold, from its stored probabilities.

Every result feature stores the calibrated (and body-renormalised) probability vector in its ``p_<class>``
fields, so moving the threshold needs no model run: abstention is recomputed by the same core function a fresh
run uses (:func:`core.calibrate.decide_from_probs`), which is why the result equals a fresh run at that threshold.
The edit is one undoable edit-buffer change on the layer, committed only when the layer was not already being
edited by the user.
"""
from __future__ import annotations

import numpy as np
from qgis.core import QgsVectorLayer

from ..core.calibrate import decide_from_probs
from ..core.contract import ModelContract


def prob_field_names(contract: ModelContract) -> list[str]:
    return [c.field_name for c in contract.classes]


def relabel_layer(layer: QgsVectorLayer, contract: ModelContract, threshold: float) -> dict[str, int]:
    """Recompute label, class_id, abstained (and keep confidence) for every feature; returns counts per label."""
    names = prob_field_names(contract)
    fields = layer.fields()
    missing = [n for n in names + ["label", "class_id", "abstained"] if fields.indexOf(n) < 0]
    if missing:
        raise ValueError(f"layer '{layer.name()}' is not a Planet Terrain result layer (missing fields {missing})")
    idx_label, idx_id, idx_abst = (fields.indexOf(n) for n in ("label", "class_id", "abstained"))
    prob_idx = [fields.indexOf(n) for n in names]
    features = list(layer.getFeatures())
    if not features:
        return {}
    probs = np.array([[f.attribute(i) for i in prob_idx] for f in features], dtype=np.float64)
    decisions = decide_from_probs(probs, contract, threshold)
    abst_type_is_bool = fields.at(idx_abst).typeName().lower().startswith("bool")
    was_editing = layer.isEditable()
    if not was_editing and not layer.startEditing():
        raise RuntimeError(f"layer '{layer.name()}' cannot be edited (read-only source?)")
    counts: dict[str, int] = {}
    layer.beginEditCommand(f"Re-label at threshold {threshold:.2f}")
    for feature, d in zip(features, decisions):
        layer.changeAttributeValues(feature.id(), {
            idx_label: d.label, idx_id: d.class_id,
            idx_abst: d.abstained if abst_type_is_bool else int(d.abstained)})
        counts[d.label] = counts.get(d.label, 0) + 1
    layer.endEditCommand()
    if not was_editing and not layer.commitChanges():
        errors = "; ".join(layer.commitErrors())
        layer.rollBack()
        raise RuntimeError(f"could not save the new labels in '{layer.name()}': {errors}")
    layer.triggerRepaint()
    return counts
