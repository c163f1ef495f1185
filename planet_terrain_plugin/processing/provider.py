"""The "Planet Terrain" Processing provider (id ``planet_terrain``)."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..gui.resources import icon_path
from .classify_extent import ClassifyExtentAlgorithm
from .classify_grid import ClassifyGridAlgorithm
from .classify_mosaic import ClassifyMosaicAlgorithm
from .export_labeled_layer import ExportLabeledLayerAlgorithm

PROVIDER_ID = "planet_terrain"


class PlanetTerrainProvider(QgsProcessingProvider):
    """Registers the plugin's algorithms; QGIS and qgis_process find them as ``planet_terrain:<name>``."""

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "Planet Terrain"

    def longName(self) -> str:
        return "Planet Terrain: planetary landform classification"

    def icon(self) -> QIcon:
        return QIcon(icon_path())

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(ClassifyExtentAlgorithm())
        self.addAlgorithm(ClassifyGridAlgorithm())
        self.addAlgorithm(ExportLabeledLayerAlgorithm())
        self.addAlgorithm(ClassifyMosaicAlgorithm())
