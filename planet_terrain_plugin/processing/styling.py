"""Give Processing outputs the same categorised style as the map tool's layer when QGIS loads them."""
from __future__ import annotations

from qgis.core import QgsProcessingContext, QgsProcessingLayerPostProcessorInterface, QgsVectorLayer

from ..core.contract import ModelContract
from ..qgis_io.fields import LABEL_FIELD
from ..qgis_io.style import apply_style


class StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    """Applies the class palette to an output layer after Processing has loaded it into the project."""

    _alive: list["StyleOnLoad"] = []  # Processing keeps a C++ pointer only: Python must keep the object alive

    def __init__(self, contract: ModelContract) -> None:
        super().__init__()
        self.contract = contract

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802 -- QGIS's name
        if isinstance(layer, QgsVectorLayer) and layer.fields().indexOf(LABEL_FIELD) >= 0:
            apply_style(layer, self.contract)

    @classmethod
    def attach(cls, context: QgsProcessingContext, dest_id: str, contract: ModelContract) -> None:
        if context.willLoadLayerOnCompletion(dest_id):
            processor = cls(contract)
            cls._alive.append(processor)
            context.layerToLoadOnCompletionDetails(dest_id).setPostProcessor(processor)
