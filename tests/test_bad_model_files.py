"""Issue 8's catalogue of bad input, model files: a broken file is named with its problem, and a model file is
data, never code (its contract is parsed as JSON, a custom op is refused, nothing in the plugin evaluates code
or unpickles, training and export load checkpoints as weights only).

Real ONNX files (tests/model_factory.py) through the user-facing ``processing.run``, in the session's real QGIS.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import APOLLO, raster_path
from model_factory import broken_metadata, tiny_contract, write_model, write_valid_model
from paths import REPO
from planet_terrain_plugin.core import session as session_mod
from test_bad_input import _processing, files, refused  # noqa: F401 -- _processing: the autouse fixture


# -- model files --------------------------------------------------------------------------------------------------
def _bad_model(folder: Path, kind: str) -> Path:
    path = folder / f"{kind}.onnx"
    if kind == "missing":
        return path
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        good = write_valid_model(folder / "good.onnx").read_bytes()
        path.write_bytes(good[: len(good) // 2])
    elif kind == "not ONNX":
        path.write_text("<html>404 Not Found</html>")
    elif kind == "no contract":
        write_model(path, broken_metadata("no_contract"))
    elif kind == "newer schema":
        write_model(path, broken_metadata("newer_schema"))
    elif kind == "wrong input shape":
        write_model(path, tiny_contract(input_size=64).to_metadata(), input_size=32)
    elif kind == "classes disagree":
        write_model(path, tiny_contract().to_metadata(), num_classes=5)
    return path


@pytest.mark.parametrize("kind, words", [
    ("missing", r"does not exist\. Check the path or install a model"),
    ("empty", r"is an empty file\. Re-download or re-export the model"),
    ("truncated", r"is not a readable ONNX model.*truncated or not ONNX; re-export or re-install it"),
    ("not ONNX", r"is not a readable ONNX model.*re-export or re-install it"),
    ("no contract", r"carries no Planet Terrain contract.*make export"),
    ("newer schema", r"schema_version' is 999, newer than this plugin understands.*Update the Planet Terrain"),
    ("wrong input shape", r"input_size' says 64, but the network input is"),
    ("classes disagree", r"classes' lists 7 classes, but the network outputs"),
])
def test_bad_model_file_is_named_with_the_problem(tmp_path, kind, words):
    session_mod.clear_cache()
    model = _bad_model(tmp_path, kind)
    before = files(tmp_path)
    out = tmp_path / "out.gpkg"
    msg = refused(rf"MODEL: Model '{model}': .*{words}", INPUT=str(raster_path(APOLLO)), MODEL=str(model),
                  OUTPUT=str(out))
    assert "Traceback" not in msg
    assert files(tmp_path) == before


# -- model files are data, never code -----------------------------------------------------------------------------
PLUGIN = REPO / "planet_terrain_plugin"


def test_python_looking_contract_values_are_only_strings_or_refused(tmp_path):
    """The contract is parsed with json.loads alone: code in a value is a string, or invalid JSON."""
    from planet_terrain_plugin.core.contract import KEY_PREFIX, ContractError, read_contract

    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    md = tiny_contract().to_metadata()
    md[KEY_PREFIX + "model_name"] = json.dumps(payload)       # valid JSON: a harmless string
    md[KEY_PREFIX + "metrics"] = json.dumps({"__reduce__": ["os.system", [f"touch {marker}"]]})  # just a dict
    path = write_model(tmp_path / "code_as_string.onnx", md)
    contract = read_contract(str(path))
    assert contract.model_name == payload
    assert contract.metrics == {"__reduce__": ["os.system", [f"touch {marker}"]]}
    for key in ("temperature", "threshold", "mean"):  # the same payload where a number or list belongs
        bad = dict(tiny_contract().to_metadata())
        bad[KEY_PREFIX + key] = payload
        with pytest.raises(ContractError, match=rf"planet_terrain\.{key}' is not valid JSON"):
            read_contract(str(write_model(tmp_path / f"code_in_{key}.onnx", bad)))
    pickled = dict(tiny_contract().to_metadata())
    pickled[KEY_PREFIX + "metrics"] = "cos\nsystem\n(S'touch " + str(marker) + "'\ntR."  # a pickle program
    with pytest.raises(ContractError, match="not valid JSON"):
        read_contract(str(write_model(tmp_path / "pickled.onnx", pickled)))
    assert not marker.exists()


def test_model_with_a_custom_python_op_is_refused_not_run(tmp_path):
    """A real ONNX file whose graph calls a custom op (onnxruntime-extensions' PyOp, which would run Python)
    and whose contract is otherwise valid: the plugin registers no custom-op library, so the file is refused."""
    import onnx
    from onnx import TensorProto, helper

    from planet_terrain_plugin.core.contract import ContractError, read_contract

    marker = tmp_path / "pwned"
    graph = helper.make_graph(
        [helper.make_node("PyOp", ["input"], ["logits"], domain="ai.onnx.contrib",
                          code=f"__import__('os').system('touch {marker}')")],
        "evil", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.contrib", 1)])
    model.ir_version = 8
    for k, v in tiny_contract().to_metadata().items():
        model.metadata_props.add(key=k, value=v)
    path = tmp_path / "custom_op.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ContractError, match="is not a readable ONNX model"):
        read_contract(str(path))
    refused(r"MODEL: Model .*custom_op.onnx.*not a readable ONNX model", INPUT=str(raster_path(APOLLO)),
            MODEL=str(path))
    assert not marker.exists()


def _python_sources(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]


def test_the_plugin_never_evaluates_code_or_unpickles():
    forbidden = re.compile(r"(?<![\w.])(eval|exec|compile|__import__)\s*\(|\bpickle\b|\bmarshal\b|\bshell\s*=\s*True|"
                           r"\bos\.system\b|\bos\.popen\b|\byaml\.load\b|register_custom_ops_library|"
                           r"allow_pickle\s*=\s*True")
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in _python_sources(PLUGIN)
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if forbidden.search(line)]
    assert hits == []
    assert len(_python_sources(PLUGIN)) > 20  # the scan saw the plugin


def test_training_and_export_load_checkpoints_as_weights_only():
    calls = []
    for folder in ("training", "export", "benchmarks", "scripts"):
        for p in _python_sources(REPO / folder) if (REPO / folder).is_dir() else []:
            text = p.read_text(encoding="utf-8")
            for m in re.finditer(r"torch\.load\(([^()]*(?:\([^()]*\)[^()]*)*)\)", text):
                calls.append((f"{p.relative_to(REPO)}", m.group(1)))
            assert not re.search(r"\bpickle\.loads?\(|allow_pickle\s*=\s*True", text), p
    assert calls, "no torch.load found: the scan is broken"
    unsafe = [(f, args) for f, args in calls if not re.search(r"weights_only\s*=\s*True", args)]
    assert unsafe == [], "checkpoints must be loaded with weights_only=True (tensors and plain data, never code)"
