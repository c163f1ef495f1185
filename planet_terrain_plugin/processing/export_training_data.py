"""Processing algorithm ``planet_terrain:export_training_data``: reviewed cells -> HiRISE v3 training data.

See ``qgis_io.harvest``: the crops are read as the model read them, the labels are the reviewed ones, and the
folder is one ``make train DATA_ROOT=shared:folder`` reads next to the shared data.
"""
from __future__ import annotations

import json

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterFile, QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterVectorLayer)

from ..core.newfile import NewFileError
from ..qgis_io.harvest import HarvestError, export_training_data
from ..qgis_io.raster_read import ExtentError, raster_source
from .guards import input_problem, model_problem, run_model


class ExportTrainingDataAlgorithm(QgsProcessingAlgorithm):
    INPUT, RASTER, MODEL, OUTPUT = "INPUT", "RASTER", "MODEL", "OUTPUT"
    IMAGES, CLASS_COUNTS = "IMAGES", "CLASS_COUNTS"

    def name(self) -> str:
        return "export_training_data"

    def displayName(self) -> str:
        return "Export reviewed features as training data"

    def group(self) -> str:
        return "Classification"

    def groupId(self) -> str:  # noqa: N802 -- QGIS's name
        return "classification"

    def shortHelpString(self) -> str:
        return ("Writes the reviewed cells of a Terrain classes layer as training data in the HiRISE map-proj-v3 "
                "layout (map-proj-v3/*.jpg, labels-map-proj-v3.txt, the class map), read from RASTER exactly as the "
                "model read them. Train on it with the shared data: make train DATA_ROOT=<shared>:<this folder>. "
                "Reviewed labels outside the training classes are left out (teach a head for those).")

    def createInstance(self) -> "ExportTrainingDataAlgorithm":
        return ExportTrainingDataAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterVectorLayer(self.INPUT, "Terrain classes layer (reviewed)",
                                                            [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterRasterLayer(self.RASTER, "Raster the cells were classified on"))
        self.addParameter(QgsProcessingParameterFile(self.MODEL, "Model file (ONNX; default: installed model)",
                                                     extension="onnx", optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, "Training data folder (new)"))
        self.addOutput(QgsProcessingOutputNumber(self.IMAGES, "Images written"))
        self.addOutput(QgsProcessingOutputString(self.CLASS_COUNTS, "Images per class (JSON)"))

    def checkParameterValues(self, parameters, context):  # noqa: N802 -- QGIS's name
        """RASTER is read as the model reads it, so what classification refuses (not a raster, not an image:
        heights are not brightness) is refused here too, before any work."""
        problem = input_problem(self, parameters, self.RASTER, context) or model_problem(parameters, self.MODEL)
        if problem:
            return False, problem
        return super().checkParameterValues(parameters, context)

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        raster = self.parameterAsRasterLayer(parameters, self.RASTER, context)
        if layer is None or raster is None:
            raise QgsProcessingException("INPUT and RASTER: give the Terrain classes layer and its raster")
        model = run_model(self, parameters, self.MODEL, context, feedback)
        folder = self.parameterAsString(parameters, self.OUTPUT, context)
        try:
            result = export_training_data(layer, raster_source(raster), folder, model.contract, feedback.setProgress)
        except (HarvestError, ExtentError, NewFileError) as exc:
            raise QgsProcessingException(f"{exc}") from None
        for note in result.notes:
            feedback.reportError(f"Note: {note}", False)
        feedback.pushInfo(f"{result.images} image(s) in {result.folder}: {result.per_class}")
        return {self.OUTPUT: result.folder, self.IMAGES: result.images, self.CLASS_COUNTS: json.dumps(result.per_class)}
