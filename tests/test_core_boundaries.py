"""The core stays at the centre: no Qt, no QGIS, no torch, so export/, training/ and scripts can import it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "planet_terrain_plugin" / "core"
FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "torch", "torchvision")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_modules_import_no_qt_qgis_or_torch():
    offenders = {p.name: sorted(_imported_roots(p) & set(FORBIDDEN)) for p in CORE.glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_imports_in_a_python_without_them():
    """A real interpreter in which qgis, PyQt5 and torch cannot be imported still loads the whole core."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {FORBIDDEN!r}: raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import pkgutil, importlib, planet_terrain_plugin.core as core\n"
            "for m in pkgutil.iter_modules(core.__path__):\n"
            "    importlib.import_module('planet_terrain_plugin.core.' + m.name)\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=CORE.parents[1])
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]
