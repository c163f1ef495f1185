"""Export a "Terrain classes" layer to GeoPackage, GeoJSON, FlatGeobuf, Shapefile or CSV -- CRS intact.

Why this is more than ``writeAsVectorFormatV3``:

* **Planetary CRSs must survive.** Our CRSs carry no EPSG/IAU code, and each format stores a CRS differently.
  What GDAL 3.6 / QGIS 3.22 do by default, measured on the shared rasters' CRSs, and what we add:

  - GeoPackage: GDAL writes only WKT1 in ``gpkg_spatial_ref_sys.definition``; read back, WKT1 turns
    "Equidistant Cylindrical" into its spherical variant and polar stereographic variant A into variant B, so
    QGIS reloads a *different* CRS (same numbers, unequal CRS). We add the GeoPackage ``gpkg_crs_wkt``
    extension (column ``definition_12_063`` with the CRS's WKT2:2019, registered in ``gpkg_extensions``),
    which GDAL reads in preference to WKT1: the reloaded CRS is equal to the original.
  - GeoJSON: RFC 7946 allows only WGS 84, which cannot describe Mars, the Moon or Vesta, and GDAL writes no
    ``crs`` member for a CRS without an EPSG code. We write GeoJSON 2008 (``RFC7946=NO``: coordinates stay in
    the layer CRS) and insert a named ``crs`` member holding the WKT2, which GDAL/QGIS read back. (A geographic
    CRS comes back with longitude/latitude axis order, as GeoJSON mandates; the coordinates are unchanged.)
  - FlatGeobuf: stores the full WKT itself; nothing to add.
  - Shapefile: the ``.prj`` holds ESRI WKT1 (GDAL cannot read WKT2 there); names gain ``GCS_``/underscores and
    the projection variant may change, but the geodesy (ellipsoid, projection, parameters) is identical --
    :func:`equivalent_crs` checks exactly that.
  - CSV: a ``.prj`` sidecar with WKT2, which GDAL's CSV driver reads (see :func:`load_export`).

* **Shapefile names.** DBF field names have at most 10 characters. :func:`shapefile_field_names` is the one,
  deterministic, collision-free mapping (see its docstring), returned in :class:`ExportResult`. DBF has no
  boolean type GDAL writes: ``abstained``/``body_renorm`` come back as integers 0/1 (CSV: per ``.csvt``).
  Note that a Shapefile and a CSV export to the same stem would share ``<stem>.prj``: the second is refused.

* **Never a half-written or silently replaced file.** Output goes to hidden temporary files in the target
  folder (same file system, so the final ``os.replace`` is atomic per file) and is renamed only when complete;
  any failure or cancel removes the temporaries. An existing output raises :class:`ExportError` unless
  ``overwrite=True``; a folder that cannot be written raises one naming the folder.

Features are streamed from the layer to the writer (``QgsVectorFileWriter.create`` + ``addFeature``, the same
writer ``writeAsVectorFormatV3`` drives) so that filtering, renaming and the CSV centroid columns need no
in-memory copy of a large grid result.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsCoordinateTransformContext,
                       QgsCsException, QgsExpression, QgsFeature, QgsFeatureRequest, QgsFeedback, QgsField,
                       QgsFields, QgsGeometry, QgsPointXY, QgsProject, QgsRectangle, QgsVectorFileWriter,
                       QgsVectorLayer, QgsWkbTypes)
from qgis.PyQt.QtCore import QVariant
from qgis.PyQt.QtXml import QDomDocument

from . import layer_info
from .fields import HEAD_FIELDS

#: Field names the filters rely on; checked against the schema in ``fields.py`` at import time.
LABEL_FIELD = "label"
ABSTAINED_FIELD = "abstained"
assert {LABEL_FIELD, ABSTAINED_FIELD} <= {name for name, _ in HEAD_FIELDS}, "fields.py schema changed"

#: Centroid coordinate columns of CSV exports (layer CRS units: metres, or degrees lon/lat).
CSV_X_FIELD, CSV_Y_FIELD = "x", "y"
#: Longest DBF field name.
SHAPEFILE_NAME_LIMIT = 10
#: Name of the default style saved inside GeoPackage exports.
STYLE_NAME = "Planet Terrain"
_WKT2 = QgsCoordinateReferenceSystem.WKT2_2019
_IAU_ID = re.compile(r',ID\["IAU[^"]*",[^\]]*\]')
_GPKG_CRS_WKT_EXTENSION = ("gpkg_spatial_ref_sys", "definition_12_063", "gpkg_crs_wkt",
                           "http://www.geopackage.org/spec120/#extension_crs_wkt", "read-write")


class ExportError(RuntimeError):
    """An export that cannot be done or did not complete; the message says what and what to do."""


class ExportCancelled(ExportError):
    """The user cancelled; nothing was left on disk."""


@dataclass(frozen=True)
class ExportFormat:
    """One output format: its GDAL driver, file extension and the sidecar files that belong to it."""

    key: str
    driver: str
    extension: str
    sidecars: tuple[str, ...] = ()
    layer_options: tuple[str, ...] = ()


FORMATS: dict[str, ExportFormat] = {
    "gpkg": ExportFormat("gpkg", "GPKG", ".gpkg"),
    "geojson": ExportFormat("geojson", "GeoJSON", ".geojson", layer_options=("RFC7946=NO",)),
    "fgb": ExportFormat("fgb", "FlatGeobuf", ".fgb"),
    "shp": ExportFormat("shp", "ESRI Shapefile", ".shp", (".shx", ".dbf", ".prj", ".cpg")),
    "csv": ExportFormat("csv", "CSV", ".csv", (".csvt", ".prj"), ("CREATE_CSVT=YES",)),
}
#: Extra extensions recognised when guessing the format from a path.
_ALIASES = {".json": "geojson"}
#: SQLite files that exist next to a GeoPackage while a program has it open.
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def format_for_path(path: str) -> ExportFormat:
    """The format named by ``path``'s extension; :class:`ExportError` listing the choices otherwise."""
    ext = os.path.splitext(path)[1].lower()
    for fmt in FORMATS.values():
        if fmt.extension == ext:
            return fmt
    if ext in _ALIASES:
        return FORMATS[_ALIASES[ext]]
    choices = ", ".join(f.extension for f in FORMATS.values())
    raise ExportError(f"cannot tell the format of '{path}' from its extension; use one of {choices}")


# -- Shapefile field names -----------------------------------------------------------------------------------
def shapefile_field_names(names: Sequence[str]) -> dict[str, str]:
    """Map field names to DBF-safe names of at most 10 characters: deterministic and collision-free.

    Rules, applied in this order (so the result depends only on the list of names and their order):

    1. a name of 10 characters or fewer is kept unchanged (``label``, ``confidence``, ``p_crater``, ``row``);
    2. a longer name is cut to its first 10 characters: ``p_slope_streak`` -> ``p_slope_st``,
       ``p_impact_ejecta`` -> ``p_impact_e``, ``p_swiss_cheese`` -> ``p_swiss_ch``, ``p_bright_dune`` ->
       ``p_bright_d``, ``p_dark_dune`` -> ``p_dark_dun``, ``body_renorm`` -> ``body_renor``,
       ``source_layer`` -> ``source_lay``, ``model_version`` -> ``model_vers``, ``created_utc`` ->
       ``created_ut``;
    3. if that cut name is already taken (DBF names are case-insensitive, and names kept by rule 1 are
       reserved first), the smallest ``_<n>`` suffix (n = 1, 2, ...) that is free replaces the end:
       ``p_crater_rim_a`` -> ``p_crater_r``, then ``p_crater_rim_b`` -> ``p_crater_1``.
    """
    taken = {n.lower() for n in names if len(n) <= SHAPEFILE_NAME_LIMIT}
    if len(taken) != sum(1 for n in names if len(n) <= SHAPEFILE_NAME_LIMIT):
        raise ExportError(f"field names differ only by case, which a Shapefile cannot keep apart: {list(names)}")
    mapping: dict[str, str] = {}
    for name in names:
        if len(name) <= SHAPEFILE_NAME_LIMIT:
            mapping[name] = name
            continue
        candidate, n = name[:SHAPEFILE_NAME_LIMIT], 0
        while candidate.lower() in taken:
            n += 1
            suffix = f"_{n}"
            candidate = name[:SHAPEFILE_NAME_LIMIT - len(suffix)] + suffix
        taken.add(candidate.lower())
        mapping[name] = candidate
    return mapping


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


def output_files(path: str, fmt: ExportFormat) -> list[str]:
    """The main file and every sidecar an export to ``path`` writes."""
    stem = os.path.splitext(path)[0]
    return [path] + [stem + ext for ext in fmt.sidecars]


def export_layer(layer: QgsVectorLayer, path: str, fmt: str | ExportFormat | None = None, *,
                 confident_only: bool = False, labels: Iterable[str] | None = None, overwrite: bool = False,
                 feedback: QgsFeedback | None = None,
                 transform_context: QgsCoordinateTransformContext | None = None) -> ExportResult:
    """Write ``layer``'s features (optionally only confident ones / some labels) to ``path``.

    ``fmt`` is a key of :data:`FORMATS` (``gpkg``, ``geojson``, ``fgb``, ``shp``, ``csv``) or None to use the
    path's extension. The file is complete or absent: see the module docstring.
    """
    if layer is None or not layer.isValid():
        raise ExportError("the layer to export is not valid")
    spec = FORMATS[fmt] if isinstance(fmt, str) else fmt or format_for_path(path)
    path = os.path.abspath(path)
    if os.path.splitext(path)[1].lower() != spec.extension and not (
            spec.key == "geojson" and path.lower().endswith(".json")):
        path += spec.extension
    folder = os.path.dirname(path)
    finals = output_files(path, spec)
    _check_target(finals, folder, overwrite, spec)
    crs = layer.crs()
    if not crs.isValid():
        raise ExportError(f"the layer '{layer.name()}' has no valid CRS; set its CRS before exporting")
    expression = filter_expression(layer.fields(), confident_only, labels)
    names = (shapefile_field_names(layer.fields().names()) if spec.key == "shp"
             else {n: n for n in layer.fields().names()})
    context = transform_context or QgsProject.instance().transformContext()

    temp_stem = _reserve_temp_stem(folder, os.path.splitext(os.path.basename(path))[0])
    temp_path = temp_stem + os.path.splitext(path)[1]
    try:
        count = _write(layer, temp_path, spec, crs, names, expression, context, feedback,
                       os.path.splitext(os.path.basename(path))[0])
        if spec.key == "gpkg":
            _save_gpkg_style(layer, temp_path)
            _embed_gpkg_wkt2(temp_path, crs)
        elif spec.key == "geojson":
            _insert_geojson_crs(temp_path, crs)
        elif spec.key == "csv":
            with open(temp_stem + ".prj", "w", encoding="utf-8") as prj:
                prj.write(crs.toWkt(_WKT2))
        if feedback is not None and feedback.isCanceled():
            raise ExportCancelled("export cancelled; no file was written")
        written = _commit(temp_path, path, spec, overwrite)
    except ExportError:
        _remove_temporaries(temp_stem)
        raise
    except BaseException as exc:
        _remove_temporaries(temp_stem)
        if isinstance(exc, OSError):
            raise ExportError(f"writing '{path}' failed: {exc}; nothing was written") from exc
        raise
    _remove_temporaries(temp_stem)
    return ExportResult(path, spec.key, count, names, written)


def _check_target(finals: list[str], folder: str, overwrite: bool, spec: ExportFormat) -> None:
    if not os.path.isdir(folder):
        raise ExportError(f"the folder '{folder}' does not exist; create it or choose another folder")
    existing = [f for f in finals if os.path.exists(f)]
    if existing and not overwrite:
        raise ExportError(f"'{existing[0]}' already exists; choose another name or allow overwriting")
    if spec.key == "gpkg" and any(os.path.exists(finals[0] + s) for s in _SQLITE_SIDE_FILES):
        raise ExportError(f"'{finals[0]}' is open in another program (its -wal/-journal file exists); "
                          "close it there before overwriting")


def _reserve_temp_stem(folder: str, stem: str) -> str:
    """Create a hidden, unique placeholder in ``folder``; its name (minus suffix) is the temporary stem.

    Creating a real file is the honest write test: it fails on read-only folders and file systems, for
    missing permissions, and for full disks, whoever runs the export.
    """
    try:
        fd, placeholder = tempfile.mkstemp(prefix=f".{stem}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise ExportError(f"cannot write to the folder '{folder}' ({exc.strerror or exc}); it is read-only or "
                          "you lack permission: choose another folder") from None
    os.close(fd)
    return placeholder[: -len(".partial")]


def _remove_temporaries(temp_stem: str) -> None:
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


def _export_fields(layer: QgsVectorLayer, names: dict[str, str], spec: ExportFormat) -> QgsFields:
    out = QgsFields()
    if spec.key == "csv":
        for name in (CSV_X_FIELD, CSV_Y_FIELD):
            if layer.fields().indexOf(name) >= 0:
                raise ExportError(f"the layer already has a field '{name}', which CSV export adds for the "
                                  "centroid; rename that field first")
            out.append(QgsField(name, QVariant.Double))  # no width/precision: GDAL writes all 15 digits
    for f in layer.fields():
        copy = QgsField(f)
        copy.setName(names[f.name()])
        out.append(copy)
    return out


def _write(layer: QgsVectorLayer, temp_path: str, spec: ExportFormat, crs: QgsCoordinateReferenceSystem,
           names: dict[str, str], expression: str | None, context: QgsCoordinateTransformContext,
           feedback: QgsFeedback | None, layer_name: str) -> int:
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = spec.driver
    options.layerName = layer_name
    options.fileEncoding = "UTF-8"
    options.layerOptions = list(spec.layer_options)
    fields = _export_fields(layer, names, spec)
    geometry_type = QgsWkbTypes.NoGeometry if spec.key == "csv" else layer.wkbType()
    writer = QgsVectorFileWriter.create(temp_path, fields, geometry_type, crs, context, options)
    try:
        if writer.hasError() != QgsVectorFileWriter.NoError:
            raise ExportError(f"cannot create a {spec.driver} file in '{os.path.dirname(temp_path)}' "
                              f"({writer.errorMessage()}); nothing was written. Check that the disk is not full "
                              "and that you may write there.")
        request = QgsFeatureRequest()
        if expression:
            request.setFilterExpression(expression)
        total = max(layer.featureCount(), 1)
        count = 0
        for feature in layer.getFeatures(request):
            if feedback is not None and feedback.isCanceled():
                raise ExportCancelled("export cancelled; no file was written")
            out = QgsFeature(fields)
            attributes = feature.attributes()
            if spec.key == "csv":
                x, y = _centroid(feature.geometry())
                attributes = [x, y] + attributes
            else:
                out.setGeometry(feature.geometry())
            out.setAttributes(attributes)
            if not writer.addFeature(out):
                raise ExportError(f"writing feature {feature.id()} into '{os.path.dirname(temp_path)}' failed "
                                  f"({writer.errorMessage()}); nothing was written. Check that the disk is not "
                                  "full and that you may write there.")
            count += 1
            if feedback is not None and count % 256 == 0:
                feedback.setProgress(min(99.0, 100.0 * count / total))
    finally:
        del writer  # closes the dataset: GDAL flushes and releases the file
    return count


def _centroid(geometry: QgsGeometry) -> tuple[float | None, float | None]:
    if geometry is None or geometry.isNull() or geometry.isEmpty():
        return None, None
    point = geometry.centroid().asPoint()
    return point.x(), point.y()


def _commit(temp_path: str, path: str, spec: ExportFormat, overwrite: bool) -> list[str]:
    """Rename temporaries to their final names: sidecars first, the main file last (its presence = done)."""
    temp_stem, final_stem = os.path.splitext(temp_path)[0], os.path.splitext(path)[0]
    written = []
    for ext in spec.sidecars:
        src, dst = temp_stem + ext, final_stem + ext
        if os.path.exists(src):
            os.replace(src, dst)
            written.append(dst)
        elif overwrite and os.path.exists(dst):
            os.remove(dst)  # a stale sidecar of the replaced export would describe the wrong data
    os.replace(temp_path, path)
    return [path] + written


# -- GeoPackage: CRS and style -------------------------------------------------------------------------------
def _embed_gpkg_wkt2(path: str, crs: QgsCoordinateReferenceSystem) -> None:
    """Store the CRS as WKT2 (``gpkg_crs_wkt`` extension) so GDAL/QGIS reload exactly this CRS.

    Also checkpoints and leaves rollback-journal mode, so no ``-wal`` file holds data the rename would strand.
    """
    wkt2 = crs.toWkt(_WKT2)
    if not wkt2:
        raise ExportError(f"the CRS '{crs.description()}' cannot be written as WKT2")
    con = sqlite3.connect(path)
    try:
        columns = [row[1] for row in con.execute("PRAGMA table_info(gpkg_spatial_ref_sys)")]
        if "definition_12_063" not in columns:
            con.execute("ALTER TABLE gpkg_spatial_ref_sys ADD COLUMN definition_12_063 TEXT NOT NULL "
                        "DEFAULT 'undefined'")
        srs_ids = [row[0] for row in con.execute("SELECT DISTINCT srs_id FROM gpkg_geometry_columns")]
        if not srs_ids:
            raise ExportError(f"'{path}' has no geometry table to attach the CRS to")
        for srs_id in srs_ids:
            if srs_id > 0:  # -1 and 0 are the GeoPackage's "undefined" entries
                con.execute("UPDATE gpkg_spatial_ref_sys SET definition_12_063 = ? WHERE srs_id = ?",
                            (wkt2, srs_id))
        exists = con.execute("SELECT 1 FROM gpkg_extensions WHERE table_name = ? AND column_name = ? AND "
                             "extension_name = ?", _GPKG_CRS_WKT_EXTENSION[:3]).fetchone()
        if not exists:
            con.execute("INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, "
                        "scope) VALUES (?, ?, ?, ?, ?)", _GPKG_CRS_WKT_EXTENSION)
        con.commit()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise ExportError(f"could not record the CRS in '{path}': {exc}") from None
    finally:
        con.close()


def _save_gpkg_style(layer: QgsVectorLayer, path: str) -> None:
    """Save ``layer``'s style into the GeoPackage as its default style (opened with it in any QGIS)."""
    target = QgsVectorLayer(path, "export", "ogr")
    if not target.isValid():
        raise ExportError(f"the GeoPackage '{path}' written could not be reopened to store its style")
    doc = QDomDocument()
    error = layer.exportNamedStyle(doc)
    if error:
        raise ExportError(f"could not read the layer's style: {error}")
    ok, error = target.importNamedStyle(doc)
    if not ok:
        raise ExportError(f"could not apply the style to the export: {error}")
    error = target.saveStyleToDatabase(STYLE_NAME, "Planet Terrain classes", True, "")
    del target
    if error:
        raise ExportError(f"could not save the style into '{path}': {error}")


# -- GeoJSON: named CRS --------------------------------------------------------------------------------------
def geojson_crs_wkt(crs: QgsCoordinateReferenceSystem) -> str:
    """The WKT2 stored in a GeoJSON ``crs`` member.

    Geographic CRSs lose their IAU identifier here: GDAL's GeoJSON reader swaps a geographic CRS to
    longitude/latitude order (as GeoJSON mandates), and QGIS 3.22 then looks the identifier up as ``IAU:30100``
    -- a code PROJ does not know (``IAU_2015:30100`` is) -- and returns an *invalid* CRS. Without the ID the
    full definition is read instead (measured with IAU_2015:30100; the projected IAU CRSs keep their ID).
    """
    wkt = crs.toWkt(_WKT2)
    if layer_info.is_degrees(crs):
        wkt = _IAU_ID.sub("", wkt)
    return wkt


def _insert_geojson_crs(path: str, crs: QgsCoordinateReferenceSystem) -> None:
    """Insert ``"crs": {"type": "name", ...WKT2...}`` before ``"features"``, streaming (no full parse)."""
    member = json.dumps({"type": "name", "properties": {"name": geojson_crs_wkt(crs)}})
    staged = path + ".crs"
    inserted = False
    with open(path, "r", encoding="utf-8") as src, open(staged, "w", encoding="utf-8") as dst:
        for line in src:
            if not inserted and line.lstrip().startswith('"crs"'):
                continue  # GDAL wrote one (an EPSG CRS): ours says the same, fully
            if not inserted and line.lstrip().startswith('"features"'):
                dst.write(f'"crs": {member},\n')
                inserted = True
            dst.write(line)
            if inserted:
                shutil.copyfileobj(src, dst, 1 << 20)
                break
    if not inserted:
        os.remove(staged)
        raise ExportError(f"unexpected GeoJSON layout in '{path}': no \"features\" member found")
    os.replace(staged, path)


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


def equivalent_crs(a: QgsCoordinateReferenceSystem, b: QgsCoordinateReferenceSystem,
                   extent: QgsRectangle) -> bool:
    """True when ``b`` is ``a``, or describes the same geodesy: the same ellipsoid and map units, and points of
    ``extent`` (in ``a``) land on the same coordinates in ``b``.

    This is what "the CRS survived" means for formats that rename or re-encode a CRS (Shapefile's ESRI WKT1,
    GeoJSON's lon/lat axis order). Different bodies never match: PROJ refuses the transform or the numbers
    differ.
    """
    if not (a.isValid() and b.isValid()):
        return False
    if a == b:
        return True
    ia, ib = layer_info.crs_info(a), layer_info.crs_info(b)
    if ia.radius_m is None or ib.radius_m is None or abs(ia.radius_m - ib.radius_m) > 1e-6 * ia.radius_m:
        return False
    if a.mapUnits() != b.mapUnits() or ia.degrees != ib.degrees:
        return False
    transform = QgsCoordinateTransform(a, b, QgsCoordinateTransformContext())
    if not transform.isValid():
        return False
    points = [extent.center(), QgsPointXY(extent.xMinimum(), extent.yMinimum()),
              QgsPointXY(extent.xMaximum(), extent.yMaximum()), QgsPointXY(extent.xMinimum(), extent.yMaximum())]
    tolerance = 1e-9 if ia.degrees else 1e-3 / ia.unit_to_m  # a nano-degree or a millimetre
    try:
        for p in points:
            q = transform.transform(p)
            if abs(q.x() - p.x()) > tolerance or abs(q.y() - p.y()) > tolerance:
                return False
    except QgsCsException:
        return False
    return True
