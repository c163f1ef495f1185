"""``merge``: the partitions of a finished run as one GeoPackage that QGIS (or any GDAL) opens directly.

Written with Python's own sqlite3 (no GDAL needed where the run's client lives): the GeoPackage 1.2 tables,
one feature table per CRS of the run's rasters (usually one), the raster's WKT as the layer's CRS (WKT1 in
``definition``, WKT2 in ``definition_12_063`` where PROJ can give it), an R-tree spatial index, and the same
fields as ``classify_grid``'s layers. The file is built under a temporary name and renamed into place; an
existing file is never replaced.
"""
from __future__ import annotations

import os
import sqlite3
import struct
from typing import Iterator

from .manifest import ManifestError, read_manifest
from .parquet import EXTRA_KEY, GEOMETRY_COLUMN, read_partition, union_box, wkb_box

#: GeoPackage "GPKG" application id and version 1.2.1.
_APPLICATION_ID, _USER_VERSION = 0x47504B47, 10201
_SQL_TYPES = {"string": "TEXT", "int": "MEDIUMINT", "double": "DOUBLE", "bool": "BOOLEAN"}
_FIRST_SRS_ID = 100000  # custom CRSs; below are EPSG codes by convention
LAYER_NAME = "terrain_grid"


class MergeError(ValueError):
    """The run cannot be merged (yet); the message says why and what to do."""


def _gpkg_blob(srs_id: int, wkb: bytes) -> bytes:
    """A GeoPackage geometry: header (magic, version, flags: little-endian with an xy envelope), envelope, WKB."""
    x0, y0, x1, y1 = wkb_box(wkb)
    return b"GP" + struct.pack("<BBi4d", 0, 0b0000_0011, srs_id, x0, x1, y0, y1) + wkb


def _base_tables(con: sqlite3.Connection) -> None:
    con.executescript("""
        CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
            organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL,
            description TEXT, definition_12_063 TEXT NOT NULL DEFAULT 'undefined');
        CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
            identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT
            (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE,
            srs_id INTEGER);
        CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
            geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
            CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name));
        CREATE TABLE gpkg_extensions (table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL,
            definition TEXT NOT NULL, scope TEXT NOT NULL);
    """)
    con.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?, 'undefined')", [
        ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
        ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
    ])
    con.execute("INSERT INTO gpkg_extensions VALUES ('gpkg_spatial_ref_sys', 'definition_12_063', "
                "'gpkg_crs_wkt', 'http://www.geopackage.org/spec120/#extension_crs_wkt', 'read-write')")


def _wkt2(wkt: str) -> str:
    try:
        from rasterio.crs import CRS

        return CRS.from_wkt(wkt).to_wkt(version="WKT2_2019") or "undefined"
    except Exception:  # noqa: BLE001 -- WKT1 in `definition` still describes it
        return "undefined"


def _feature_table(con: sqlite3.Connection, name: str, kinds: list[tuple[str, str]], srs_id: int) -> None:
    columns = ", ".join(f'"{n}" {_SQL_TYPES[k]}' for n, k in kinds)
    con.execute(f'CREATE TABLE "{name}" (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom POLYGON, {columns})')
    con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POLYGON', ?, 0, 0)", (name, srs_id))
    con.execute(f'CREATE VIRTUAL TABLE "rtree_{name}_geom" USING rtree(id, minx, maxx, miny, maxy)')
    con.execute("INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', "
                "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')", (name,))


def _partition_tables(folder: str) -> Iterator[tuple[dict, object]]:
    manifest = read_manifest(folder)
    if manifest is None:
        raise MergeError(f"'{folder}' holds no manifest.jsonl: give the --out folder of a `grid` run.")
    expected = sum(item["partitions"] for item in manifest.request["inputs"])
    verified = manifest.verified()
    if len(verified) < expected:
        raise MergeError(f"the run in '{folder}' has {len(verified)} of {expected} partitions finished (or some "
                         "files changed since); rerun the same `grid` command to finish it, then merge.")
    for key in sorted(verified):
        table = read_partition(os.path.join(folder, verified[key]["file"]))
        yield verified[key], table


def merge(folder: str, out: str) -> dict[str, int]:
    """Write every partition of the run in ``folder`` into the GeoPackage ``out``; features per layer."""
    if os.path.exists(out):
        raise MergeError(f"'{out}' already exists, and Planet Terrain never replaces a file; choose another "
                         "name, or delete the file first.")
    if not out.lower().endswith(".gpkg"):
        raise MergeError(f"'{out}': merge writes a GeoPackage; give a file name ending in .gpkg.")
    temp = f"{out}.tmp-{os.getpid()}"
    con = sqlite3.connect(temp)
    try:
        counts = _write_all(con, folder)
        con.commit()
        con.close()
        os.replace(temp, out)
        return counts
    finally:
        con.close()
        if os.path.exists(temp):
            os.remove(temp)


def _write_all(con: sqlite3.Connection, folder: str) -> dict[str, int]:
    import json

    con.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
    con.execute(f"PRAGMA user_version = {_USER_VERSION}")
    _base_tables(con)
    layers: dict[str, tuple[str, int, list]] = {}  # wkt -> (table, srs_id, bounds)
    counts: dict[str, int] = {}
    for _, table in _partition_tables(folder):
        extra = json.loads(table.schema.metadata[EXTRA_KEY])
        wkt = extra["wkt"]
        if wkt not in layers:
            name = LAYER_NAME if not layers else f"{LAYER_NAME}_{len(layers) + 1}"
            srs_id = _FIRST_SRS_ID + len(layers)
            con.execute("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, 'NONE', ?, ?, ?, ?)",
                        (f"{name} CRS", srs_id, srs_id, wkt or "undefined", "from the classified raster",
                         _wkt2(wkt) if wkt else "undefined"))
            kinds = _kinds(table)
            _feature_table(con, name, kinds, srs_id)
            layers[wkt] = (name, srs_id, [])
            counts[name] = 0
        name, srs_id, bounds = layers[wkt]
        counts[name] += _insert(con, name, srs_id, table, bounds)
    for name, srs_id, bounds in layers.values():
        _rtree_triggers(con, name)
        box = union_box(bounds) or (None,) * 4
        con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, min_x, min_y, max_x, max_y, "
                    "srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?)", (name, name, *box, srs_id))
    return counts


def _kinds(table) -> list[tuple[str, str]]:
    import pyarrow as pa

    kinds = []
    for f in table.schema:
        if f.name == GEOMETRY_COLUMN:
            continue
        kind = ("string" if pa.types.is_string(f.type) else "bool" if pa.types.is_boolean(f.type)
                else "int" if pa.types.is_integer(f.type) else "double")
        kinds.append((f.name, kind))
    return kinds


def _insert(con: sqlite3.Connection, name: str, srs_id: int, table, bounds: list) -> int:
    names = [n for n in table.column_names if n != GEOMETRY_COLUMN]
    if table.num_rows == 0:
        return 0
    wkbs = table.column(GEOMETRY_COLUMN).to_pylist()
    values = [table.column(n).to_pylist() for n in names]
    first = con.execute(f'SELECT COALESCE(MAX(fid), 0) FROM "{name}"').fetchone()[0] + 1
    quoted = ", ".join(f'"{n}"' for n in names)
    marks = ", ".join("?" * (len(names) + 1))
    con.executemany(f'INSERT INTO "{name}" (geom, {quoted}) VALUES ({marks})',
                    ([_gpkg_blob(srs_id, w)] + [v[i] for v in values] for i, w in enumerate(wkbs)))
    boxes = [wkb_box(w) for w in wkbs]
    con.executemany(f'INSERT INTO "rtree_{name}_geom" VALUES (?, ?, ?, ?, ?)',
                    ((first + i, b[0], b[2], b[1], b[3]) for i, b in enumerate(boxes)))
    bounds.append(union_box(boxes))
    return len(wkbs)


def _rtree_triggers(con: sqlite3.Connection, name: str) -> None:
    """The GeoPackage 1.2 triggers that keep the R-tree in step with later edits (in QGIS, say).

    Created after the rows are in: they call GDAL's ST_* SQL functions, which plain sqlite3 lacks.
    """
    rtree, new_box = f'"rtree_{name}_geom"', "NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom), ST_MinY(NEW.geom), " \
        "ST_MaxY(NEW.geom)"
    present, absent = "(NEW.geom NOT NULL AND NOT ST_IsEmpty(NEW.geom))", "(NEW.geom ISNULL OR ST_IsEmpty(NEW.geom))"
    triggers = {
        "insert": f"AFTER INSERT ON \"{name}\" WHEN {present} BEGIN INSERT OR REPLACE INTO {rtree} VALUES "
                  f"({new_box}); END",
        "update1": f"AFTER UPDATE OF geom ON \"{name}\" WHEN OLD.fid = NEW.fid AND {present} BEGIN INSERT OR "
                   f"REPLACE INTO {rtree} VALUES ({new_box}); END",
        "update2": f"AFTER UPDATE OF geom ON \"{name}\" WHEN OLD.fid = NEW.fid AND {absent} BEGIN DELETE FROM "
                   f"{rtree} WHERE id = OLD.fid; END",
        "update3": f"AFTER UPDATE ON \"{name}\" WHEN OLD.fid != NEW.fid AND {present} BEGIN DELETE FROM {rtree} "
                   f"WHERE id = OLD.fid; INSERT OR REPLACE INTO {rtree} VALUES ({new_box}); END",
        "update4": f"AFTER UPDATE ON \"{name}\" WHEN OLD.fid != NEW.fid AND {absent} BEGIN DELETE FROM {rtree} "
                   "WHERE id IN (OLD.fid, NEW.fid); END",
        "delete": f"AFTER DELETE ON \"{name}\" WHEN OLD.geom NOT NULL BEGIN DELETE FROM {rtree} WHERE id = "
                  "OLD.fid; END",
    }
    for suffix, body in triggers.items():
        con.execute(f'CREATE TRIGGER "rtree_{name}_geom_{suffix}" {body}')
