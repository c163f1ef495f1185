"""Inputs of the Planet Terrain algorithms: the model, the threshold and the raster, each refused with a message
naming the parameter and what to do (the outputs are ``outputs.RunOutput``'s)."""
from __future__ import annotations

import os

from qgis.core import QgsMapLayer, QgsProcessingException, QgsRasterLayer

from ..core.contract import ContractError, check_model_file
from ..core.heads import HeadError, attach_head, read_head
from ..core.models import NoModelError
from ..core.session import TerrainModel
from ..qgis_io.classify import image_problem
from ..qgis_io.model_choice import load_run_model
from ..qgis_io.raster_read import web_layer_problem


#: The optional head file parameter of the classification algorithms (``core.heads``).
HEAD_PARAMETER = "HEAD"


def run_model(alg, parameters: dict, name: str, context, feedback, grid: bool = False) -> TerrainModel:
    """The model a run uses (the file in parameter ``name``, else the installed one, with the head in
    :data:`HEAD_PARAMETER` when the algorithm has one and it is given), on the chosen provider; every way that can
    fail becomes a message naming the parameter, and the log says what runs where.

    ``grid``: the session that keeps several batches in flight (``model.layout``), as the log says."""
    try:
        model = load_run_model(alg.parameterAsFile(parameters, name, context) or None, grid)
    except (NoModelError, ContractError, ImportError, ValueError, RuntimeError) as exc:
        raise QgsProcessingException(f"{name}: {exc}") from None
    head_file = alg.parameterAsFile(parameters, HEAD_PARAMETER, context) \
        if alg.parameterDefinition(HEAD_PARAMETER) is not None else ""
    if head_file:
        try:
            model = attach_head(model, read_head(head_file))
        except HeadError as exc:
            raise QgsProcessingException(f"{HEAD_PARAMETER}: {exc}") from None
    layout = f"; {model.layout.describe()}" if grid else ""
    feedback.pushInfo(f"Model {model.contract.model_name} {model.contract.model_version} on {model.provider_note}"
                      f"{layout}")
    return model


def model_problem(parameters: dict, name: str) -> str | None:
    """Why the model file parameter ``name`` cannot be a model (a folder, a missing or empty file), or None.

    Checked before QGIS's own check of the file parameter, which says only "Incorrect parameter value" for a
    folder."""
    value = parameters.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        check_model_file(value)
    except ContractError as exc:
        return f"{name}: {exc}"
    return None


def optional_threshold(alg, parameters: dict, name: str, context) -> float | None:
    """The abstention threshold given for this run, or None for the model's own."""
    if parameters.get(name) in (None, ""):
        return None
    return alg.parameterAsDouble(parameters, name, context)  # finite and in range: checkParameterValues


def input_problem(alg, parameters: dict, name: str, context) -> str | None:
    """Why the raster parameter ``name`` cannot be used (a vector layer or file, a missing file), or None."""
    value = parameters.get(name)
    if value in (None, ""):
        return f"{name}: no raster layer given; choose a raster layer or file (GeoTIFF, ISIS3 cube, ...)."
    if isinstance(value, QgsMapLayer) and not isinstance(value, QgsRasterLayer):
        return (f"{name}: '{value.name()}' is a vector layer, not a raster; choose the raster layer to "
                "classify (GeoTIFF, ISIS3 cube, ...).")
    layer = alg.parameterAsRasterLayer(parameters, name, context)
    if layer is not None:
        problem = web_layer_problem(layer) or image_problem(layer.dataProvider(), layer.name())
        return f"{name}: {problem}" if problem else None
    if not isinstance(value, str):
        return None  # an expression or other definition: QGIS's own message applies
    text = value
    if os.path.isfile(text.split("|")[0]):
        return (f"{name}: '{text}' is not a raster QGIS can open (a vector file, or a damaged or unsupported "
                "image?); choose a raster layer or file (GeoTIFF, ISIS3 cube, ...).")
    if os.sep in text or "." in os.path.basename(text):
        return f"{name}: the file '{text}' does not exist; check the path, or choose a layer of the project."
    return None  # a layer id or name QGIS resolves itself; its own message applies
