"""Inputs and file outputs of the Planet Terrain algorithms: say what a wrong input is; never replace a file,
never leave half of one behind.

QGIS Processing creates a sink's file with "create or overwrite": an existing GeoPackage would be replaced
whole, with any other layers in it. Our algorithms refuse instead (the rule ``export_labeled_layer`` follows
too), and remove the file they created when writing into it fails (read-only medium, full disk) or the run is
cancelled, so a failed run leaves nothing that looks like a result.

Only plain file paths are guarded; ``memory:``, ``TEMPORARY_OUTPUT`` and data-source URIs (``ogr:...``,
``postgis:...``, ``path|layername=...``, which add a layer rather than replace a file) are left to QGIS.
"""
from __future__ import annotations

import os

from qgis.core import (QgsMapLayer, QgsProcessingException, QgsProcessingOutputLayerDefinition, QgsProperty,
                       QgsRasterLayer)

from ..core.contract import ContractError, check_model_file
from ..core.models import NoModelError
from ..core.session import ParallelLayout, TerrainModel
from ..qgis_io.model_choice import load_grid_model, load_run_model
from ..qgis_io.raster_read import web_layer_problem

#: Files a vector driver may write next to the main file (Shapefile, CSV); removed with it on failure.
_SIDECARS = (".shx", ".dbf", ".prj", ".cpg", ".qix", ".csvt", "-wal", "-shm", "-journal")


def run_model(alg, parameters: dict, name: str, context, feedback) -> TerrainModel:
    """The model a run uses (the file in parameter ``name``, else the installed one), on the chosen provider;
    every way that can fail becomes a message naming the parameter, and the log says what runs where."""
    model = _loaded(lambda: load_run_model(alg.parameterAsFile(parameters, name, context) or None), name)
    feedback.pushInfo(f"Model {model.contract.model_name} {model.contract.model_version} on {model.provider_note}")
    return model


def run_grid_model(alg, parameters: dict, name: str, context, feedback) -> tuple[TerrainModel, ParallelLayout]:
    """:func:`run_model` for a grid: the session that keeps several batches in flight, and how many."""
    model, layout = _loaded(lambda: load_grid_model(alg.parameterAsFile(parameters, name, context) or None), name)
    feedback.pushInfo(f"Model {model.contract.model_name} {model.contract.model_version} on {model.provider_note}; "
                      f"{layout.describe()}")
    return model, layout


def _loaded(load, name: str):
    try:
        return load()
    except (NoModelError, ContractError, ImportError, ValueError, RuntimeError) as exc:
        raise QgsProcessingException(f"{name}: {exc}") from None


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
    return alg.parameterAsDouble(parameters, name, context)


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
        problem = web_layer_problem(layer)
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


def destination_path(parameters: dict, name: str, context) -> str | None:
    """The plain file path the sink parameter ``name`` will write, or None when it is not a plain file."""
    value = parameters.get(name)
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        value = value.valueAsString(context.expressionContext())
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or value == "TEMPORARY_OUTPUT" or "|" in value or value.startswith(
            ("memory:", "ogr:", "postgis:", "spatialite:", "mssql:", "oracle:", "hana:")):
        return None
    return os.path.abspath(value)


class FileOutput:
    """The guarded file behind a sink parameter: refused when it exists, removable when a run fails."""

    def __init__(self, parameters: dict, name: str, context) -> None:
        self.name = name
        self.path = destination_path(parameters, name, context)
        if self.path and os.path.exists(self.path):
            raise QgsProcessingException(
                f"{name}: '{self.path}' already exists, and Planet Terrain never replaces a file (a GeoPackage may "
                "hold other layers that would be lost). Choose another file name, or delete the file first.")
        # Files that may belong to this output; those already there belong to someone else and are never removed.
        self._ours = [c for c in self._candidates() if not os.path.exists(c)]

    def _candidates(self) -> list[str]:
        if not self.path:
            return []
        stem = os.path.splitext(self.path)[0]
        return [self.path] + [self.path + s for s in _SIDECARS if s.startswith("-")] + [
            stem + s for s in _SIDECARS if not s.startswith("-")]

    def created_error(self, exc: Exception) -> QgsProcessingException:
        """A sink that could not be created: QGIS's reason plus where to look."""
        folder = os.path.dirname(self.path) if self.path else ""
        where = f" the folder '{folder}'" if folder else " the destination"
        return QgsProcessingException(f"{self.name}: {exc}. Check that{where} exists, that you may write there, "
                                      "and that the disk is not full; or choose another destination.")

    def discard(self) -> None:
        """Remove the file this run created (and its sidecars); a no-op for memory and database outputs."""
        for candidate in self._ours:
            try:
                os.remove(candidate)
            except OSError:
                pass
