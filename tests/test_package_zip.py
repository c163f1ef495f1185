"""`make package`'s zip passes the official plugin repository's upload rules."""
from __future__ import annotations

import zipfile

from scripts.package import MAX_BYTES, build_zip, validate_zip


def test_zip_passes_upload_rules(tmp_path):
    target, left_out = build_zip(tmp_path)
    assert validate_zip(target) == []
    assert target.stat().st_size <= MAX_BYTES
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
    assert "planet_terrain_plugin/metadata.txt" in names and "planet_terrain_plugin/LICENSE" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]
    for name in left_out:
        assert name.endswith(".onnx")


def test_validator_catches_what_the_repository_would_refuse(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("planet_terrain_plugin/__init__.py", "")
        zf.writestr("planet_terrain_plugin/__pycache__/x.pyc", "")
        zf.writestr("planet_terrain_plugin/metadata.txt", "[general]\nname=x\ntracker=nope\n")
    problems = " | ".join(validate_zip(bad))
    assert "missing planet_terrain_plugin/LICENSE" in problems
    assert "forbidden files" in problems
    assert "lacks 'email'" in problems and "'tracker' is not a URL" in problems


def test_oversized_models_are_left_out_not_shipped_over_the_limit(tmp_path):
    plugin = tmp_path / "planet_terrain_plugin"
    (plugin / "models").mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    (plugin / "metadata.txt").write_text("[general]\nversion=9.9\n")
    import os

    (plugin / "models" / "small.onnx").write_bytes(os.urandom(1000))
    (plugin / "models" / "big.onnx").write_bytes(os.urandom(50_000))
    target, left_out = build_zip(tmp_path / "dist", plugin, max_bytes=20_000)
    assert left_out == ["big.onnx"]
    with zipfile.ZipFile(target) as zf:
        assert "planet_terrain_plugin/models/small.onnx" in zf.namelist()
