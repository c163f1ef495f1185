"""What an image file's georeferencing says, for the image command line: its body and its ground pixel size.

The command line classifies pictures; a picture without a CRS (a JPEG, a PNG) has no body and no scale, and
is classified with every class, as before. A georeferenced file (GeoTIFF, ISIS3 cube) is held to the rule of
QGIS and the batch command (``core.body_check``): the body comes from its CRS unless ``--body`` says otherwise,
a CRS of a body the model does not serve is refused (reason ``unknown_body``), and the ground pixel size of
what was read (``core.bodies.crs_gsd_m``) says whether an abstention was ``out_of_scale``. Read with GDAL's
Python bindings (without them, or for a file GDAL cannot open, the file counts as a plain picture).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import bodies, body_check
from .batch.crs import CrsFacts, facts_from_wkt
from .body_check import Advice

#: How a command-line user fixes a CRS problem (``core.body_check``).
CLI_ADVICE = Advice(subject="the image", set_crs="Give it a CRS (gdal_edit.py -a_srs ...)",
                    choose_body="--body", override="--body")


@dataclass(frozen=True)
class ImageGeo:
    """A georeferenced file's CRS facts and its extent in CRS units."""

    crs: CrsFacts
    width_units: float   # the raster's width in CRS units
    height_units: float
    columns: int         # its size in pixels
    rows: int
    centre_y: float

    def gsd_m(self, read_columns: int, read_rows: int) -> float:
        """Ground metres per pixel of the whole raster read as ``read_columns`` x ``read_rows`` pixels."""
        return bodies.crs_gsd_m(self.crs, self.width_units, self.height_units, read_columns, read_rows,
                                self.centre_y)


def image_geo(path: str, body_override: str | None = None) -> ImageGeo | None:
    """The georeferencing of ``path``, or None for a picture without a CRS (or without GDAL)."""
    try:
        from osgeo import gdal
    except ImportError:
        return None
    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
        srs = ds.GetSpatialRef() if ds is not None else None
    except RuntimeError:
        return None
    if srs is None:
        return None
    override = bodies.body_by_name(body_override) if body_override else None
    wkt2 = srs.ExportToWkt(["FORMAT=WKT2_2019"]) or srs.ExportToWkt()
    degrees = bool(srs.IsGeographic())
    unit_to_m = 1.0 if degrees else float(srs.GetLinearUnits() or 1.0)
    code, authority = srs.GetAuthorityCode(None), srs.GetAuthorityName(None)
    facts = facts_from_wkt(srs.ExportToWkt(), wkt2, f"{authority}:{code}" if code and authority else "", degrees,
                           unit_to_m, override)
    x0, px, _, y0, _, py = ds.GetGeoTransform()
    return ImageGeo(facts, abs(px) * ds.RasterXSize, abs(py) * ds.RasterYSize, ds.RasterXSize, ds.RasterYSize,
                    y0 + py * ds.RasterYSize / 2)


def image_body(geo: ImageGeo, contract) -> str:
    """The body to classify ``geo``'s image for, or ``body_check.BodyError`` naming why the model cannot."""
    return body_check.check_body(geo.crs, contract, CLI_ADVICE)
