"""Rectangles from one CRS to another, without ever assuming the Earth.

Between planetary CRSs QGIS/PROJ can refuse a transform ("No transform available between unnamed ellipse and
Custom CRS") or, across bodies, return an invalid one that silently passes coordinates through. The rules:

1. the same CRS: the coordinates are used as they are;
2. a valid QgsCoordinateTransform that succeeds: its densified bounding box;
3. it fails or is invalid, but both CRSs sit on the same body with the same radius: retry with PROJ-string
   copies of both CRSs (a pure map-projection change on one sphere, no datum question for PROJ to refuse);
4. that fails too, and both CRSs have the same PROJ definition (a renamed copy, as QGIS makes for a canvas):
   the coordinates are used directly;
5. otherwise :class:`CrsMismatchError`, naming both CRSs and what to do. Coordinates are never reused across
   different projections or bodies, where they would point somewhere else entirely.
"""
from __future__ import annotations

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsCoordinateTransformContext,
                       QgsCsException, QgsProject, QgsRectangle)

from . import layer_info

#: Relative radius difference below which two ellipsoids count as the same body surface.
RADIUS_TOLERANCE = 1e-6


class CrsMismatchError(ValueError):
    """A rectangle cannot be placed in the target CRS; the message says which CRSs and what to do."""


def _name(crs: QgsCoordinateReferenceSystem) -> str:
    return crs.description() or crs.authid() or crs.toProj() or "an unnamed CRS"


def same_surface(a: QgsCoordinateReferenceSystem, b: QgsCoordinateReferenceSystem) -> bool:
    """Both CRSs lie on the same body with the same radius (their WKT says so)."""
    ia, ib = layer_info.crs_info(a), layer_info.crs_info(b)
    if ia.detected is None or ia.detected != ib.detected:
        return False
    if ia.radius_m is None or ib.radius_m is None:
        return False
    return abs(ia.radius_m - ib.radius_m) <= RADIUS_TOLERANCE * max(ia.radius_m, ib.radius_m)


def _try(src: QgsCoordinateReferenceSystem, dst: QgsCoordinateReferenceSystem, rect: QgsRectangle,
         context: QgsCoordinateTransformContext) -> QgsRectangle | None:
    ct = QgsCoordinateTransform(src, dst, context)
    if not ct.isValid():
        return None
    try:
        out = ct.transformBoundingBox(rect)
    except QgsCsException:
        return None
    return out if not out.isNull() and out.isFinite() else None


def rect_to_crs(rect: QgsRectangle, src: QgsCoordinateReferenceSystem, dst: QgsCoordinateReferenceSystem,
                context: QgsCoordinateTransformContext | None = None) -> QgsRectangle:
    """``rect`` (in ``src``) as a rectangle in ``dst``, following the rules in the module docstring."""
    if not src.isValid() or src == dst:
        return QgsRectangle(rect)
    context = context or QgsProject.instance().transformContext()
    out = _try(src, dst, rect, context)
    if out is not None:
        return out
    if same_surface(src, dst):
        out = _try(QgsCoordinateReferenceSystem.fromProj(src.toProj()),
                   QgsCoordinateReferenceSystem.fromProj(dst.toProj()), rect, context)
        if out is not None:
            return out
        if src.toProj() == dst.toProj():
            return QgsRectangle(rect)
    raise CrsMismatchError(
        f"cannot place the rectangle from '{_name(src)}' into the raster's CRS '{_name(dst)}': no coordinate "
        "transform exists between them (different bodies or an unknown datum). Set the project/canvas CRS to the "
        "raster layer's CRS (Layer > Set Project CRS from Layer) and try again.")
