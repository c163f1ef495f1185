"""The model contract: round trip, strict parsing, and errors that name the key and the file."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_factory import broken_metadata, tiny_contract, write_model, write_valid_model
from planet_terrain_plugin.core.contract import (
    HIRISE_LANDFORMS, KEY_PREFIX, SCHEMA_VERSION, ContractError, ModelContract, read_contract)


def test_round_trip_through_metadata_is_exact():
    c = tiny_contract(temperature=1.73, threshold=0.61, metrics={"macro_f1": 0.5})
    assert ModelContract.from_metadata(c.to_metadata(), "x.onnx") == c


def test_round_trip_through_a_real_onnx_file(tmp_path):
    path = write_valid_model(tmp_path / "m.onnx", temperature=2.5)
    c = read_contract(str(path))
    assert c.temperature == 2.5
    assert c.class_names == tuple(k.name for k in HIRISE_LANDFORMS)
    assert c.schema_version == SCHEMA_VERSION


def test_every_key_is_prefixed_and_json():
    for k, v in tiny_contract().to_metadata().items():
        assert k.startswith(KEY_PREFIX)
        json.loads(v)


@pytest.mark.parametrize("kind, key, words", [
    ("missing_key", "temperature", "missing"),
    ("malformed_json", "mean", "not valid JSON"),
    ("wrong_type", "input_size", "should be int"),
    ("newer_schema", "schema_version", "newer than this plugin"),
    ("bad_threshold", "threshold", "must be in [0, 1]"),
])
def test_broken_metadata_names_key_and_file(tmp_path, kind, key, words):
    path = write_model(tmp_path / f"{kind}.onnx", broken_metadata(kind))
    with pytest.raises(ContractError) as info:
        read_contract(str(path))
    msg = str(info.value)
    assert f"{KEY_PREFIX}{key}" in msg and str(path) in msg and words in msg


def test_onnx_without_contract_says_how_to_fix(tmp_path):
    path = write_model(tmp_path / "plain.onnx", broken_metadata("no_contract"))
    with pytest.raises(ContractError, match="no Planet Terrain contract.*make export"):
        read_contract(str(path))


@pytest.mark.parametrize("content, words", [(None, "does not exist"), (b"", "empty file"),
                                             (b"this is not onnx at all", "not a readable ONNX model")])
def test_unreadable_files(tmp_path, content, words):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ContractError, match=words):
        read_contract(str(path))


def test_truncated_model_file(tmp_path):
    good = write_valid_model(tmp_path / "good.onnx").read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(ContractError, match="truncated|not a readable ONNX"):
        read_contract(str(bad))


def test_validation_rejects_nonsense():
    with pytest.raises(ContractError, match="temperature"):
        tiny_contract(temperature=0.0)
    with pytest.raises(ContractError, match="bodies"):
        tiny_contract(bodies=("Pluto",))
    with pytest.raises(ContractError, match="reserved id 0"):
        tiny_contract(classes=HIRISE_LANDFORMS + (HIRISE_LANDFORMS[0].__class__(0, "other", ("Mars",)),))


def test_allowed_mask_per_body():
    c = tiny_contract()
    moon = dict(zip(c.class_names, c.allowed_mask("Moon")))
    assert moon == {"crater": True, "dark dune": False, "slope streak": False, "bright dune": False,
                    "impact ejecta": True, "swiss cheese": False, "spider": False}
    assert all(c.allowed_mask("Mars")) and all(c.allowed_mask(None))


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                            max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(sorted(tiny_contract().to_metadata())), value=_json_values | st.text())
def test_parser_never_crashes_on_arbitrary_values(key, value):
    """Any value under any key either parses to a valid contract or raises ContractError naming that file."""
    md = tiny_contract().to_metadata()
    md[key] = value if isinstance(value, str) and not value.startswith(("[", "{")) else json.dumps(value)
    try:
        c = ModelContract.from_metadata(md, "prop.onnx")
    except ContractError as exc:
        assert "prop.onnx" in str(exc)
    else:
        c.validate("prop.onnx")
