"""Is onnxruntime importable, and if not, exactly what to install and how.

The QGIS convention comes first: ``requirements.txt`` in the plugin folder plus ``plugin_dependencies=qpip`` in
metadata.txt lets QPIP offer the install. For profiles without QPIP the plugin's own dialog uses this module:
it picks the right wheel for the platform (``onnxruntime`` on macOS, which carries CoreML; ``onnxruntime-gpu``
where an NVIDIA driver is present; ``onnxruntime`` otherwise), builds a pip command that installs into a folder
of the user's QGIS profile (no admin rights, nothing outside the profile), and runs it as an argument list —
never through a shell. The same command is shown to users on managed machines, to hand to their IT.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REQUIRED_MODULE = "onnxruntime"


@dataclass(frozen=True)
class InstallPlan:
    """What to install, where, and the exact command (an argument list) that does it."""

    package: str
    target_dir: Path
    command: tuple[str, ...]
    reason: str

    def command_line(self) -> str:
        """The command as a user would type it (for the "show the command" option)."""
        import shlex

        return " ".join(shlex.quote(part) for part in self.command)


def missing_modules(modules: tuple[str, ...] = (REQUIRED_MODULE,)) -> list[str]:
    """Modules that cannot be imported (found by spec, so nothing heavy is imported)."""
    missing = []
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):  # a broken install or a blocking import hook
            found = False
        if not found:
            missing.append(m)
    return missing


def nvidia_driver_present() -> bool:
    """An NVIDIA driver is installed (Linux: /proc/driver/nvidia; any OS: nvidia-smi on PATH)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def choose_package(platform: str = sys.platform, has_nvidia: bool | None = None) -> tuple[str, str]:
    """(package, reason) for this machine."""
    if platform == "darwin":
        return "onnxruntime", "macOS: the standard wheel includes the CoreML provider for Apple silicon"
    if has_nvidia is None:
        has_nvidia = nvidia_driver_present()
    if has_nvidia:
        return "onnxruntime-gpu", "an NVIDIA driver is present: the GPU wheel adds the CUDA provider"
    return "onnxruntime", "no NVIDIA driver found: the CPU wheel"


def python_executable() -> str:
    """The Python interpreter behind QGIS (sys.executable is the QGIS binary on Windows and macOS)."""
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    for candidate in (Path(sys.exec_prefix) / "bin" / "python3", Path(sys.exec_prefix) / "python.exe",
                      Path(sys.exec_prefix) / "python3.exe", exe.parent / "python3", exe.parent / "python.exe"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("python3") or "python3"


def plan_install(profile_dir: Path, platform: str = sys.platform, has_nvidia: bool | None = None) -> InstallPlan:
    """The plan for installing onnxruntime into ``<profile_dir>/python/dependencies``."""
    package, reason = choose_package(platform, has_nvidia)
    target = Path(profile_dir) / "python" / "dependencies"
    command = (python_executable(), "-m", "pip", "install", "--disable-pip-version-check", "--upgrade",
               "--target", str(target), package)
    return InstallPlan(package, target, command, reason)


def add_to_path(target_dir: Path) -> None:
    """Make packages installed by :func:`run_install` importable in this QGIS session."""
    path = str(target_dir)
    if os.path.isdir(path) and path not in sys.path:
        sys.path.append(path)  # after QGIS's own packages: pip's numpy there must never shadow the one GDAL uses
        importlib.invalidate_caches()


def run_install(plan: InstallPlan, timeout_s: float = 900) -> tuple[bool, str]:
    """Run the plan (argument list, no shell). Returns (success, combined output for the user)."""
    plan.target_dir.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(list(plan.command), capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"could not run pip: {exc}. Run this yourself:\n{plan.command_line()}"
    output = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        return False, f"pip failed (exit {proc.returncode}):\n{output[-2000:]}\nCommand: {plan.command_line()}"
    add_to_path(plan.target_dir)
    return True, output[-2000:]
