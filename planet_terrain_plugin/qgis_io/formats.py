"""The vector formats the plugin writes, and what each needs so a planetary CRS and the style survive.

Measured with GDAL 3.6 / QGIS 3.22 on the shared rasters' CRSs (our CRSs carry no EPSG code):

- GeoPackage: GDAL writes only WKT1 in ``gpkg_spatial_ref_sys.definition``; read back, WKT1 turns
  "Equidistant Cylindrical" into its spherical variant and polar stereographic variant A into variant B, so
  QGIS reloads a *different* CRS. :func:`embed_gpkg_wkt2` adds the ``gpkg_crs_wkt`` extension (WKT2:2019),
  which GDAL reads in preference. The style is saved inside as the default style.
- GeoJSON: RFC 7946 allows only WGS 84, which cannot describe Mars, the Moon or Vesta, and GDAL writes no
  ``crs`` member for a CRS without an EPSG code. We write GeoJSON 2008 (``RFC7946=NO``: coordinates stay in
  the layer CRS) with a named ``crs`` member holding the WKT2 (:func:`insert_geojson_crs`).
- FlatGeobuf: stores the full WKT itself.
- Shapefile: the ``.prj`` holds ESRI WKT1; names change but the geodesy is identical. DBF field names have at
  most 10 characters: :func:`shapefile_field_names` is the one mapping.
- CSV: one row per feature with its centroid as x/y, and a ``.prj`` sidecar with the WKT2, which GDAL's CSV
  driver reads.
- KML: longitude/latitude on Earth's WGS 84 only; it cannot hold another body's coordinates, so it is refused.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from typing import Callable, Sequence

from qgis.core import QgsCoordinateReferenceSystem, QgsVectorLayer
from qgis.PyQt.QtXml import QDomDocument

from . import layer_info


class WriteError(RuntimeError):
    """A file that cannot be written or did not complete; the message says what and what to do."""


class WriteCancelled(WriteError):
    """The user cancelled; nothing was left on disk."""


#: Centroid coordinate columns of CSV files (layer CRS units: metres, or degrees lon/lat).
CSV_X_FIELD, CSV_Y_FIELD = "x", "y"
#: Longest DBF field name.
SHAPEFILE_NAME_LIMIT = 10
#: Name of the default style saved inside GeoPackages.
STYLE_NAME = "Planet Terrain"
WKT2 = QgsCoordinateReferenceSystem.WKT2_2019
_IAU_ID = re.compile(r',ID\["IAU[^"]*",[^\]]*\]')
_GPKG_CRS_WKT_EXTENSION = ("gpkg_spatial_ref_sys", "definition_12_063", "gpkg_crs_wkt",
                           "http://www.geopackage.org/spec120/#extension_crs_wkt", "read-write")
#: Formats refused by name, with the reason.
REFUSED = {".kml": "KML stores longitude/latitude on Earth's WGS 84 only and cannot hold coordinates on Mars, "
                   "the Moon or Vesta", ".kmz": "KMZ (zipped KML) stores Earth WGS 84 coordinates only"}


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
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def format_for_path(path: str) -> ExportFormat:
    """The format named by ``path``'s extension; :class:`WriteError` listing the choices otherwise."""
    ext = os.path.splitext(path)[1].lower()
    if ext in REFUSED:
        raise WriteError(f"{REFUSED[ext]}; choose {_choices()}")
    for fmt in FORMATS.values():
        if fmt.extension == ext:
            return fmt
    if ext in _ALIASES:
        return FORMATS[_ALIASES[ext]]
    raise WriteError(f"cannot tell the format of '{path}' from its extension; use one of {_choices()}")


def _choices() -> str:
    return ", ".join(f.extension for f in FORMATS.values())


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
        raise WriteError(f"field names differ only by case, which a Shapefile cannot keep apart: {list(names)}")
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


# -- GeoPackage: CRS and style -------------------------------------------------------------------------------
def embed_gpkg_wkt2(path: str, crs: QgsCoordinateReferenceSystem) -> None:
    """Store the CRS as WKT2 (``gpkg_crs_wkt`` extension) so GDAL/QGIS reload exactly this CRS.

    Also checkpoints and leaves rollback-journal mode, so no ``-wal`` file holds data the rename would strand.
    """
    wkt2 = crs.toWkt(WKT2)
    if not wkt2:
        raise WriteError(f"the CRS '{crs.description()}' cannot be written as WKT2")
    con = sqlite3.connect(path)
    try:
        columns = [row[1] for row in con.execute("PRAGMA table_info(gpkg_spatial_ref_sys)")]
        if "definition_12_063" not in columns:
            con.execute("ALTER TABLE gpkg_spatial_ref_sys ADD COLUMN definition_12_063 TEXT NOT NULL "
                        "DEFAULT 'undefined'")
        srs_ids = [row[0] for row in con.execute("SELECT DISTINCT srs_id FROM gpkg_geometry_columns")]
        if not srs_ids:
            raise WriteError(f"'{path}' has no geometry table to attach the CRS to")
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
        raise WriteError(f"could not record the CRS in '{path}': {exc}") from None
    finally:
        con.close()


def save_gpkg_style(path: str, style: Callable[[QgsVectorLayer], None]) -> None:
    """Save the style that ``style`` gives a layer into the GeoPackage as its default (opened with it in any QGIS)."""
    target = QgsVectorLayer(path, "written", "ogr")
    if not target.isValid():
        raise WriteError(f"the GeoPackage '{path}' written could not be reopened to store its style")
    style(target)
    error = target.saveStyleToDatabase(STYLE_NAME, "Planet Terrain classes", True, "")
    del target
    if error:
        raise WriteError(f"could not save the style into '{path}': {error}")


def copy_style(source: QgsVectorLayer) -> Callable[[QgsVectorLayer], None]:
    """A ``style`` for :func:`save_gpkg_style` that gives the written layer ``source``'s style."""
    def apply(target: QgsVectorLayer) -> None:
        doc = QDomDocument()
        error = source.exportNamedStyle(doc)
        if error:
            raise WriteError(f"could not read the layer's style: {error}")
        ok, error = target.importNamedStyle(doc)
        if not ok:
            raise WriteError(f"could not apply the style to the file: {error}")
    return apply


# -- GeoJSON: named CRS --------------------------------------------------------------------------------------
def geojson_crs_wkt(crs: QgsCoordinateReferenceSystem) -> str:
    """The WKT2 stored in a GeoJSON ``crs`` member.

    Geographic CRSs lose their IAU identifier here: GDAL's GeoJSON reader swaps a geographic CRS to
    longitude/latitude order (as GeoJSON mandates), and QGIS 3.22 then looks the identifier up as ``IAU:30100``
    -- a code PROJ does not know (``IAU_2015:30100`` is) -- and returns an *invalid* CRS. Without the ID the
    full definition is read instead (measured with IAU_2015:30100; the projected IAU CRSs keep their ID).
    """
    wkt = crs.toWkt(WKT2)
    if layer_info.is_degrees(crs):
        wkt = _IAU_ID.sub("", wkt)
    return wkt


def insert_geojson_crs(path: str, crs: QgsCoordinateReferenceSystem) -> None:
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
        raise WriteError(f"unexpected GeoJSON layout in '{path}': no \"features\" member found")
    os.replace(staged, path)


