"""The plugin with onnxruntime hidden: it loads, says what is missing, offers the install and can run it.

onnxruntime is hidden for real: its modules are taken out of ``sys.modules`` and a meta-path finder refuses to
find it, so ``core.dependencies.missing_modules`` and every ``import onnxruntime`` fail as on a machine without
it. The install itself runs real pip on a tiny local wheel (no download), into a profile folder under tmp_path.
"""
from __future__ import annotations

import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtWidgets import QApplication

from conftest import APOLLO, raster_path, run_in_fresh_qgis, wait_until
from planet_terrain_plugin import classFactory
from planet_terrain_plugin.core.dependencies import missing_modules, plan_install
from planet_terrain_plugin.gui import dependency_dialog
from planet_terrain_plugin.gui.dependency_dialog import (DependencyDialog, check_on_load, dependencies_dir,
                                                         load_installed_dependencies, offer_install)


class _Hide:
    """A meta-path finder that makes the named top-level packages unfindable."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named '{name}' (hidden by the test)", name=name)
        return None


@pytest.fixture
def onnxruntime_hidden(monkeypatch):
    for name in [m for m in sys.modules if m == "onnxruntime" or m.startswith("onnxruntime.")]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    hider = _Hide("onnxruntime")
    sys.meta_path.insert(0, hider)
    yield
    sys.meta_path.remove(hider)


def _tiny_wheel(folder: Path, name: str = "ptdepfake") -> Path:
    wheel = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "ANSWER = 42\n")
        zf.writestr(f"{name}-0.1.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        zf.writestr(f"{name}-0.1.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{name}-0.1.dist-info/RECORD", "")
    return wheel


def _local_plan(tmp_path: Path, wheel: Path | None):
    """The real plan for this machine, with the package swapped for a local wheel (or a missing one)."""
    plan = plan_install(tmp_path / "profile")
    target = str(wheel) if wheel else str(tmp_path / "no-such-wheel-0.1-py3-none-any.whl")
    return replace(plan, package=Path(target).name, command=plan.command[:-1] + ("--no-index", target))


def test_missing_onnxruntime_is_detected_and_the_plugin_still_loads(onnxruntime_hidden, qgis_iface, bar):
    assert missing_modules() == ["onnxruntime"]
    plugin = classFactory(None)  # qgis_process: no dialog, no exception
    plugin.initProcessing()
    try:
        assert QgsApplication.processingRegistry().algorithmById("planet_terrain:classify_extent") is not None
    finally:
        if plugin.provider is not None:  # None when a test fixture had registered one already
            QgsApplication.processingRegistry().removeProvider(plugin.provider)
    assert dependency_dialog.open_dialog() is None  # nothing shown without a GUI


def test_plugin_load_offers_the_install_dialog(onnxruntime_hidden, qgis_iface, bar):
    dependency_dialog._OPEN.clear()
    assert check_on_load(qgis_iface) == ["onnxruntime"]
    assert wait_until(lambda: dependency_dialog.open_dialog() is not None, 5), "no dialog after plugin load"
    dialog = dependency_dialog.open_dialog()
    try:
        assert dialog.isVisible() and not dialog.isModal()
        assert "onnxruntime" in dialog.text.text() and str(dialog.plan.target_dir) in dialog.text.text()
        assert dialog.plan.target_dir == dependencies_dir()  # the active QGIS profile
        assert str(dialog.plan.target_dir).startswith(QgsApplication.qgisSettingsDirPath().rstrip("/"))
        assert dialog.plan.package in ("onnxruntime", "onnxruntime-gpu")
        assert {b.text() for b in dialog.buttons.buttons()} == {"Install", "Show the command", "Not now"}
    finally:
        dialog.close()
        dependency_dialog._OPEN.clear()


def test_show_the_command_reveals_and_copies_the_exact_pip_command(onnxruntime_hidden, qgis_iface, tmp_path):
    dialog = offer_install(qgis_iface, _local_plan(tmp_path, None))
    try:
        assert dialog is not None and not dialog.command.isVisible()
        dialog.command_button.click()
        assert dialog.isVisible(), "Show the command must not close the dialog"
        assert dialog.command.isVisible()
        assert dialog.command.toPlainText() == dialog.plan.command_line()
        assert QApplication.clipboard().text() == dialog.plan.command_line()
        assert " -m pip install " in dialog.plan.command_line() and "--target" in dialog.plan.command_line()
        assert "copied to the clipboard" in dialog.status.text()
    finally:
        dialog.close()


def test_not_now_installs_nothing_and_leaves_the_command_in_the_message(onnxruntime_hidden, qgis_iface, bar,
                                                                        tmp_path):
    dialog = offer_install(qgis_iface, _local_plan(tmp_path, None))
    dialog.close_button.click()
    assert not dialog.isVisible()
    assert not (tmp_path / "profile").exists()
    (msg,) = bar.get_messages(Qgis.Warning)
    assert "onnxruntime is not installed" in msg and "pip install" in msg


def test_install_button_runs_pip_in_a_task_into_the_profile(onnxruntime_hidden, qgis_iface, bar, tmp_path):
    wheel = _tiny_wheel(tmp_path)
    plan = _local_plan(tmp_path, wheel)
    dialog = DependencyDialog(["ptdepfake"], plan, qgis_iface.mainWindow(), qgis_iface.messageBar())
    dialog.show()
    try:
        assert missing_modules(("ptdepfake",)) == ["ptdepfake"]
        dialog.install_button.click()
        assert not dialog.install_button.isEnabled()  # no second pip while the first runs
        assert wait_until(lambda: dialog.installed is not None, 120), "pip did not finish"
        assert dialog.installed is True, dialog.status.text()
        assert (plan.target_dir / "ptdepfake" / "__init__.py").is_file()
        assert missing_modules(("ptdepfake",)) == []
        import ptdepfake  # noqa: PLC0415 -- importable in this session, no restart

        assert ptdepfake.ANSWER == 42
        assert "was installed into" in dialog.status.text()
        assert any("was installed into" in m for m in bar.get_messages(Qgis.Success))
    finally:
        dialog.close()
        if str(plan.target_dir) in sys.path:
            sys.path.remove(str(plan.target_dir))
        sys.modules.pop("ptdepfake", None)


def test_failed_install_says_so_and_shows_the_command(onnxruntime_hidden, qgis_iface, bar, tmp_path):
    plan = _local_plan(tmp_path, None)  # the wheel does not exist: pip fails for real
    dialog = DependencyDialog(["onnxruntime"], plan, qgis_iface.mainWindow(), qgis_iface.messageBar())
    dialog.show()
    try:
        dialog.install_button.click()
        assert wait_until(lambda: dialog.installed is not None, 120)
        assert dialog.installed is False and "installation failed" in dialog.status.text()
        assert dialog.command.isVisible() and dialog.install_button.isEnabled()
        (msg,) = bar.get_messages(Qgis.Critical)
        assert "failed" in msg and plan.command_line() in msg
    finally:
        dialog.close()


def test_packages_installed_earlier_are_on_sys_path_at_load(tmp_path):
    profile = tmp_path / "profile"
    folder = dependencies_dir(profile)
    (folder / "ptearlier").mkdir(parents=True)
    (folder / "ptearlier" / "__init__.py").write_text("VALUE = 'from the profile'\n")
    try:
        assert load_installed_dependencies(profile) == folder
        assert str(folder) in sys.path
        assert sys.path.index(str(folder)) > 0, "profile packages must not shadow QGIS's own (numpy)"
        import ptearlier  # noqa: PLC0415

        assert ptearlier.VALUE == "from the profile"
    finally:
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
        sys.modules.pop("ptearlier", None)


def test_a_fresh_qgis_without_onnxruntime_loads_the_plugin_and_explains(tmp_path):
    """A new interpreter and QgsApplication where onnxruntime was never importable: classFactory, Processing
    registration and a classification attempt, which fails with the install instructions, not a traceback."""
    before = """
        import sys
        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] == 'onnxruntime':
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, Hide())
    """
    body = f"""
        try:
            processing.run('planet_terrain:classify_extent', {{'INPUT': {str(raster_path(APOLLO))!r},
                           'MODEL': {str(tmp_path / 'some.onnx')!r}, 'OUTPUT': 'memory:'}})
        except QgsProcessingException as exc:
            print('MESSAGE', exc)
        print('ALIVE', QgsApplication.instance() is not None)
    """
    (tmp_path / "some.onnx").write_bytes(b"\x08\x07")  # exists and is not empty: onnxruntime would be needed
    proc = run_in_fresh_qgis(body, tmp_path, before)
    out = proc.stdout + proc.stderr
    assert "ALIVE True" in proc.stdout, out[-3000:]
    assert "MESSAGE MODEL: onnxruntime is not installed in QGIS's Python" in proc.stdout, out[-3000:]
    assert "pip install" in proc.stdout and "Traceback" not in proc.stdout
