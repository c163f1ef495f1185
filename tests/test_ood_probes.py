"""The OOD probe set through the shipped models and the plugin's own path: the raster-kind check for probes built
from a file, then preprocess -> session -> decide, and the out-of-scale rule (training/ood_probes.py:
``probe_reason``).

Every probe carries the reason a correct plugin gives; the share given with exactly that reason is the model
card's "OOD probe set" table. The held-out probes (added after the checks were tuned) are reported apart, with
their own floor. A change that makes the plugin label more probes, or give them another reason, fails here.
"""
from __future__ import annotations

from collections import Counter

import pytest

from paths import RASTERS
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.calibrate import Reason
from planet_terrain_plugin.core.contract import read_contract
from planet_terrain_plugin.core.models import installed_variants
from planet_terrain_plugin.core.session import load_model
from training.ood_probes import all_probes, probe_reason

#: The model card's measurement, per shipped variant: at least this share of the tuned probes, and of the
#: held-out ones, gets its expected reason. (int8 labels the four colour "photos" `dark dune`: 44 of 48.)
MINIMA = {"fp16": (0.95, 0.55), "int8": (0.90, 0.55)}
#: Probe families whose every member the plugin answers with the expected reason, whatever the variant.
ALWAYS_RIGHT = ("uniform", "noise", "gradient", "pattern", "Vesta DTM (elevation, not an image)",
                "colour-shaded DTM (paletted product)", "LOLA shaded relief (3.9 km/px)",
                "WAC/GLD100 global map (a shape model, 12.8 km/px)", "Dawn VIR camera image (163 m/px, off scale)")


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    return all_probes(RASTERS, tmp_path_factory.mktemp("probes"), held_out=True)


@pytest.fixture(scope="module", params=sorted(set(MINIMA) & set(installed_variants())))
def answers(request, probes):
    session_mod.clear_cache()
    model = load_model(str(installed_variants()[request.param]))
    return request.param, [(p, probe_reason(model, p)) for p in probes]


def test_probe_set_gets_the_right_reason(answers):
    variant, answers = answers
    for held_out, floor in zip((False, True), MINIMA[variant]):
        part = [(p, r) for p, r in answers if p.held_out is held_out]
        right = sum(r is p.expected for p, r in part)
        wrong = Counter((p.family, r.value or "labelled") for p, r in part if r is not p.expected)
        assert right / len(part) >= floor, (held_out, wrong)


def test_each_file_quotes_its_own_probe_result(answers):
    """The share in a file's contract (``make ood``, ``make mirror-views``, ``make int8``) is the one measured here
    for that very file: the int8 file must not quote the fp16 file's result."""
    variant, answers = answers
    tuned = [(p, r) for p, r in answers if not p.held_out]
    quoted = read_contract(str(installed_variants()[variant])).metrics["ood_probes_right_reason"]
    assert quoted == round(sum(r is p.expected for p, r in tuned) / len(tuned), 4)


def test_families_that_are_always_answered_right(answers):
    _, answers = answers
    families = {p.family for p, _ in answers}
    assert set(ALWAYS_RIGHT) <= families
    for p, r in answers:
        if p.family in ALWAYS_RIGHT:
            assert r is p.expected, (p.name, r)


def test_every_probe_from_a_file_keeps_it_and_no_reason_is_low_confidence_for_noise(answers):
    _, answers = answers
    assert all(p.source for p, _ in answers if p.expected is Reason.NOT_AN_IMAGE)
    assert not [p.name for p, r in answers if p.family == "noise" and r is Reason.LOW_CONFIDENCE]


def test_make_oods_probe_table_is_the_plugins_answer(answers, tmp_path):
    """``make ood`` reports the probe set through the same path (``training.ood.probe_table``), so its table is
    the card's and this test's, not a logits-only shortcut that skips the raster-kind and input checks."""
    import shutil

    from planet_terrain_plugin.core.contract import read_contract
    from training.ood import probe_table

    variant, answers = answers
    src = installed_variants()[variant]
    shutil.copy(src, tmp_path / "model.onnx")
    tuned = [p for p, _ in answers if not p.held_out]
    table = probe_table(tuned, tmp_path / "model.onnx", read_contract(str(src)))
    assert sorted(f.name for f in tmp_path.iterdir()) == ["model.onnx"]  # nothing left beside the model it measured
    expected = Counter()
    for p, r in answers:
        if not p.held_out:
            expected[(p.family, r.value or "labelled")] += 1
    assert {(fam, k): n for fam, f in table.items() for k, n in f["reasons"].items()} == dict(expected)
    assert sum(f["right_reason"] for f in table.values()) == sum(r is p.expected for p, r in answers if not p.held_out)
