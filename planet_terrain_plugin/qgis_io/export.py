"""Export a "Terrain classes" layer to GeoPackage, GeoJSON, FlatGeobuf, Shapefile or CSV -- CRS intact.

What each format needs so the planetary CRS survives is in ``formats``; the temporary files, the refusal to
replace and the atomic rename are the one writer's (``writer``), which the classification algorithms use too.
This module adds what only an export does: filters (confident features, some labels), the style copied from the
layer, the result's summary, and reading a file back the way it was meant to be read. Features are streamed
from the layer to the writer, so filtering, renaming and the CSV centroid columns need no in-memory copy of a
large grid result.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

from qgis.core import (QgsCoordinateTransformContext, QgsExpression, QgsFeatureRequest, QgsFeedback, QgsFields,
                       QgsProject, QgsVectorLayer)

from .fields import ABSTAINED_FIELD, LABEL_FIELD
from .formats import (CSV_X_FIELD, CSV_Y_FIELD, FORMATS, STYLE_NAME, ExportFormat, copy_style,  # noqa: F401
                      format_for_path, geojson_crs_wkt, shapefile_field_names)
from .formats import WriteCancelled as ExportCancelled
from .formats import WriteError as ExportError
from .writer import FileWriter, resolve_target


# -- filters -------------------------------------------------------------------------------------------------
def filter_expression(fields: QgsFields, confident_only: bool = False,
                      labels: Iterable[str] | None = None) -> str | None:
    """The QGIS expression selecting the features to export (None: all of them)."""
    parts = []
    if confident_only:
        _require_field(fields, ABSTAINED_FIELD, "only confident features")
        parts.append(f"NOT coalesce({QgsExpression.quotedColumnRef(ABSTAINED_FIELD)}, false)")
    if labels is not None:
        wanted = sorted(set(labels))
        if not wanted:
            raise ExportError("the label filter lists no labels; give at least one label or no filter")
        _require_field(fields, LABEL_FIELD, "a label filter")
        quoted = ", ".join(QgsExpression.quotedValue(v) for v in wanted)
        parts.append(f"{QgsExpression.quotedColumnRef(LABEL_FIELD)} IN ({quoted})")
    return " AND ".join(f"({p})" for p in parts) if parts else None


def _require_field(fields: QgsFields, name: str, purpose: str) -> None:
    if fields.indexOf(name) < 0:
        raise ExportError(f"{purpose} needs a '{name}' field, and the layer has none; export a Terrain classes "
                          "layer or drop the filter")


# -- the export ----------------------------------------------------------------------------------------------
@dataclass
class ExportResult:
    path: str
    format: str
    feature_count: int
    #: Original field name -> name in the file (identity except for Shapefiles).
    field_names: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def export_layer(layer: QgsVectorLayer, path: str, fmt: str | ExportFormat | None = None, *,
                 confident_only: bool = False, labels: Iterable[str] | None = None, overwrite: bool = False,
                 feedback: QgsFeedback | None = None,
                 transform_context: QgsCoordinateTransformContext | None = None) -> ExportResult:
    """Write ``layer``'s features (optionally only confident ones / some labels) to ``path``.

    ``fmt`` is a key of :data:`FORMATS` (``gpkg``, ``geojson``, ``fgb``, ``shp``, ``csv``) or None to use the
    path's extension. The file is complete or absent, and replaces an existing one only with ``overwrite``.
    """
    if layer is None or not layer.isValid():
        raise ExportError("the layer to export is not valid")
    target = resolve_target(path, fmt)
    if not layer.crs().isValid():
        raise ExportError(f"the layer '{layer.name()}' has no valid CRS; set its CRS before exporting")
    expression = filter_expression(layer.fields(), confident_only, labels)
    context = transform_context or QgsProject.instance().transformContext()
    request = QgsFeatureRequest()
    if expression:
        request.setFilterExpression(expression)
    total = max(layer.featureCount(), 1)
    with FileWriter(target, layer.fields(), layer.wkbType(), layer.crs(), context, overwrite) as out:
        for feature in layer.getFeatures(request):
            if feedback is not None and feedback.isCanceled():
                raise ExportCancelled("export cancelled; no file was written")
            out.add([feature])
            if feedback is not None and out.count % 256 == 0:
                feedback.setProgress(min(99.0, 100.0 * out.count / total))
        if feedback is not None and feedback.isCanceled():
            raise ExportCancelled("export cancelled; no file was written")
        written = out.commit(copy_style(layer))
    return ExportResult(target.path, target.spec.key, out.count, out.field_names, written)


# -- reading back --------------------------------------------------------------------------------------------
def load_export(path: str, name: str | None = None) -> QgsVectorLayer:
    """Open an export the way it was meant to be read (CSV: centroid columns as points, ``.prj`` CRS)."""
    spec = format_for_path(path)
    title = name or os.path.splitext(os.path.basename(path))[0]
    uri = path
    if spec.key == "geojson":  # keep ISO timestamps (created_utc) as the strings they were written as
        uri = f"{path}|option:DATE_AS_STRING=YES"
    elif spec.key == "csv":
        uri = (f"{path}|option:X_POSSIBLE_NAMES={CSV_X_FIELD}|option:Y_POSSIBLE_NAMES={CSV_Y_FIELD}"
               "|option:KEEP_GEOM_COLUMNS=YES")
    layer = QgsVectorLayer(uri, title, "ogr")
    if not layer.isValid():
        raise ExportError(f"'{path}' could not be opened as a vector layer")
    return layer
