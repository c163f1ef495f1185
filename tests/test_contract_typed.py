"""The typed contract: the variant and its agreement with fp32 are contract fields under the one key prefix,
files of schema 1 (the shipped model among them) still load, and the plugin chooses int8 from the typed fields.
Also: one model loader that parses the file once, and field names and palette derived from the class list."""
from __future__ import annotations

import json

import onnx
import pytest

from model_factory import build_tiny_model, tiny_contract, write_model, write_valid_model
from planet_terrain_plugin.core import session as session_mod
from planet_terrain_plugin.core.contract import (HIRISE_LANDFORMS, KEY_PREFIX, PROBABILITY_PREFIX, SCHEMA_VERSION,
                                                 UNKNOWN_LABEL, ContractError, ModelContract, VariantInfo,
                                                 read_contract)
from planet_terrain_plugin.core.models import MODELS_DIR, default_model_path, variant_note, variant_path

INT8_OK = VariantInfo("int8", -0.002, 0.99)


def schema_1_metadata(contract: ModelContract, metrics: dict) -> dict[str, str]:
    """``contract`` as a schema-1 exporter wrote it: no ``variant`` key, the variant facts inside ``metrics``."""
    md = contract.to_metadata()
    del md[KEY_PREFIX + "variant"]
    md[KEY_PREFIX + "schema_version"] = "1"
    md[KEY_PREFIX + "metrics"] = json.dumps(metrics)
    return md


def test_the_variant_is_a_typed_key_of_its_own(tmp_path):
    path = write_valid_model(tmp_path / "m.int8.onnx", variant=INT8_OK, metrics={"macro_f1": 0.41})
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props[KEY_PREFIX + "variant"]) == {
        "name": "int8", "macro_f1_delta_vs_fp32": -0.002, "decision_agreement_vs_fp32": 0.99}
    assert json.loads(props[KEY_PREFIX + "metrics"]) == {"macro_f1": 0.41}, "the variant lives in one place"
    c = read_contract(str(path))
    assert c.variant == INT8_OK and c.schema_version == SCHEMA_VERSION == 2


def test_a_schema_1_file_loads_with_its_variant_taken_from_metrics(tmp_path):
    metrics = {"variant": "int8", "macro_f1": 0.41, "macro_f1_delta_vs_fp32": -0.002,
               "decision_agreement_vs_fp32": 0.99, "top1_agreement_vs_fp32": 0.9}
    path = write_model(tmp_path / "old.onnx", schema_1_metadata(tiny_contract(), metrics))
    c = read_contract(str(path))
    assert c.variant == INT8_OK and c.schema_version == 1
    assert dict(c.metrics) == {"macro_f1": 0.41, "top1_agreement_vs_fp32": 0.9}
    # written again (e.g. by a benchmark re-tagging it), it is a schema-2 file with the same facts
    again = ModelContract.from_metadata(c.to_metadata(), "again")
    assert again.variant == c.variant and again.schema_version == 2


@pytest.mark.parametrize("metrics, expected", [
    ({}, VariantInfo(None)),                                                   # never recorded
    ({"variant": "int4", "macro_f1_delta_vs_fp32": "n/a"}, VariantInfo(None)),  # unknown name, not a number
    ({"variant": "int8", "macro_f1_delta_vs_fp32": -0.001, "decision_agreement_vs_fp32": 7},
     VariantInfo("int8")),                                                     # out of range: no evidence
])
def test_schema_1_variant_facts_that_do_not_parse_read_as_not_recorded(tmp_path, metrics, expected):
    path = write_model(tmp_path / "old.onnx", schema_1_metadata(tiny_contract(), metrics))
    assert read_contract(str(path)).variant == expected


def test_the_shipped_model_still_loads_untouched():
    shipped = sorted(MODELS_DIR.glob("*.onnx"))
    if not shipped:
        pytest.skip("no model is shipped in the plugin folder")
    before = [(p, p.stat().st_mtime_ns, p.stat().st_size) for p in shipped]
    for path in shipped:
        c = read_contract(str(path))
        assert c.variant.name == path.name.split(".")[-2] and c.variant.decision_agreement_vs_fp32 is not None
        assert "variant" not in c.metrics and "macro_f1" in c.metrics
    assert before == [(p, p.stat().st_mtime_ns, p.stat().st_size) for p in shipped]


@pytest.mark.parametrize("int8_metrics, expected", [
    ({"variant": "int8", "macro_f1_delta_vs_fp32": -0.002, "decision_agreement_vs_fp32": 0.99}, "int8"),
    ({"variant": "int8", "macro_f1_delta_vs_fp32": "-0.002", "decision_agreement_vs_fp32": 0.99}, "fp16"),
    ({"variant": "int8"}, "fp16"),
])
def test_cpu_default_from_schema_1_files(tmp_path, int8_metrics, expected):
    """The int8 choice reads the typed fields, which a schema-1 file fills from its metrics."""
    write_model(variant_path("int8", tmp_path), schema_1_metadata(tiny_contract(), int8_metrics))
    write_model(variant_path("fp16", tmp_path), schema_1_metadata(tiny_contract(), {"variant": "fp16"}))
    assert default_model_path("CPUExecutionProvider", tmp_path) == variant_path(expected, tmp_path)


@pytest.mark.parametrize("value, words", [
    (None, "is missing"),
    ('{"name": "int4", "macro_f1_delta_vs_fp32": null, "decision_agreement_vs_fp32": null}', "variant 'int4'"),
    ('{"name": "int8", "macro_f1_delta_vs_fp32": -0.001, "decision_agreement_vs_fp32": 1.5}',
     "decision_agreement_vs_fp32 1.5"),
    ('{"name": "int8", "macro_f1_delta_vs_fp32": "-0.001", "decision_agreement_vs_fp32": 0.99}',
     "macro_f1_delta_vs_fp32 '-0.001'"),
    ('{"name": "int8"}', "should have exactly the keys"),
    ('"int8"', "should be dict"),
])
def test_a_schema_2_file_with_a_bad_variant_names_the_key(tmp_path, value, words):
    md = tiny_contract().to_metadata()
    if value is None:
        del md[KEY_PREFIX + "variant"]
    else:
        md[KEY_PREFIX + "variant"] = value
    path = write_model(tmp_path / "bad_variant.onnx", md)
    with pytest.raises(ContractError) as info:
        read_contract(str(path))
    msg = str(info.value)
    assert f"'{KEY_PREFIX}variant'" in msg and str(path) in msg and words in msg
    if value != '"int8"':
        assert "Re-export the model with `make export`" in msg


def test_variant_note_reads_the_typed_fields():
    c = tiny_contract(variant=VariantInfo(None), metrics={"macro_f1": 0.5})
    assert variant_note(c) == "unknown variant, test macro-F1 0.500"


def test_export_writes_the_typed_variant_and_only_its_own_keys(tmp_path):
    from export.common import set_contract, variant_contract

    scores = {"macro_f1": 0.41, "macro_f1_delta_vs_fp32": -0.002, "decision_agreement_vs_fp32": 0.99,
              "top1_agreement_vs_fp32": 0.9}
    c = variant_contract(tiny_contract(), "int8", scores)
    assert c.variant == INT8_OK
    assert c.metrics["top1_agreement_vs_fp32"] == 0.9 and "decision_agreement_vs_fp32" not in c.metrics
    model = build_tiny_model()
    model.metadata_props.add(key=KEY_PREFIX + "stale", value="1")  # ours, from an older export: replaced
    model.metadata_props.add(key="producer_note", value="kept")
    onnx.save(set_contract(model, c), str(tmp_path / "m.onnx"))
    keys = {p.key for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert keys == set(c.to_metadata()) | {"producer_note"}
    assert read_contract(str(tmp_path / "m.onnx")).variant == INT8_OK


def test_loading_a_model_parses_the_file_once(tmp_path, monkeypatch):
    """The contract is read from the session that runs the model, not from a second session of its own."""
    path = write_valid_model(tmp_path / "m.onnx")
    session_mod.clear_cache()
    ort = session_mod.import_onnxruntime()
    opened = []

    class Counting(ort.InferenceSession):
        def __init__(self, *args, **kwargs):
            opened.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", Counting)
    model = session_mod.load_model(str(path), "cpu")
    assert len(opened) == 1 and model.contract == read_contract(str(path))
    grid = session_mod.load_model(str(path), "cpu", grid=True, cores=2)
    assert grid.layout == session_mod.ParallelLayout(2, 1) and grid.concurrent and not model.concurrent
    session_mod.clear_cache()


def test_palette_and_probability_fields_derive_from_the_class_list():
    from planet_terrain_plugin.qgis_io.fields import LABEL_FIELD, probability_field_names
    from planet_terrain_plugin.qgis_io.style import PALETTE, categorized_renderer

    assert list(PALETTE) == [c.name for c in HIRISE_LANDFORMS] + [UNKNOWN_LABEL]
    assert len(set(PALETTE.values())) == len(PALETTE), "one colour per class"
    renderer = categorized_renderer(tiny_contract())
    assert renderer.classAttribute() == LABEL_FIELD
    assert [c.value() for c in renderer.categories()] == list(PALETTE)
    names = probability_field_names(tiny_contract())
    assert names[0] == "p_crater" and all(n.startswith(PROBABILITY_PREFIX) for n in names)
