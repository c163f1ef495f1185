"""Partition files: GeoParquet 1.1 written with pyarrow, polygons as WKB, the CRS as PROJJSON plus the raster's
own WKT (planetary CRSs stay exactly as the raster states them).

Files are written under a temporary name and renamed into place, so a killed task never leaves a partial
partition behind under the final name, and a task run twice (a worker lost mid-task) writes the same file.
"""
from __future__ import annotations

import json
import os
import struct
from typing import Iterable, Sequence

from ..checksum import file_sha256

#: GeoParquet version written.
GEOPARQUET_VERSION = "1.1.0"
GEOMETRY_COLUMN = "geometry"
#: Schema metadata key holding what GeoParquet has no place for (the raster's WKT, run facts).
EXTRA_KEY = b"planet_terrain"

Box = tuple[float, float, float, float]


def arrow_type(kind: str):
    """The Arrow type of a ``core.result_schema`` kind."""
    import pyarrow as pa

    return {"string": pa.string(), "int": pa.int32(), "double": pa.float64(), "bool": pa.bool_()}[kind]


def polygon_wkb(box: Box) -> bytes:
    """A rectangle as a little-endian WKB polygon (one closed ring, counter-clockwise)."""
    x0, y0, x1, y1 = box
    return struct.pack("<BIII10d", 1, 3, 1, 5, x0, y0, x1, y0, x1, y1, x0, y1, x0, y0)


def wkb_box(wkb: bytes) -> Box:
    """Bounds of a :func:`polygon_wkb` rectangle."""
    xs_ys = struct.unpack_from("<10d", wkb, 13)
    xs, ys = xs_ys[0::2], xs_ys[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def union_box(boxes: Iterable[Box]) -> Box | None:
    out = None
    for b in boxes:
        out = b if out is None else (min(out[0], b[0]), min(out[1], b[1]), max(out[2], b[2]), max(out[3], b[3]))
    return out


def geo_metadata(projjson: dict | None, bbox: Box | None) -> dict:
    column = {"encoding": "WKB", "geometry_types": ["Polygon"], "crs": projjson}
    if bbox is not None:
        column["bbox"] = list(bbox)
    return {"version": GEOPARQUET_VERSION, "primary_column": GEOMETRY_COLUMN, "columns": {GEOMETRY_COLUMN: column}}


def write_partition(path: str, kinds: Sequence[tuple[str, str]], columns: dict[str, list], boxes: list[Box],
                    projjson: dict | None, extra: dict) -> str:
    """Write one partition atomically; returns the file's sha256."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [pa.array(columns[name], type=arrow_type(kind)) for name, kind in kinds]
    arrays.append(pa.array([polygon_wkb(b) for b in boxes], type=pa.binary()))
    names = [name for name, _ in kinds] + [GEOMETRY_COLUMN]
    meta = {b"geo": json.dumps(geo_metadata(projjson, union_box(boxes))).encode(),
            EXTRA_KEY: json.dumps(extra).encode()}
    table = pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(meta)
    temp = f"{path}.tmp-{os.getpid()}"
    try:
        pq.write_table(table, temp, compression="zstd")
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return file_sha256(path)


def read_partition(path: str):
    """The partition as a pyarrow Table (schema metadata included)."""
    import pyarrow.parquet as pq

    return pq.read_table(path)
