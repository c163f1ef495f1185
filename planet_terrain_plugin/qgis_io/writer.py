"""The one writer of every vector file the plugin writes: classification outputs and exports alike.

A file is complete or absent, and never replaces what a user has:

* the name is resolved to the path that will really be written (a name without an extension becomes a
  GeoPackage; ``path|layername=NAME`` names the layer inside a *new* GeoPackage), and that path and every
  sidecar the format writes (``.dbf``, ``.prj``, ``-wal``, ...) is checked before any work;
* features stream into hidden temporary files in the target folder (same file system), which carry this
  process's id, so leftovers of a killed run are recognised and removed by the next write to the same name;
* the CRS and the style are added per format (``formats``), then the files are *linked* to their final names:
  a link fails when the name exists, so a run that finishes second (two runs to one output) can never replace
  the first one's file. ``overwrite`` (the user asked) renames over the old files instead;
* any failure or cancel removes this run's temporaries and nothing else.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterable

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransformContext, QgsFeature, QgsField,
                       QgsFields, QgsGeometry, QgsVectorFileWriter, QgsVectorLayer, QgsWkbTypes)
from qgis.PyQt.QtCore import QVariant

from ..core.newfile import link_new
from . import formats
from .formats import (CSV_X_FIELD, CSV_Y_FIELD, FORMATS, SQLITE_SIDE_FILES, WKT2, ExportFormat, WriteCancelled,
                      WriteError)

#: Marks a temporary file of this writer: ``.<stem>.<TEMP_TAG><pid>.<random>.partial``.
TEMP_TAG = "pt-"
Style = Callable[[QgsVectorLayer], None]


@dataclass(frozen=True)
class Target:
    """Where a write ends up: the main file, its format and the layer name inside it."""

    path: str
    spec: ExportFormat
    layer_name: str

    @property
    def files(self) -> list[str]:
        """The main file and every sidecar the format writes (their presence means "taken")."""
        stem = os.path.splitext(self.path)[0]
        sides = [stem + ext for ext in self.spec.sidecars]
        if self.spec.key == "gpkg":
            sides += [self.path + s for s in SQLITE_SIDE_FILES]
        return [self.path] + sides


def resolve_target(text: str, fmt: str | ExportFormat | None = None) -> Target:
    """The file a destination string will really write (see the module docstring); :class:`WriteError` for a
    name that cannot be written as given."""
    path, _, options = text.partition("|")
    layer_name = ""
    if options:
        key, _, value = options.partition("=")
        if key.strip().lower() != "layername" or not value.strip() or "|" in value:
            raise WriteError(f"'{text}': only '|layername=NAME' may follow a file name; give a plain file path")
        layer_name = value.strip()
    path = os.path.abspath(os.path.expanduser(path.strip()))
    if os.path.isdir(path):
        raise WriteError(f"'{path}' is a folder; give a file name in it (e.g. {os.path.join(path, 'classes.gpkg')})")
    if isinstance(fmt, str):
        fmt = FORMATS[fmt]
    if fmt is None and not os.path.splitext(path)[1]:
        fmt = FORMATS["gpkg"]
    spec = fmt or formats.format_for_path(path)
    if os.path.splitext(path)[1].lower() != spec.extension and not (
            spec.key == "geojson" and path.lower().endswith(".json")):
        path += spec.extension
    if layer_name and spec.key != "gpkg":
        raise WriteError(f"'{text}': a layer name needs a GeoPackage (.gpkg); {spec.driver} files hold one layer")
    return Target(path, spec, layer_name or os.path.splitext(os.path.basename(path))[0])


def check_free(target: Target, overwrite: bool = False) -> None:
    """:class:`WriteError` unless ``target`` can be written without touching anything that exists."""
    folder = os.path.dirname(target.path)
    if not os.path.isdir(folder):
        raise WriteError(f"the folder '{folder}' does not exist; create it or choose another folder")
    if target.spec.key == "gpkg" and any(os.path.exists(target.path + s) for s in SQLITE_SIDE_FILES):
        raise WriteError(f"'{target.path}' is open in another program (its -wal/-journal file exists); close it "
                         "there, or choose another name")
    existing = [f for f in target.files if os.path.exists(f)]
    if existing and not overwrite:
        raise WriteError(f"'{existing[0]}' already exists, and Planet Terrain never replaces a file (a GeoPackage "
                         "may hold other layers, a .dbf or .prj may belong to another Shapefile). Choose another "
                         "file name, or delete the file first.")


class FileWriter:
    """One file being written: ``add`` features, then ``commit`` (or ``discard``); a context manager that
    discards on any exception."""

    def __init__(self, target: Target, fields: QgsFields, wkb_type: QgsWkbTypes.Type,
                 crs: QgsCoordinateReferenceSystem, transform_context: QgsCoordinateTransformContext,
                 overwrite: bool = False) -> None:
        check_free(target, overwrite)
        if not crs.isValid():
            raise WriteError("the layer has no valid CRS; set its CRS before writing it to a file")
        self.target, self.crs, self.overwrite = target, crs, overwrite
        self.count = 0
        spec = target.spec
        self.field_names = (formats.shapefile_field_names(fields.names()) if spec.key == "shp"
                            else {n: n for n in fields.names()})
        self._fields = _file_fields(fields, self.field_names, spec)
        folder, stem = os.path.split(os.path.splitext(target.path)[0])
        remove_stale_temporaries(folder, stem)
        self._temp_stem = _reserve_temp_stem(folder, stem)
        self._temp_path = self._temp_stem + os.path.splitext(target.path)[1]
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName, options.layerName, options.fileEncoding = spec.driver, target.layer_name, "UTF-8"
        options.layerOptions = list(spec.layer_options)
        geometry_type = QgsWkbTypes.NoGeometry if spec.key == "csv" else wkb_type
        self._writer = QgsVectorFileWriter.create(self._temp_path, self._fields, geometry_type, crs,
                                                  transform_context, options)
        if self._writer.hasError() != QgsVectorFileWriter.NoError:
            message = self._writer.errorMessage()
            self.discard()
            raise WriteError(f"cannot create a {spec.driver} file in '{folder}' ({message}); nothing was written. "
                             "Check that the disk is not full and that you may write there.")

    def __enter__(self) -> "FileWriter":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            self.discard()

    def add(self, features: Iterable[QgsFeature]) -> None:
        """Write ``features`` (the fields given at creation, in that order); :class:`WriteError` on failure."""
        for feature in features:
            out = QgsFeature(self._fields)
            attributes = feature.attributes()
            if self.target.spec.key == "csv":
                attributes = list(_centroid(feature.geometry())) + attributes
            else:
                out.setGeometry(feature.geometry())
            out.setAttributes(attributes)
            if not self._writer.addFeature(out):
                raise WriteError(f"writing into '{os.path.dirname(self.target.path)}' failed "
                                 f"({self._writer.errorMessage() or 'no reason given'}); nothing was written. Check "
                                 "that the disk is not full and that you may write there.")
            self.count += 1

    def commit(self, style: Style | None = None) -> list[str]:
        """Close the file, add the CRS (and the style, where the format holds one) and give it its final name.
        Returns the files written."""
        self._close()
        temp, spec = self._temp_path, self.target.spec
        try:
            self._verify()
            if spec.key == "gpkg":
                if style is not None:
                    formats.save_gpkg_style(temp, style)
                formats.embed_gpkg_wkt2(temp, self.crs)
            elif spec.key == "geojson":
                formats.insert_geojson_crs(temp, self.crs)
            elif spec.key == "csv":
                with open(self._temp_stem + ".prj", "w", encoding="utf-8") as prj:
                    prj.write(self.crs.toWkt(WKT2))
            written = _publish(self._temp_stem, self.target, self.overwrite)
        except OSError as exc:
            self.discard()
            raise WriteError(f"writing '{self.target.path}' failed: {exc}; nothing was written") from exc
        except BaseException:
            self.discard()
            raise
        self.discard()
        return written

    def _verify(self) -> None:
        """GDAL reports some failures (a full disk at the final flush) only when the file is closed, and only in
        its log: the closed file must hold every feature written."""
        from osgeo import ogr

        dataset = ogr.Open(self._temp_path)
        layer = dataset.GetLayer(0) if dataset is not None else None
        found = layer.GetFeatureCount() if layer is not None else -1
        dataset = None
        if found != self.count:
            raise WriteError(f"writing into '{os.path.dirname(self.target.path)}' did not complete (the file holds "
                             f"{max(found, 0)} of {self.count} features); nothing was written. Check that the "
                             "disk is not full and that you may write there.")

    def discard(self) -> None:
        """Remove this writer's temporaries (only those)."""
        self._close()
        remove_temporaries(self._temp_stem)

    def _close(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            self._writer = None
            del writer  # closes the dataset: GDAL flushes and releases the file


def _file_fields(fields: QgsFields, names: dict[str, str], spec: ExportFormat) -> QgsFields:
    out = QgsFields()
    if spec.key == "csv":
        for name in (CSV_X_FIELD, CSV_Y_FIELD):
            if fields.indexOf(name) >= 0:
                raise WriteError(f"the layer already has a field '{name}', which a CSV file adds for the centroid; "
                                 "rename that field first")
            out.append(QgsField(name, QVariant.Double))  # no width/precision: GDAL writes all 15 digits
    for f in fields:
        copy = QgsField(f)
        copy.setName(names[f.name()])
        out.append(copy)
    return out


def _centroid(geometry: QgsGeometry) -> tuple[float | None, float | None]:
    if geometry is None or geometry.isNull() or geometry.isEmpty():
        return None, None
    point = geometry.centroid().asPoint()
    return point.x(), point.y()


def _publish(temp_stem: str, target: Target, overwrite: bool) -> list[str]:
    """Give the temporaries their final names: sidecars first, the main file last (its presence = done)."""
    final_stem = os.path.splitext(target.path)[0]
    pairs = [(temp_stem + ext, final_stem + ext) for ext in target.spec.sidecars]
    pairs = [(src, dst) for src, dst in pairs if os.path.exists(src)]
    pairs.append((temp_stem + os.path.splitext(target.path)[1], target.path))
    if overwrite:
        for ext in target.spec.sidecars:
            stale = final_stem + ext
            if not os.path.exists(temp_stem + ext) and os.path.exists(stale):
                os.remove(stale)  # a sidecar of the replaced file would describe the wrong data
        for src, dst in pairs:
            os.replace(src, dst)
        return [dst for _, dst in pairs[-1:] + pairs[:-1]]
    linked: list[str] = []
    try:
        for src, dst in pairs:
            link_new(src, dst)
            linked.append(dst)
    except FileExistsError as exc:
        for dst in linked:  # ours: the same file as our temporary, linked a moment ago
            os.remove(dst)
        raise WriteError(f"'{exc.filename}' appeared while this run was writing (another run or program wrote "
                         "it); it was left as it is and this run's result was not saved. Choose another file "
                         "name.") from None
    return [linked[-1]] + linked[:-1]


def _reserve_temp_stem(folder: str, stem: str) -> str:
    """Create a hidden, unique placeholder in ``folder``; its name (minus suffix) is the temporary stem.

    Creating a real file is the honest write test: it fails on read-only folders and file systems, for
    missing permissions, and for full disks, whoever runs the write.
    """
    try:
        fd, placeholder = tempfile.mkstemp(prefix=f".{stem}.{TEMP_TAG}{os.getpid()}.", suffix=".partial",
                                           dir=folder)
    except OSError as exc:
        raise WriteError(f"cannot write to the folder '{folder}' ({exc.strerror or exc}); it is read-only or "
                         "you lack permission: choose another folder") from None
    os.close(fd)
    return placeholder[: -len(".partial")]


def remove_temporaries(temp_stem: str) -> None:
    """Remove every file whose name starts with ``temp_stem``'s name (one writer's temporaries)."""
    folder, base = os.path.split(temp_stem)
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if entry.startswith(base):
            try:
                os.remove(os.path.join(folder, entry))
            except OSError:
                pass


def remove_stale_temporaries(folder: str, stem: str) -> None:
    """Remove the temporaries of writers to ``stem`` whose process is gone (a run killed mid-write)."""
    prefix = f".{stem}.{TEMP_TAG}"
    try:
        entries = [e for e in os.listdir(folder) if e.startswith(prefix)]
    except OSError:
        return
    for entry in entries:
        pid = entry[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                os.remove(os.path.join(folder, entry))
            except OSError:
                pass


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # Windows: os.kill would signal the process, not probe it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


__all__ = ["FileWriter", "Target", "WriteCancelled", "WriteError", "check_free", "resolve_target"]
