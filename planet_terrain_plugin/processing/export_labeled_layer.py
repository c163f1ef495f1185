"""Processing algorithm ``planet_terrain:export_labeled_layer``: a Terrain classes layer to a file, CRS intact.

A thin wrapper: every rule (formats, planetary CRS round trip, Shapefile names, filters, atomic writes,
refusing to overwrite) lives in ``qgis_io.export``; this only maps parameters to it and errors to messages.
"""
from __future__ import annotations

import json

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterBoolean,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterString,
                       QgsProcessingParameterVectorLayer)

from ..qgis_io import export

#: The file-dialog filter, one entry per format of ``qgis_io.export.FORMATS`` (GeoPackage first: the default).
_NAMES = {"gpkg": "GeoPackage", "geojson": "GeoJSON", "fgb": "FlatGeobuf", "shp": "ESRI Shapefile",
          "csv": "CSV (centroid x/y)"}
FILE_FILTER = ";;".join(f"{_NAMES[k]} (*{f.extension})" for k, f in export.FORMATS.items())


class ExportLabeledLayerAlgorithm(QgsProcessingAlgorithm):
    INPUT, CONFIDENT_ONLY, LABELS, OVERWRITE, OUTPUT = "INPUT", "CONFIDENT_ONLY", "LABELS", "OVERWRITE", "OUTPUT"
    FEATURE_COUNT, FIELD_NAMES = "FEATURE_COUNT", "FIELD_NAMES"

    def name(self) -> str:
        return "export_labeled_layer"

    def displayName(self) -> str:
        return "Export terrain classes"

    def group(self) -> str:
        return "Export"

    def groupId(self) -> str:
        return "export"

    def shortHelpString(self) -> str:
        return ("Writes a Terrain classes layer to GeoPackage (with its style as the default style), GeoJSON, "
                "FlatGeobuf, Shapefile or CSV (one row per feature with its centroid as x/y in the layer CRS), "
                "keeping the planetary CRS so the file reopens on the right body.\n"
                "CONFIDENT_ONLY drops 'unknown' (abstained) features; LABELS keeps only the listed labels "
                "(comma-separated, e.g. 'crater, spider'). Shapefile field names are shortened to 10 characters "
                "(p_slope_streak -> p_slope_st; the mapping is in the log and the FIELD_NAMES output).\n"
                "An existing file is never replaced unless OVERWRITE is checked; an interrupted export leaves "
                "no partial file.")

    def createInstance(self) -> "ExportLabeledLayerAlgorithm":
        return ExportLabeledLayerAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterVectorLayer(self.INPUT, "Terrain classes layer",
                                                            [QgsProcessing.TypeVectorAnyGeometry]))
        self.addParameter(QgsProcessingParameterBoolean(self.CONFIDENT_ONLY, "Only confident (not 'unknown')",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterString(self.LABELS, "Only these labels (comma-separated)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterBoolean(self.OVERWRITE, "Replace an existing file",
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Output file", FILE_FILTER))
        self.addOutput(QgsProcessingOutputNumber(self.FEATURE_COUNT, "Features written"))
        self.addOutput(QgsProcessingOutputString(self.FIELD_NAMES, "Field name in the file, by field (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        path = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        labels_text = self.parameterAsString(parameters, self.LABELS, context).strip()
        labels = [s.strip() for s in labels_text.split(",") if s.strip()] if labels_text else None
        try:
            result = export.export_layer(
                layer, path, confident_only=self.parameterAsBoolean(parameters, self.CONFIDENT_ONLY, context),
                labels=labels, overwrite=self.parameterAsBoolean(parameters, self.OVERWRITE, context),
                feedback=feedback, transform_context=context.transformContext())
        except export.ExportError as exc:
            raise QgsProcessingException(str(exc)) from None
        renamed = {k: v for k, v in result.field_names.items() if k != v}
        if renamed:
            feedback.pushInfo("Shapefile field names: " + ", ".join(f"{k} -> {v}" for k, v in renamed.items()))
        feedback.pushInfo(f"Wrote {result.feature_count} feature(s) to {result.path}")
        return {self.OUTPUT: result.path, self.FEATURE_COUNT: result.feature_count,
                self.FIELD_NAMES: json.dumps(result.field_names)}
