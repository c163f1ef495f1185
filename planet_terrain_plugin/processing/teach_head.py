"""Processing algorithm ``planet_terrain:teach_head``: labelled points or polygons on a raster -> a head file.

The head (``core.heads``) is fitted on the frozen embedding of the model, in seconds on the CPU; its file is
given to the classification algorithms' HEAD parameter (or ``classify --head``), whose results then carry its
classes, name and version. The file is remembered (``model_library.remember_head``), so the model manager and the
panel's head picker offer it at once.
"""
from __future__ import annotations

import json
import os

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterFeatureSource, QgsProcessingParameterField,
                       QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer, QgsProcessingParameterString)

from ..core.heads import HEAD_SUFFIX, HeadError, head_path, save_head
from ..core.newfile import NewFileError
from ..qgis_io.model_library import remember_head
from ..qgis_io.raster_read import ExtentError, raster_source
from ..qgis_io.transform import CrsMismatchError
from ..qgis_io.teach import default_cell_pixels, examples_from_layer, teach_from_examples
from .classification_base import ClassificationAlgorithm
from .guards import run_model


class TeachHeadAlgorithm(ClassificationAlgorithm):
    """In the classification group, with its INPUT and MODEL checks (no HEAD: a head is taught on the model)."""

    EXAMPLES, LABEL_FIELD, CELL_SIZE = "EXAMPLES", "LABEL_FIELD", "CELL_SIZE"
    NAME, VERSION, CV_ACCURACY, REPORT = "NAME", "VERSION", "CV_ACCURACY", "REPORT"

    def name(self) -> str:
        return "teach_head"

    def displayName(self) -> str:
        return "Teach a head from labelled examples"

    def shortHelpString(self) -> str:
        return ("Teaches new classes (e.g. 'gully', 'lunar pit') from points or polygons drawn on a raster: each "
                "example's cell is embedded by the model and a small classifier (a head) is fitted on those "
                "embeddings, calibrated by cross-validation. Label background examples 'other': the head learns to "
                "abstain on terrain like them. A point stands for a cell of CELL_SIZE pixels around it (default: "
                "the grid's); a polygon for its bounding box. Give the head file to HEAD of Classify raster extent "
                "or Classify raster as a grid.")

    def createInstance(self) -> "TeachHeadAlgorithm":
        return TeachHeadAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster layer"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.EXAMPLES, "Examples (points or polygons)", [QgsProcessing.TypeVectorPoint,
                                                             QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterField(self.LABEL_FIELD, "Field with the class names",
                                                      parentLayerParameterName=self.EXAMPLES))
        self.addParameter(QgsProcessingParameterFile(self.MODEL, "Model file (ONNX; default: installed model)",
                                                     extension="onnx", optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.CELL_SIZE, "Cell size around a point, in pixels "
                                                       "(default: the grid's)", QgsProcessingParameterNumber.Double,
                                                       optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterString(self.NAME, "Head name (default: the file name)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterString(self.VERSION, "Head version", defaultValue="1"))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Head file",
                                                                f"Head files (*{HEAD_SUFFIX})"))
        self.addOutput(QgsProcessingOutputNumber(self.CV_ACCURACY, "Cross-validated accuracy (-1: too few examples)"))
        self.addOutput(QgsProcessingOutputString(self.REPORT, "Classes, examples and accuracy per class (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        examples_layer = self.parameterAsVectorLayer(parameters, self.EXAMPLES, context)
        if layer is None or examples_layer is None:
            raise QgsProcessingException("INPUT and EXAMPLES: give a raster and a points or polygons layer")
        target = head_path(self.parameterAsFileOutput(parameters, self.OUTPUT, context))
        if os.path.exists(target):
            raise QgsProcessingException(f"OUTPUT: '{target}' already exists, and Planet Terrain never replaces a "
                                         "file; choose another name")
        model = run_model(self, parameters, self.MODEL, context, feedback)
        try:
            source = raster_source(layer)
            size = self.parameterAsDouble(parameters, self.CELL_SIZE, context) \
                if parameters.get(self.CELL_SIZE) not in (None, "") else 0.0
            cell = size if size > 0 else default_cell_pixels(source, model)
            label_field = self.parameterAsString(parameters, self.LABEL_FIELD, context)
            examples = examples_from_layer(examples_layer, label_field, source, cell, context.transformContext())
            feedback.pushInfo(f"{len(examples)} example(s); a point stands for {cell:g} x {cell:g} pixels")
            name = self.parameterAsString(parameters, self.NAME, context) or os.path.basename(target).split(".")[0]
            version = self.parameterAsString(parameters, self.VERSION, context) or "1"
            outcome = teach_from_examples(source, examples, model, name, version, feedback.setProgress,
                                          feedback.isCanceled)
            written = save_head(outcome.head, target)
        except (HeadError, ExtentError, CrsMismatchError, NewFileError) as exc:
            raise QgsProcessingException(str(exc)) from None
        try:
            feedback.pushInfo(f"Offered in the panel's head picker and in Manage models: {remember_head(written)}")
        except OSError as exc:  # the head is written; only the copy a temporary file needs failed
            feedback.reportError(f"Note: the head is not offered in the panel ({exc}); install it from its file", False)
        for note in outcome.notes:
            feedback.reportError(f"Note: {note}", False)
        cv = outcome.head.cv
        feedback.pushInfo(f"Head '{name}' {version}: classes {list(outcome.head.classes)}; cross-validated accuracy "
                          f"per class {cv.get('per_class_accuracy', cv.get('note'))}")
        accuracy = cv.get("accuracy")
        return {self.OUTPUT: written, self.CV_ACCURACY: -1.0 if accuracy is None else float(accuracy),
                self.REPORT: json.dumps({"classes": list(outcome.head.classes), "cv": cv, "notes": outcome.notes})}
