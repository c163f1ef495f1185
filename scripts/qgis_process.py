"""Run Debian's ``qgis_process.bin`` headless in a sandboxed profile with this plugin installed and enabled.

Debian's ``/usr/bin/qgis_process`` wrapper is broken; the ``.bin`` works. Qt needs an offscreen platform, and a
throw-away profile (``QGIS_CUSTOM_CONFIG_PATH``) keeps the user's own QGIS settings untouched. Used by
``make demo`` and by the tests that prove the algorithm runs headless.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "planet_terrain_plugin"


def qgis_process_binary() -> str:
    for name in ("qgis_process.bin", "qgis_process"):
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if found:
            return found
    raise FileNotFoundError("qgis_process.bin not found: install Debian's qgis package (make sysdeps)")


def environment(profile: Path) -> dict[str, str]:
    """qgis_process's environment: offscreen Qt, the sandboxed profile, no .aux.xml beside input rasters, and
    this venv's site-packages on PYTHONPATH — qgis_process runs the system Python, while onnxruntime lives
    where a user's ``pip install`` put it (here: the venv)."""
    env = dict(os.environ)
    purelib = sysconfig.get_paths()["purelib"]
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile), GDAL_PAM_ENABLED="NO",
               PYTHONPATH=os.pathsep.join([purelib] + [p for p in paths if p != purelib]))
    return env


def make_profile(profile: Path, plugin: Path = ROOT / PLUGIN, link: bool = True) -> Path:
    """Create ``profile`` with the plugin installed and enabled, as a user would have it.

    ``plugin`` is the plugin folder (symlinked, or copied when ``link`` is False) or a ``make package`` zip
    (unpacked, as QGIS's "Install from ZIP" does). Re-running on an existing profile replaces the plugin.
    """
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    target = plugins / PLUGIN
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    if plugin.suffix == ".zip":
        with zipfile.ZipFile(plugin) as zf:
            zf.extractall(plugins)
    elif link:
        target.symlink_to(plugin.resolve(), target_is_directory=True)
    else:
        shutil.copytree(plugin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = run(["plugins", "enable", PLUGIN], profile)
    if proc.returncode != 0 and "already enabled" not in (proc.stdout + proc.stderr):
        raise RuntimeError(f"qgis_process could not enable {PLUGIN}:\n{proc.stdout}\n{proc.stderr}")
    return profile


def run(args: list[str], profile: Path, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``qgis_process.bin ARGS`` (an argument list: paths are never given to a shell)."""
    proc = subprocess.run([qgis_process_binary(), *args], env=environment(profile), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"qgis_process {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_algorithm(algorithm: str, params: dict[str, str], profile: Path, timeout: float = 600) -> dict:
    """Run one algorithm with ``--json`` and return its parsed result; raises with qgis_process's own words."""
    args = ["--json", "run", algorithm, "--"] + [f"{k}={v}" for k, v in params.items()]
    proc = run(args, profile, timeout=timeout)
    start = proc.stdout.find("{")
    if proc.returncode != 0 or start < 0:
        raise RuntimeError(f"{algorithm} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout[start:])
