"""The plugin object QGIS loads: Processing provider, toolbar/menu actions, the rectangle map tool and the panel.

``initProcessing`` alone is what ``qgis_process`` calls (``iface`` is None there); ``initGui`` adds the
interactive parts on top in the desktop application.
"""
from __future__ import annotations

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QActionGroup, QFileDialog, QMenu

from .core.contract import ContractError
from .gui.controller import ClassifyController, body_setting, set_body_setting
from .gui.dock import TerrainDock
from .gui.map_tool import ExtentMapTool
from .gui.model_manager import close_manager, open_manager
from .gui.resources import icon_path, rectangle_icon_path
from .processing.provider import PlanetTerrainProvider
from .qgis_io.layer_info import BODY_CHOICES
from .qgis_io.model_choice import install_model_setting

MENU = "&Planet Terrain"


class PlanetTerrainPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: PlanetTerrainProvider | None = None
        self.controller: ClassifyController | None = None
        self.tool: ExtentMapTool | None = None
        self.actions: list[QAction] = []
        self.classify_action: QAction | None = None
        self.body_menu: QMenu | None = None
        self.dock: TerrainDock | None = None
        #: Toolbar button showing/hiding the panel (also in View > Panels); kept apart from ``actions``, which
        #: lists the Planet Terrain menu entries.
        self.dock_action: QAction | None = None

    # -- Processing (desktop and qgis_process) ---------------------------------------------------------------
    def initProcessing(self) -> None:  # noqa: N802 -- QGIS's name
        if self.provider is None:
            provider = PlanetTerrainProvider()
            # False when a provider with this id is already registered: then it is not ours to remove later.
            if QgsApplication.processingRegistry().addProvider(provider):
                self.provider = provider

    # -- desktop GUI -----------------------------------------------------------------------------------------
    def initGui(self) -> None:  # noqa: N802 -- QGIS's name
        self.initProcessing()
        window = self.iface.mainWindow()
        canvas = self.iface.mapCanvas()
        self.controller = ClassifyController(self.iface)
        self.tool = ExtentMapTool(canvas)
        self.tool.extentSelected.connect(self.controller.classify_canvas_rect)

        self.classify_action = QAction(QIcon(rectangle_icon_path()), "Classify terrain in a rectangle", window)
        self.classify_action.setCheckable(True)
        self.classify_action.setToolTip("Planet Terrain: drag a rectangle over a raster: the active layer, else the "
                                        "panel's raster (Esc cancels)")
        self.classify_action.triggered.connect(self.activate_tool)
        self.tool.setAction(self.classify_action)
        self.iface.addToolBarIcon(self.classify_action)
        self.iface.addPluginToMenu(MENU, self.classify_action)

        install = QAction("Install model file…", window)
        install.triggered.connect(self.install_model)
        self.iface.addPluginToMenu(MENU, install)
        manage = QAction("Manage models…", window)
        manage.triggered.connect(lambda: open_manager(install, self.dock and self.dock.refresh_model, window))
        self.iface.addPluginToMenu(MENU, manage)

        self.body_menu = QMenu("Body", window)
        group = QActionGroup(self.body_menu)
        for choice in BODY_CHOICES:
            act = QAction("auto (from the layer's CRS)" if choice == "auto" else choice, self.body_menu)
            act.setCheckable(True)
            act.setChecked(choice == body_setting())
            act.triggered.connect(lambda _checked=False, c=choice: set_body_setting(c))
            group.addAction(act)
            self.body_menu.addAction(act)
        body_action = self.body_menu.menuAction()
        self.iface.addPluginToMenu(MENU, body_action)
        self.actions = [self.classify_action, install, manage, body_action]

        self.dock = TerrainDock(self.iface, self.controller, install, self.activate_tool, window)
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.dock_action = self.dock.toggleViewAction()
        self.dock_action.setIcon(QIcon(icon_path()))
        self.dock_action.setText("Planet Terrain panel")
        self.dock_action.setToolTip("Planet Terrain: show the panel (model, grid runs, threshold, legend, export)")
        self.iface.addToolBarIcon(self.dock_action)

    def activate_tool(self) -> None:
        self.iface.mapCanvas().setMapTool(self.tool)

    def install_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.iface.mainWindow(), "Planet Terrain model", "",
                                              "ONNX models (*.onnx)")
        if not path:
            return
        try:
            path = install_model_setting(path)
        except (ContractError, ImportError) as exc:  # ImportError: onnxruntime not installed yet
            self.controller.message(str(exc), Qgis.Critical)
            return
        self.controller.message(f"Model installed: {path}", Qgis.Success)
        if self.dock is not None:
            self.dock.refresh_model()

    def unload(self) -> None:
        if self.controller is not None:
            self.controller.cancel_all()
        close_manager()
        if self.dock is not None:
            self.dock.clean_up()
            if self.dock_action is not None:
                self.iface.removeToolBarIcon(self.dock_action)
                self.dock_action = None
            remove = getattr(self.iface, "removeDockWidget", None)  # absent from pytest-qgis's stub interface
            if remove is not None:
                remove(self.dock)
            self.dock.setParent(None)
            self.dock.deleteLater()
            self.dock = None
        if self.tool is not None:
            canvas = self.iface.mapCanvas()
            if canvas.mapTool() is self.tool:
                canvas.unsetMapTool(self.tool)
            self.tool.clean_up()
            self.tool = None
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
            self.iface.removeToolBarIcon(action)
        self.actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
