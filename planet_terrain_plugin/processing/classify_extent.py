"""Processing algorithm ``planet_terrain:classify_extent``: one raster extent -> one labelled polygon."""
from __future__ import annotations

import json

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterFeatureSink, QgsWkbTypes)

from ..core.session import ModelRunError
from ..qgis_io import fields as result_fields
from ..qgis_io.classify import BodyError, Cancelled, check_image, classify_extent
from ..qgis_io.layer_info import crs_info
from ..qgis_io.raster_read import ExtentError, raster_source
from ..qgis_io.transform import CrsMismatchError, rect_to_crs
from .classification_base import ClassificationAlgorithm
from .guards import optional_threshold, run_model
from .outputs import RunOutput


class ClassifyExtentAlgorithm(ClassificationAlgorithm):
    LABEL, CONFIDENCE, EXECUTION_PROVIDER = "LABEL", "CONFIDENCE", "EXECUTION_PROVIDER"
    NOT_CLASSIFIED, NOTES = "NOT_CLASSIFIED", "NOTES"

    def name(self) -> str:
        return "classify_extent"

    def displayName(self) -> str:
        return "Classify raster extent"

    def shortHelpString(self) -> str:
        return ("Classifies the terrain of one extent of a Mars, Moon or Vesta raster (the whole layer when no "
                "extent is given) and writes one polygon with the landform label, its calibrated confidence, "
                "'unknown' when the model is not sure, and the probability of every class.\n"
                "MODEL: an ONNX model made for Planet Terrain (default: the installed model). THRESHOLD: "
                "abstention threshold 0-1 (default: the model's). BODY: override the body detected from the CRS.")

    def createInstance(self) -> "ClassifyExtentAlgorithm":
        return ClassifyExtentAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.add_raster_parameters()
        self.add_model_parameters()
        self.addParameter(QgsProcessingParameterFeatureSink(self.OUTPUT, "Terrain classes",
                                                            QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputString(self.LABEL, "Label ('' when the extent was not classified)"))
        self.addOutput(QgsProcessingOutputNumber(self.CONFIDENCE, "Confidence"))
        self.addOutput(QgsProcessingOutputString(self.EXECUTION_PROVIDER, "onnxruntime execution provider"))
        self.addOutput(QgsProcessingOutputString(self.NOT_CLASSIFIED, "Why the extent was not classified ('' "
                                                                      "when it was)"))
        self.addOutput(QgsProcessingOutputString(self.NOTES, "Notes on the pixels read (JSON list)"))

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802 -- QGIS's name
        """Main thread: snapshot the layer (a provider clone) and its body; nothing slow happens here."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("INPUT: no raster layer could be opened from "
                                         f"{parameters.get(self.INPUT)!r}; give a raster file or layer.")
        body_choice = self.body_choice(parameters, context)
        try:
            self._source = raster_source(layer)
            check_image(self._source)
        except ExtentError as exc:
            raise QgsProcessingException(f"INPUT: {exc}") from None
        self._info = crs_info(layer.crs(), body_choice)
        return True

    def _extent(self, parameters, context):
        """EXTENT in the layer's CRS (the whole raster when empty); never reprojected across bodies."""
        if parameters.get(self.EXTENT) in (None, ""):
            return self._source.extent
        extent_crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
        extent = self.parameterAsExtent(parameters, self.EXTENT, context)
        try:
            return rect_to_crs(extent, extent_crs, self._source.crs, context.transformContext())
        except CrsMismatchError as exc:
            raise QgsProcessingException(f"EXTENT: {exc}") from None

    def processAlgorithm(self, parameters, context, feedback):
        """Any thread: load the model, read and classify the snapshot, write the feature."""
        source, info, extent = self._source, self._info, self._extent(parameters, context)
        output = RunOutput(self, parameters, self.OUTPUT, context)  # refuses an existing file before any work
        threshold = optional_threshold(self, parameters, self.THRESHOLD, context)
        model = run_model(self, parameters, self.MODEL, context, feedback)
        try:
            outcome = classify_extent(source, extent, model, info, threshold, feedback.setProgress,
                                      feedback.isCanceled)
        except (ExtentError, BodyError) as exc:
            raise QgsProcessingException(str(exc)) from None
        except Cancelled as exc:
            return self._cancelled(str(exc), model, feedback)
        except ModelRunError as exc:
            raise QgsProcessingException(f"{self.MODEL}: {exc}. Check that the file is a Planet Terrain model.") \
                from None

        output.open(result_fields.result_fields(model.contract), QgsWkbTypes.Polygon, source.crs)
        try:
            label, confidence = self._write(outcome, model, output, feedback)
            dest_id = output.finish(model.contract)
        except Cancelled as exc:
            output.discard()
            return self._cancelled(str(exc), model, feedback)
        except BaseException:
            output.discard()
            raise
        feedback.setProgress(100)
        self._source = None  # release the provider clone now, not when Processing drops the algorithm
        return {self.OUTPUT: dest_id, self.LABEL: label, self.CONFIDENCE: confidence,
                self.EXECUTION_PROVIDER: model.provider, self.NOT_CLASSIFIED: outcome.result.skipped_reason or "",
                self.NOTES: json.dumps(outcome.notes)}

    def _cancelled(self, why: str, model, feedback) -> dict:
        """A cancel is no failure: the run ends normally with no OUTPUT (a rectangle is one cell: there is nothing
        to keep) and NOT_CLASSIFIED says why, so a task cancelled from QGIS's task bar is not a "Task failed"."""
        feedback.pushWarning(f"Cancelled: {why}.")
        self._source = None
        return {self.LABEL: "", self.CONFIDENCE: None, self.EXECUTION_PROVIDER: model.provider,
                self.NOT_CLASSIFIED: why, self.NOTES: "[]"}

    def _write(self, outcome, model, output: RunOutput, feedback) -> tuple[str, float | None]:
        """Write the outcome's feature, if any; (label, confidence), or ("", None) when not classified."""
        for note in outcome.notes:
            feedback.pushInfo(f"Note: {note}")
        decision = outcome.result.decision
        if decision is None:
            feedback.reportError(f"Not classified: {outcome.result.skipped_reason}", False)
            return "", None
        fields = result_fields.result_fields(model.contract)
        feature = result_fields.decision_feature(fields, outcome.extent, decision, model.contract, outcome.provenance)
        if feedback.isCanceled():
            raise Cancelled("cancelled while writing; nothing was written")
        output.add([feature])
        feedback.pushInfo(f"{decision.label} (confidence {decision.confidence:.2f}) on {model.provider}")
        return decision.label, decision.confidence
