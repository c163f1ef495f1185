"""The OOD probe set through the shipped model and the plugin's own path (preprocess -> session -> decide).

Built at test time (training/ood_probes.py): synthetic images and crops of shared rasters that are not
HiRISE-like images. The figures asserted are the model card's "Out-of-distribution" table; a change that makes
the shipped model label more of them fails here.
"""
from __future__ import annotations

from collections import Counter

import pytest

from paths import RASTERS
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.calibrate import Reason
from planet_terrain_plugin.core.models import installed_variants
from planet_terrain_plugin.core.pipeline import classify_blocks
from planet_terrain_plugin.core.session import load_model
from training.ood_probes import all_probes

#: The model card's measurement (training/ood.py; int8: `make int8`'s file), per shipped variant: at least this
#: share abstained, and as out_of_distribution.
MINIMA = {"fp16": (0.95, 0.35), "int8": (0.90, 0.35)}
#: Probe families whose every member the OOD score itself flags (not the softmax threshold).
OOD_FAMILIES = ("uniform", "gradient", "pattern")


@pytest.fixture(scope="module", params=sorted(set(MINIMA) & set(installed_variants())))
def decisions(request):
    session_mod.clear_cache()
    model = load_model(str(installed_variants()[request.param]))
    probes = all_probes(RASTERS)
    out = []
    for p in probes:
        (res,) = classify_blocks(model, [p.block], [p.mask], body=p.body)
        out.append((p, res.decision))
    return request.param, out


def test_probe_set_is_abstained_on(decisions):
    variant, decisions = decisions
    min_abstained, min_ood = MINIMA[variant]
    n = len(decisions)
    abstained = sum(d.abstained for _, d in decisions)
    ood = sum(d.reason is Reason.OUT_OF_DISTRIBUTION for _, d in decisions)
    labelled = [(p.name, d.label, round(d.confidence, 2)) for p, d in decisions if not d.abstained]
    assert abstained / n >= min_abstained, f"labelled: {labelled}"
    assert ood / n >= min_ood, Counter(d.reason.value for _, d in decisions)
    assert all(d.reason in (Reason.OUT_OF_DISTRIBUTION, Reason.LOW_CONFIDENCE) for _, d in decisions if d.abstained)


def test_synthetic_images_are_out_of_distribution_even_when_confident(decisions):
    _, decisions = decisions
    for p, d in decisions:
        if p.family in OOD_FAMILIES:
            assert d.reason is Reason.OUT_OF_DISTRIBUTION, (p.name, d)
            assert d.ood_score is not None
    confident = [d for p, d in decisions if p.family == "gradient" and d.confidence > 0.9]
    assert confident, "the softmax alone would have labelled a gradient: the OOD score is what stops it"
