"""Rectangles and polygons from one CRS to another, without ever assuming the Earth.

Between planetary CRSs QGIS/PROJ can refuse a transform ("No transform available between unnamed ellipse and
Custom CRS") or, across bodies, return an invalid one that silently passes coordinates through. The rules, one
ladder for rectangles (:func:`rect_to_crs`) and polygons (:func:`geometries_to_crs`):

1. the same CRS: the coordinates are used as they are;
2. the two CRSs name different bodies (Mars polygons over a Moon raster): :class:`CrsMismatchError`, whatever
   PROJ would do;
3. a valid QgsCoordinateTransform that succeeds: its result (densified bounding box for a rectangle);
4. it fails or is invalid, but both CRSs sit on the same body with the same radius: retry with PROJ-string
   copies of both CRSs (a pure map-projection change on one sphere, no datum question for PROJ to refuse);
5. that fails too, and both CRSs have the same PROJ definition (a renamed copy, as QGIS makes for a canvas):
   the coordinates are used directly;
6. otherwise :class:`CrsMismatchError`, naming both CRSs and their bodies, and what to do. Coordinates are never
   reused across different projections or bodies, where they would point somewhere else entirely.

A rectangle with no CRS at all (an EXTENT typed as four numbers) is taken to be in the target CRS; polygons
whose CRS QGIS cannot read (QGIS 3.22 cannot read the IAU_2015 WKT that GDAL writes) are refused instead: their
numbers could be anything.

Geographic rasters come with longitudes -180..180 or 0..360; :func:`to_raster_longitudes` moves a rectangle
given in the other convention onto the raster.
"""
from __future__ import annotations

import re
from typing import Callable, TypeVar

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsCoordinateTransformContext,
                       QgsCsException, QgsGeometry, QgsProject, QgsRectangle)

from . import layer_info

#: Relative radius difference below which two ellipsoids count as the same body surface.
RADIUS_TOLERANCE = 1e-6


class CrsMismatchError(ValueError):
    """Coordinates cannot be placed in the target CRS; the message says which CRSs and what to do."""


T = TypeVar("T")
_WKT_NAME = re.compile(r'^\s*[A-Z_0-9]+\[\s*"([^"]+)"')


def _name(crs: QgsCoordinateReferenceSystem) -> str:
    wkt_name = _WKT_NAME.match(crs.toWkt() or "")
    return (crs.description() or crs.authid() or (wkt_name.group(1) if wkt_name else "") or crs.toProj()
            or "an unnamed CRS")


def describe(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS for a message: its name and the body it lies on ("'GCS_Mars_2000' (on Mars)")."""
    body = layer_info.crs_info(crs).detected
    where = "an unknown body" if body is None else ("the Moon" if body.name == "Moon" else body.name)
    return f"'{_name(crs)}' (on {where})"


def _different_bodies(a: QgsCoordinateReferenceSystem, b: QgsCoordinateReferenceSystem) -> bool:
    ba, bb = layer_info.crs_info(a).detected, layer_info.crs_info(b).detected
    return ba is not None and bb is not None and ba != bb


def same_surface(a: QgsCoordinateReferenceSystem, b: QgsCoordinateReferenceSystem) -> bool:
    """Both CRSs lie on the same body with the same radius (their WKT says so)."""
    ia, ib = layer_info.crs_info(a), layer_info.crs_info(b)
    if ia.detected is None or ia.detected != ib.detected:
        return False
    if ia.radius_m is None or ib.radius_m is None:
        return False
    return abs(ia.radius_m - ib.radius_m) <= RADIUS_TOLERANCE * max(ia.radius_m, ib.radius_m)


def _to_crs(src: QgsCoordinateReferenceSystem, dst: QgsCoordinateReferenceSystem,
            context: QgsCoordinateTransformContext | None, apply: Callable[[QgsCoordinateTransform], T | None],
            unchanged: Callable[[], T], refusal: Callable[[str], str]) -> T:
    """Rules 2-6 of the module docstring: ``apply`` (which may raise QgsCsException or return None for a failed
    transform) with the first transform that works, ``unchanged()`` for a renamed copy, else a
    :class:`CrsMismatchError` with ``refusal(reason)``."""
    if _different_bodies(src, dst):
        raise CrsMismatchError(refusal("they lie on different bodies"))
    context = context or QgsProject.instance().transformContext()
    attempts, surface = [(src, dst)], same_surface(src, dst)
    if surface:
        attempts.append((QgsCoordinateReferenceSystem.fromProj(src.toProj()),
                         QgsCoordinateReferenceSystem.fromProj(dst.toProj())))
    for a, b in attempts:
        ct = QgsCoordinateTransform(a, b, context)
        if not ct.isValid():
            continue
        try:
            out = apply(ct)
        except QgsCsException:
            continue
        if out is not None:
            return out
    if surface and src.toProj() == dst.toProj():
        return unchanged()
    raise CrsMismatchError(refusal("no coordinate transform exists between them (an unknown datum?)"))


def rect_to_crs(rect: QgsRectangle, src: QgsCoordinateReferenceSystem, dst: QgsCoordinateReferenceSystem,
                context: QgsCoordinateTransformContext | None = None) -> QgsRectangle:
    """``rect`` (in ``src``) as a rectangle in ``dst``, following the rules in the module docstring."""
    if not src.isValid() or src == dst:
        return QgsRectangle(rect)

    def box(ct: QgsCoordinateTransform) -> QgsRectangle | None:
        out = ct.transformBoundingBox(rect)
        return out if not out.isNull() and out.isFinite() else None

    return _to_crs(src, dst, context, box, lambda: QgsRectangle(rect), lambda reason: (
        f"cannot place the rectangle from {describe(src)} into the raster's CRS {describe(dst)}: {reason}. Set the "
        "project/canvas CRS to the raster layer's CRS (Layer > Set Project CRS from Layer) and try again."))


def geometries_to_crs(geoms: list[QgsGeometry], src: QgsCoordinateReferenceSystem, dst: QgsCoordinateReferenceSystem,
                      context: QgsCoordinateTransformContext | None = None) -> list[QgsGeometry]:
    """Polygons (in ``src``) in ``dst``, following the rules in the module docstring; refused when QGIS cannot
    read ``src``."""
    reproject = ("Use polygons drawn on the raster's body, reprojected to the raster's CRS (Vector > Data Management "
                 "Tools > Reproject Layer, or ogr2ogr -t_srs)")
    if not src.isValid():
        raise CrsMismatchError(f"QGIS cannot read the polygons' CRS {describe(src)}, so they cannot be placed on "
                               f"the raster's CRS {describe(dst)}. {reproject}, and try again.")
    if src == dst:
        return geoms

    def moved(ct: QgsCoordinateTransform) -> list[QgsGeometry]:
        out = [QgsGeometry(g) for g in geoms]
        for g in out:
            g.transform(ct)
        return out

    return _to_crs(src, dst, context, moved, lambda: geoms, lambda reason: (
        f"the polygons' CRS {describe(src)} cannot be transformed to the raster's CRS {describe(dst)}: {reason}. "
        f"{reproject}; or, if the polygons' CRS is mislabelled, assign the right one (Layer Properties > Source)."))


def to_raster_longitudes(rect: QgsRectangle, raster: QgsRectangle) -> QgsRectangle:
    """``rect`` (degrees) moved by 360° when it lies wholly outside the raster's longitudes and, so moved, overlaps
    them: -60..-20 on a raster of 0..360 is 300..340, the same place written in the other convention. An extent
    that overlaps the raster as given is never moved (one across a seam is refused by the caller)."""
    def overlaps(shift: float) -> bool:
        return rect.xMaximum() + shift > raster.xMinimum() and rect.xMinimum() + shift < raster.xMaximum()

    if overlaps(0.0):
        return rect
    for shift in (360.0, -360.0):
        if overlaps(shift):
            return QgsRectangle(rect.xMinimum() + shift, rect.yMinimum(), rect.xMaximum() + shift, rect.yMaximum())
    return rect
