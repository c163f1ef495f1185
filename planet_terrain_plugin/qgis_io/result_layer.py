"""The "Terrain classes" memory layer: one per source raster, in its CRS, appended to on every run."""
from __future__ import annotations

from typing import Iterable

from qgis.core import QgsCoordinateReferenceSystem, QgsFeature, QgsProject, QgsVectorLayer

from ..core.contract import ModelContract
from .fields import result_fields
from .style import apply_style

LAYER_NAME = "Terrain classes"
#: Custom layer property tying a result layer to the id of the raster it describes.
SOURCE_PROPERTY = "planet_terrain/source_layer_id"


def layer_title(source_name: str) -> str:
    return f"{LAYER_NAME} ({source_name})"


def find_result_layer(project: QgsProject, source_layer_id: str, contract: ModelContract) -> QgsVectorLayer | None:
    """The existing result layer for this raster whose fields fit ``contract`` (another model's classes don't)."""
    wanted = result_fields(contract).names()
    for layer in project.mapLayers().values():
        if (isinstance(layer, QgsVectorLayer) and layer.customProperty(SOURCE_PROPERTY) == source_layer_id
                and layer.fields().names() == wanted):
            return layer
    return None


def create_result_layer(crs: QgsCoordinateReferenceSystem, contract: ModelContract, source_name: str,
                        source_layer_id: str) -> QgsVectorLayer:
    """A new, styled, empty memory layer in ``crs`` (set directly: planetary CRSs have no authid for a URI)."""
    layer = QgsVectorLayer("Polygon", layer_title(source_name), "memory")
    layer.setCrs(crs)
    layer.dataProvider().addAttributes(result_fields(contract).toList())
    layer.updateFields()
    layer.setCustomProperty(SOURCE_PROPERTY, source_layer_id)
    apply_style(layer, contract)
    return layer


def result_layer_for(project: QgsProject, crs: QgsCoordinateReferenceSystem, contract: ModelContract,
                     source_name: str, source_layer_id: str) -> QgsVectorLayer:
    """The result layer for a raster, created and added to ``project`` when it does not exist yet."""
    layer = find_result_layer(project, source_layer_id, contract)
    if layer is None:
        layer = create_result_layer(crs, contract, source_name, source_layer_id)
        project.addMapLayer(layer)
    return layer


def append_features(layer: QgsVectorLayer, features: Iterable[QgsFeature]) -> int:
    """Add features (built on ``layer``'s fields) and refresh; returns how many were added."""
    features = list(features)
    ok, _ = layer.dataProvider().addFeatures(features)
    if not ok:
        raise RuntimeError(f"could not add {len(features)} feature(s) to '{layer.name()}': "
                           f"{layer.dataProvider().lastError()}")
    layer.updateExtents()
    layer.triggerRepaint()
    return len(features)
