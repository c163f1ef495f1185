"""The onnxruntime dependency check and installer (Qt-free part), with real pip and a hidden module."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

from planet_terrain_plugin.core.dependencies import choose_package, missing_modules, plan_install, run_install


def test_package_choice_per_platform():
    assert choose_package("darwin", has_nvidia=True)[0] == "onnxruntime"  # CoreML is in the standard wheel
    assert choose_package("linux", has_nvidia=True)[0] == "onnxruntime-gpu"
    assert choose_package("win32", has_nvidia=False)[0] == "onnxruntime"


def test_plan_installs_into_the_profile_without_a_shell(tmp_path):
    plan = plan_install(tmp_path / "profile", "linux", has_nvidia=False)
    assert plan.target_dir == tmp_path / "profile" / "python" / "dependencies"
    assert isinstance(plan.command, tuple) and plan.command[1:4] == ("-m", "pip", "install")
    assert plan.command[-1] == "onnxruntime" and str(plan.target_dir) in plan.command
    assert "pip install" in plan.command_line()


def test_missing_module_detected_when_hidden():
    """A real interpreter in which onnxruntime cannot be found (blocked by a meta-path finder)."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'onnxruntime': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from planet_terrain_plugin.core.dependencies import missing_modules\n"
        "from planet_terrain_plugin.core.session import import_onnxruntime\n"
        "print(missing_modules())\n"
        "try:\n    import_onnxruntime()\nexcept ImportError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert "['onnxruntime']" in out
    assert "ERR onnxruntime is not installed" in out and "pip install" in out
    assert missing_modules() == []  # here it is installed


def _tiny_wheel(folder: Path) -> Path:
    wheel = folder / "ptfake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("ptfake/__init__.py", "ANSWER = 42\n")
        zf.writestr("ptfake-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: ptfake\nVersion: 0.1\n")
        zf.writestr("ptfake-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("ptfake-0.1.dist-info/RECORD", "")
    return wheel


def test_run_install_with_real_pip_into_profile(tmp_path):
    plan = plan_install(tmp_path / "profile", "linux", has_nvidia=False)
    wheel = _tiny_wheel(tmp_path)
    plan = replace(plan, package=str(wheel), command=plan.command[:-1] + ("--no-index", str(wheel)))
    ok, output = run_install(plan)
    assert ok, output
    assert (plan.target_dir / "ptfake" / "__init__.py").is_file()
    import ptfake  # noqa: PLC0415  (made importable by run_install)

    assert ptfake.ANSWER == 42
    sys.path.remove(str(plan.target_dir))
    sys.modules.pop("ptfake", None)


def test_failed_install_returns_the_command_to_run(tmp_path):
    plan = plan_install(tmp_path / "profile", "linux", has_nvidia=False)
    plan = replace(plan, command=plan.command[:-1] + ("--no-index", "definitely-not-a-package-xyz"))
    ok, message = run_install(plan, timeout_s=120)
    assert not ok and "pip failed" in message and "Command:" in message
