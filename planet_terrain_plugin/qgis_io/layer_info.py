"""Which body a raster layer shows, and how many metres one pixel spans there.

Body detection and ground distances are core facts (``core.bodies``); this module only feeds them what QGIS
knows about a layer's CRS. Two QGIS 3.22 quirks matter here:

* a geographic CRS built from a custom WKT (the Apollo GeoTIFFs' "unnamed ellipse") reports
  ``isGeographic() == False`` while its map units are degrees, so degrees are recognised by the unit too;
* QGIS's own degree-to-metre factor assumes the Earth; degrees are converted with the CRS's own radius (or the
  detected body's) by ``core.bodies.gsd_m`` instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle, QgsUnitTypes

from ..core import bodies, raster_kind
from ..core.bodies import crs_gsd_m as extent_gsd_m
from ..core.bodies import Body

#: Choices offered to the user for overriding the detected body: "auto" plus the planetary bodies.
BODY_CHOICES: tuple[str, ...] = ("auto",) + tuple(b.name for b in bodies.PLANETARY_BODIES)


@dataclass(frozen=True)
class CrsInfo:
    """What the pipeline needs to know about a layer's CRS, read once on the main thread."""

    body: Body | None          # the body used (override, else detected)
    detected: Body | None      # what the CRS itself says
    overridden: bool
    degrees: bool              # map units are degrees (geographic), whatever isGeographic() claims
    radius_m: float | None     # the CRS's own semi-major axis, when its WKT has one
    unit_to_m: float           # metres per map unit for projected CRSs (1 for degrees: handled by radius)
    description: str
    valid: bool = True         # False: the layer has no (valid) CRS at all
    named: str | None = None   # the body the CRS's names give (core.bodies.named_body), ours or not

    @property
    def body_name(self) -> str:
        return self.body.name if self.body else "unknown"


def crs_wkt(crs: QgsCoordinateReferenceSystem) -> str:
    """WKT2 (names and ellipsoid included) for core.bodies; WKT_PREFERRED when WKT2_2019 is empty."""
    return crs.toWkt(QgsCoordinateReferenceSystem.WKT2_2019) or crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)


def is_degrees(crs: QgsCoordinateReferenceSystem) -> bool:
    return crs.isGeographic() or crs.mapUnits() == QgsUnitTypes.DistanceDegrees


def crs_info(crs: QgsCoordinateReferenceSystem, body_override: str | None = None) -> CrsInfo:
    """Detect the body of ``crs`` (or apply the user's override: a body name, or None / "auto")."""
    wkt = crs_wkt(crs)
    detected = bodies.detect_body(wkt, crs.authid())
    override = None if not body_override or body_override.strip().lower() == "auto" else bodies.body_by_name(body_override)
    degrees = is_degrees(crs)
    unit_to_m = 1.0
    if not degrees:
        factor = QgsUnitTypes.fromUnitToUnitFactor(crs.mapUnits(), QgsUnitTypes.DistanceMeters)
        unit_to_m = factor if factor and math.isfinite(factor) and factor > 0 else 1.0
    return CrsInfo(body=override or detected, detected=detected, overridden=override is not None, degrees=degrees,
                   radius_m=bodies.semi_major_axis_m(wkt), unit_to_m=unit_to_m, description=crs.description(),
                   valid=crs.isValid(), named=bodies.named_body(wkt))


def raster_verdict(provider) -> raster_kind.Verdict:
    """What a raster layer's file holds (``core.raster_kind``): an image, or elevation, slope, shaded relief or a
    colour-shaded product. Read from the file GDAL opens for the layer; a layer of another provider, or one
    GDAL cannot open by its source, counts as an image."""
    if provider is None or provider.name() != "gdal":
        return raster_kind.Verdict(raster_kind.RasterKind.IMAGE)
    return raster_kind.judge_file(provider.dataSourceUri())


def gsd_m(info: CrsInfo, extent: QgsRectangle, width: int, height: int) -> float:
    """Ground metres per pixel of a ``width`` x ``height`` image covering ``extent`` (in the layer CRS).

    NaN when the CRS is in degrees and neither its WKT nor a detected body gives a radius (no Earth guess), and
    when the layer has no CRS at all.
    """
    return extent_gsd_m(info, extent.width(), extent.height(), width, height, extent.center().y())
