"""Build the plugin zip that QGIS's "Install from ZIP" and the official plugin repository accept.

The official repository's upload check (qgis/QGIS-Django ``plugins/validator.py``) wants: a zip of at most
25 MB with one top folder holding ``__init__.py`` and ``metadata.txt``, the metadata keys below (real URLs for
tracker and repository), a LICENSE file, and no ``.pyc``, ``__pycache__`` or ``.git``. :func:`validate_zip`
checks exactly that, so a test can prove the zip passes. Model files that would push the zip over the limit
are left out and listed: they ship as their own files that the plugin installs. Everything else in ``models/``
(the card, the split, the training gallery ``make package`` builds first when it is missing) goes in, and is
listed.
Standard library only, so it runs with any Python 3.
"""
from __future__ import annotations

import argparse
import configparser
import io
import os
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "planet_terrain_plugin"
MAX_BYTES = 25 * 1024 * 1024
REQUIRED_METADATA = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about",
                     "tracker", "repository")
RECOMMENDED_METADATA = ("homepage", "tags", "category", "icon", "hasProcessingProvider")
EXCLUDED_PARTS = {"__pycache__", ".git", ".pytest_cache", ".hypothesis"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def plugin_files(plugin_dir: Path) -> list[Path]:
    """Files that belong in the zip (symlinks such as metadata.txt -> ../metadata.txt are followed)."""
    files = []
    for path in sorted(plugin_dir.rglob("*")):
        rel = path.relative_to(plugin_dir)
        if any(part in EXCLUDED_PARTS for part in rel.parts) or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if path.is_file():
            files.append(path)
    return files


def read_metadata(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    parser.read_string(text)
    return dict(parser["general"])


def build_zip(out_dir: Path, plugin_dir: Path = ROOT / PLUGIN, max_bytes: int = MAX_BYTES) -> tuple[Path, list[str]]:
    """Write the zip; returns its path and the model files left out to stay under ``max_bytes``."""
    meta = read_metadata((plugin_dir / "metadata.txt").read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN}-{meta['version']}.zip"
    files = plugin_files(plugin_dir)
    models = sorted((f for f in files if f.suffix == ".onnx"), key=lambda f: f.stat().st_size)
    others = [f for f in files if f.suffix != ".onnx"]
    left_out: list[str] = []
    while True:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in others + models:
                zf.write(f, f"{PLUGIN}/{f.relative_to(plugin_dir).as_posix()}")
        if buffer.tell() <= max_bytes or not models:
            break
        dropped = models.pop()  # the largest model goes out first
        left_out.append(dropped.name)
    tmp = target.with_suffix(".zip.part")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, target)  # never leave a half-written zip behind
    return target, left_out


def validate_zip(path: Path, max_bytes: int = MAX_BYTES) -> list[str]:
    """Problems the official repository's upload check would report; empty when the zip passes."""
    problems = []
    if path.stat().st_size > max_bytes:
        problems.append(f"zip is {path.stat().st_size / 1e6:.1f} MB, over {max_bytes / 1e6:.0f} MB")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        tops = {n.split("/")[0] for n in names}
        if len(tops) != 1:
            return problems + [f"zip must hold exactly one top folder, has {sorted(tops)}"]
        top = tops.pop()
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{top}/{required}" not in names:
                problems.append(f"missing {top}/{required}")
        bad = [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo")) or "/.git" in n]
        if bad:
            problems.append(f"forbidden files: {bad[:5]}")
        if f"{top}/metadata.txt" in names:
            meta = read_metadata(zf.read(f"{top}/metadata.txt").decode("utf-8"))
            for key in REQUIRED_METADATA + RECOMMENDED_METADATA:
                if not meta.get(key, "").strip():
                    problems.append(f"metadata.txt lacks '{key}'")
            for key in ("tracker", "repository", "homepage"):
                if meta.get(key) and not meta[key].startswith(("http://", "https://")):
                    problems.append(f"metadata.txt '{key}' is not a URL")
            icon = meta.get("icon")
            if icon and f"{top}/{icon}" not in names:
                problems.append(f"icon '{icon}' named in metadata.txt is not in the zip")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="dist", type=Path)
    args = parser.parse_args(argv)
    target, left_out = build_zip(args.out)
    problems = validate_zip(target)
    print(f"{target} ({target.stat().st_size / 1e6:.1f} MB)")
    with zipfile.ZipFile(target) as zf:
        for info in zf.infolist():
            if f"{PLUGIN}/models/" in info.filename and not info.filename.endswith(".png"):
                print(f"  {info.filename} ({info.file_size / 1e6:.1f} MB)")
    for name in left_out:
        print(f"  left out (too large for the 25 MB limit, install it from its own file): {name}")
    for p in problems:
        print(f"  PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
