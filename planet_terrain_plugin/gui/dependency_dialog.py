"""When onnxruntime is missing: say so, offer to install it into the user's QGIS profile, or show the command.

QPIP (``plugin_dependencies=qpip`` + ``requirements.txt``) is the QGIS convention and comes first; this dialog is
for profiles without it. The plan (which wheel for this machine, the target folder inside the profile, the
exact pip command as an argument list) is ``core.dependencies``'s; this module only shows it and runs it in a
``QgsTask`` so QGIS stays responsive while pip works. Packages installed this way live in
``<profile>/python/dependencies`` and are put on ``sys.path`` every time the plugin loads
(:func:`load_installed_dependencies`). Users on managed machines choose "Show the command" and hand it to IT.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout,
                                 QWidget)

from ..core.dependencies import REQUIRED_MODULE, InstallPlan, add_to_path, missing_modules, plan_install, run_install

TITLE = "Planet Terrain: a Python package is missing"
LOG_TAG = "Planet Terrain"

#: The dialog opened at plugin load (kept referenced so Python does not delete it while it is shown).
_OPEN: list["DependencyDialog"] = []


def profile_dir() -> Path:
    """The active QGIS user profile (where the plugin may install packages without admin rights)."""
    return Path(QgsApplication.qgisSettingsDirPath())


def dependencies_dir(profile: Path | None = None) -> Path:
    """``<profile>/python/dependencies``: where :func:`core.dependencies.plan_install` puts packages."""
    return Path(profile or profile_dir()) / "python" / "dependencies"


def load_installed_dependencies(profile: Path | None = None) -> Path:
    """Make packages installed earlier by this dialog importable (plugin load); returns the folder."""
    folder = dependencies_dir(profile)
    add_to_path(folder)
    return folder


class InstallTask(QgsTask):
    """``core.dependencies.run_install`` on a worker thread; ``ok`` and ``output`` when done."""

    def __init__(self, plan: InstallPlan, on_done: Callable[["InstallTask"], None]) -> None:
        super().__init__(f"Planet Terrain: installing {plan.package}", QgsTask.Flags())
        self.plan, self.on_done = plan, on_done
        self.ok: bool | None = None
        self.output = ""

    def run(self) -> bool:
        try:
            self.ok, self.output = run_install(self.plan)
        except Exception as exc:  # noqa: BLE001 -- a failed install must become a message, never a crash
            self.ok, self.output = False, f"{type(exc).__name__}: {exc}\nRun this yourself:\n{self.plan.command_line()}"
        return bool(self.ok)

    def finished(self, result: bool) -> None:
        callback, self.on_done = self.on_done, None
        if callback is not None:
            callback(self)


class DependencyDialog(QDialog):
    """Non-modal: what is missing, where it would go, and Install / Show the command / Not now."""

    def __init__(self, missing: list[str], plan: InstallPlan, parent: QWidget | None = None,
                 message_bar=None) -> None:
        super().__init__(parent)
        self.missing, self.plan, self.message_bar = list(missing), plan, message_bar
        self.task: InstallTask | None = None
        self.installed: bool | None = None  # None until an install finished
        self.setWindowTitle(TITLE)
        names = ", ".join(self.missing)
        self.text = QLabel(
            f"Planet Terrain needs the Python package <b>{names}</b>, which QGIS's Python cannot import. "
            "Without it the plugin cannot classify; the rest of QGIS is not affected.<br><br>"
            f"Install <b>{plan.package}</b> ({plan.reason}) into your QGIS profile, in<br><tt>{plan.target_dir}</tt>?"
            "<br>Nothing outside your profile changes and no administrator rights are needed. "
            "On a managed computer, choose <i>Show the command</i> and give it to your IT team.")
        self.text.setWordWrap(True)
        self.command = QPlainTextEdit(plan.command_line())
        self.command.setReadOnly(True)
        self.command.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.install_button = self.buttons.addButton("Install", QDialogButtonBox.AcceptRole)
        self.command_button = self.buttons.addButton("Show the command", QDialogButtonBox.ActionRole)
        self.close_button = self.buttons.addButton("Not now", QDialogButtonBox.RejectRole)
        self.install_button.clicked.connect(self.install)
        self.command_button.clicked.connect(self.show_command)
        self.close_button.clicked.connect(self.not_now)
        layout = QVBoxLayout(self)
        for widget in (self.text, self.command, self.status, self.buttons):
            layout.addWidget(widget)

    # -- actions -----------------------------------------------------------------------------------------------
    def show_command(self) -> None:
        """Reveal the exact command (and copy it) for users who cannot or will not let the plugin run pip."""
        self.command.setVisible(True)
        QApplication.clipboard().setText(self.plan.command_line())
        self.status.setText("The command is shown above and copied to the clipboard. Run it with the Python "
                            "that QGIS uses, then restart QGIS.")

    def not_now(self) -> None:
        self._tell(f"{', '.join(self.missing)} is not installed: classification is unavailable until it is. "
                   f"Command: {self.plan.command_line()}", Qgis.Warning)
        self.reject()

    def install(self) -> None:
        """Start pip in a background task; the dialog stays open and reports the outcome."""
        if self.task is not None:
            return
        self.install_button.setEnabled(False)
        self.status.setText(f"Installing {self.plan.package} with pip… (this can take a few minutes; QGIS stays "
                            "usable)")
        self.task = InstallTask(self.plan, self._installed)
        QgsApplication.taskManager().addTask(self.task)

    def _installed(self, task: InstallTask) -> None:
        self.installed = bool(task.ok)
        self.task = None
        still_missing = missing_modules(tuple(self.missing)) if task.ok else self.missing
        if task.ok and not still_missing:
            text = (f"{self.plan.package} was installed into {self.plan.target_dir} and can be used now "
                    "(restart QGIS if a classification still reports it missing).")
            self.status.setText(text)
            self.close_button.setText("Close")
            self._tell(text, Qgis.Success)
            return
        if task.ok:  # pip succeeded but the module still cannot be imported (e.g. a wheel for another Python)
            detail = f"pip reported success, but {', '.join(still_missing)} still cannot be imported."
        else:
            detail = task.output.strip()[-1500:]
        self.status.setText(f"The installation failed:\n{detail}\nYou can run the command yourself (shown above).")
        self.command.setVisible(True)
        self.install_button.setEnabled(True)
        self._tell(f"Installing {self.plan.package} failed; see the Planet Terrain log. Command: "
                   f"{self.plan.command_line()}", Qgis.Critical)
        QgsMessageLog.logMessage(detail, LOG_TAG, Qgis.Critical)

    def _tell(self, text: str, level) -> None:
        QgsMessageLog.logMessage(text, LOG_TAG, level)
        if self.message_bar is not None:
            self.message_bar.pushMessage("Planet Terrain", text, level, 0 if level == Qgis.Critical else 10)


def offer_install(iface, plan: InstallPlan | None = None,
                  modules: tuple[str, ...] = (REQUIRED_MODULE,)) -> DependencyDialog | None:
    """Show the dialog (non-modal) when ``modules`` are missing; None when nothing is missing."""
    missing = missing_modules(modules)
    if not missing:
        return None
    plan = plan or plan_install(profile_dir())
    parent = iface.mainWindow() if iface is not None else None
    bar = iface.messageBar() if iface is not None else None
    dialog = DependencyDialog(missing, plan, parent, bar)
    _OPEN[:] = [dialog]
    dialog.show()
    return dialog


def open_dialog() -> DependencyDialog | None:
    """The dialog shown at plugin load, if any (tests and the plugin's unload use it)."""
    return _OPEN[0] if _OPEN else None


def check_on_load(iface, modules: tuple[str, ...] = (REQUIRED_MODULE,)) -> list[str]:
    """Plugin load: put earlier installs on ``sys.path``; when something is still missing, log the command and
    (desktop only: ``iface`` is None in ``qgis_process``) offer the dialog once QGIS's event loop runs.
    Never raises: a plugin must load, and say what is missing, whatever the state of its dependencies."""
    try:
        load_installed_dependencies()
        missing = missing_modules(modules)
        if missing:
            plan = plan_install(profile_dir())
            QgsMessageLog.logMessage(f"Planet Terrain: {', '.join(missing)} is missing; install it with: "
                                     f"{plan.command_line()}", LOG_TAG, Qgis.Warning)
            if iface is not None:
                QTimer.singleShot(0, lambda: offer_install(iface, plan, modules))
        return missing
    except Exception as exc:  # noqa: BLE001
        QgsMessageLog.logMessage(f"Planet Terrain: the dependency check failed ({exc})", LOG_TAG, Qgis.Warning)
        return []
