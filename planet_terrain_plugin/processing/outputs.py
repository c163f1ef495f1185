"""The OUTPUT of a classification algorithm: the plugin's one writer for a file, Processing's sink otherwise.

A file path (what ``qgis_process`` and the Processing dialog pass) goes to ``qgis_io.writer``: the path QGIS
would have written is resolved and checked before any work, the features stream into temporary files, and the
file appears complete -- with the CRS every format can keep and the style -- or not at all. ``memory:``,
``TEMPORARY_OUTPUT`` (the panel's choice) and data-source URIs (``ogr:``, ``postgis:``, ...) stay with QGIS's
sink, which adds a layer rather than replacing a file.
"""
from __future__ import annotations

from qgis.core import (QgsFeatureSink, QgsProcessingContext, QgsProcessingException,
                       QgsProcessingOutputLayerDefinition, QgsProperty)

from ..core.contract import ModelContract
from ..qgis_io.style import apply_style
from ..qgis_io.writer import FileWriter, Target, WriteError, check_free, resolve_target
from .styling import StyleOnLoad

#: Destinations QGIS's own sink handles (they add a layer; they replace no file).
SINK_PREFIXES = ("memory:", "ogr:", "postgis:", "postgres:", "spatialite:", "mssql:", "oracle:", "hana:")


def _destination(parameters: dict, name: str, context):
    """(the destination text, the project to load it into or None)."""
    value = parameters.get(name)
    project = None
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        project = value.destinationProject
        value = value.sink
    if isinstance(value, QgsProperty):
        value = value.valueAsString(context.expressionContext())
    return (value.strip() if isinstance(value, str) else value), project


def file_target(parameters: dict, name: str, context) -> Target | None:
    """The file the sink parameter ``name`` will write, or None when QGIS's sink handles it; refused with a
    message naming the parameter when it cannot be written without touching an existing file."""
    text, _ = _destination(parameters, name, context)
    if not isinstance(text, str) or not text or text == "TEMPORARY_OUTPUT" or text.startswith(SINK_PREFIXES):
        return None
    try:
        target = resolve_target(text)
        check_free(target)
    except WriteError as exc:
        raise QgsProcessingException(f"{name}: {exc}") from None
    return target


class RunOutput:
    """Opened once the fields and CRS are known; ``add`` features, then ``finish`` (or ``discard``)."""

    def __init__(self, alg, parameters: dict, name: str, context) -> None:
        self._alg, self._parameters, self.name, self._context = alg, parameters, name, context
        self.target = file_target(parameters, name, context)  # checked before any work
        self._file: FileWriter | None = None
        self._sink = None
        self._dest_id = ""

    def open(self, fields, wkb_type, crs) -> None:
        if self.target is not None:
            try:
                self._file = FileWriter(self.target, fields, wkb_type, crs, self._context.transformContext())
            except WriteError as exc:
                raise QgsProcessingException(f"{self.name}: {exc}") from None
            self._dest_id = self.target.path
            return
        sink, self._dest_id = self._alg.parameterAsSink(self._parameters, self.name, self._context, fields,
                                                        wkb_type, crs)
        if sink is None:
            raise QgsProcessingException(self._alg.invalidSinkError(self._parameters, self.name))
        self._sink = sink

    def add(self, features: list) -> None:
        """Write ``features``; a failure discards what this run wrote and says why."""
        if self._file is not None:
            try:
                self._file.add(features)
            except WriteError as exc:
                self.discard()
                raise QgsProcessingException(f"{self.name}: {exc}") from None
        elif features and not self._sink.addFeatures(features, QgsFeatureSink.FastInsert):
            error = self._sink.lastError()
            self.discard()
            raise QgsProcessingException(f"{self.name}: writing failed ({error or 'no reason given'}). Check that "
                                         "the destination can be written and that the disk is not full.")

    def finish(self, contract: ModelContract) -> str:
        """Make the result final (the file gets its name, CRS and style) and have QGIS load it when asked."""
        if self._file is not None:
            try:
                self._file.commit(lambda layer: apply_style(layer, contract))
            except WriteError as exc:
                raise QgsProcessingException(f"{self.name}: {exc}") from None
            self._file = None
            _, project = _destination(self._parameters, self.name, self._context)
            if project is not None:
                title = self._alg.parameterDefinition(self.name).description()
                self._context.addLayerToLoadOnCompletion(
                    self._dest_id, QgsProcessingContext.LayerDetails(title, project, self.name))
        else:
            self._sink = None  # flushes a file-backed sink
        StyleOnLoad.attach(self._context, self._dest_id, contract)
        return self._dest_id

    def discard(self) -> None:
        """Remove what this run wrote to a file (nothing else); a sink is closed and not loaded on completion
        (a temporary layer would otherwise show the cells of a run that wrote nothing)."""
        if self._file is not None:
            self._file.discard()
            self._file = None
        self._sink = None
        pending = self._context.layersToLoadOnCompletion()
        if self._dest_id in pending:
            del pending[self._dest_id]
            self._context.setLayersToLoadOnCompletion(pending)
