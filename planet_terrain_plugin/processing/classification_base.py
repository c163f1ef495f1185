"""What ``classify_extent`` and ``classify_grid`` share: their group, the raster and extent they read, the
model, threshold and body parameters, and the check that names a wrong INPUT.

One place, so both algorithms keep the same parameter names, titles and bounds (the dock and ``qgis_process``
users pass the same keys to either).
"""
from __future__ import annotations

import math

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingParameterEnum, QgsProcessingParameterExtent,
                       QgsProcessingParameterFile, QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer)

from ..qgis_io.layer_info import BODY_CHOICES
from .guards import HEAD_PARAMETER, input_problem, model_problem


class ClassificationAlgorithm(QgsProcessingAlgorithm):
    """Base of the Planet Terrain classification algorithms (not registered itself)."""

    INPUT, EXTENT, MODEL, THRESHOLD, BODY, OUTPUT = "INPUT", "EXTENT", "MODEL", "THRESHOLD", "BODY", "OUTPUT"
    HEAD = HEAD_PARAMETER
    #: Number parameters refused when not finite: QGIS's range check lets NaN through (it is neither below a
    #: minimum nor above a maximum) and names no range.
    FINITE_NUMBERS: tuple[str, ...] = (THRESHOLD,)
    #: What an empty value of a number parameter means, added to the message that refuses a non-finite one.
    EMPTY_MEANS: dict[str, str] = {THRESHOLD: "empty: the model's own"}

    def group(self) -> str:
        return "Classification"

    def groupId(self) -> str:  # noqa: N802 -- QGIS's name
        return "classification"

    def add_raster_parameters(self) -> None:
        """INPUT (the raster) and EXTENT (optional: the whole layer when empty)."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster layer"))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent (whole layer when empty)",
                                                       optional=True))

    def add_model_parameters(self) -> None:
        """MODEL (default: the installed model), THRESHOLD (default: the model's), BODY (default: from CRS) and
        HEAD (a head file from ``teach_head``: the results carry its classes, name and version)."""
        self.addParameter(QgsProcessingParameterFile(self.MODEL, "Model file (ONNX; default: installed model)",
                                                     extension="onnx", optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.THRESHOLD, "Abstention threshold (default: model's)",
                                                       QgsProcessingParameterNumber.Double, optional=True,
                                                       minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterEnum(self.BODY, "Body", options=list(BODY_CHOICES),
                                                     defaultValue=0, optional=True))
        self.addParameter(QgsProcessingParameterFile(self.HEAD, "Head taught on the model (JSON; default: none, "
                                                     "the model's own classes)", extension="json", optional=True))

    def body_choice(self, parameters, context) -> str:
        """The BODY parameter as its choice text ("auto" lets the CRS decide)."""
        return BODY_CHOICES[self.parameterAsEnum(parameters, self.BODY, context)]

    def checkParameterValues(self, parameters, context):  # noqa: N802 -- QGIS's name
        """Before QGIS's generic "could not load source layer" / "Incorrect parameter value": say what INPUT is
        when it is not a raster, and what MODEL is when it cannot be a model file (a folder, say)."""
        problem = input_problem(self, parameters, self.INPUT, context) or model_problem(parameters, self.MODEL)
        for name in self.FINITE_NUMBERS:
            problem = problem or self._number_problem(parameters, name, context)
        if problem:
            return False, problem
        return super().checkParameterValues(parameters, context)

    def _number_problem(self, parameters, name: str, context) -> str | None:
        """Why the number parameter ``name`` cannot be used (not finite), or None; the range comes from its
        definition."""
        if parameters.get(name) in (None, ""):
            return None
        value = self.parameterAsDouble(parameters, name, context)
        if math.isfinite(value):
            return None
        definition = self.parameterDefinition(name)
        kind = "a whole number" if definition.dataType() == QgsProcessingParameterNumber.Integer else "a number"
        low, high = definition.minimum(), definition.maximum()
        valid = f"{kind} between {low:g} and {high:g}" if high < 1e300 else f"{kind} of at least {low:g}"
        empty = f" ({self.EMPTY_MEANS[name]})" if name in self.EMPTY_MEANS else ""
        return f"{name}: {value} is not a finite number; give {valid}{empty}."
