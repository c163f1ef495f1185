"""What "the CRS survived" means for the export tests: the same geodesy, point for point."""
from __future__ import annotations

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsCoordinateTransformContext,
                       QgsCsException, QgsPointXY, QgsRectangle)

from planet_terrain_plugin.qgis_io import layer_info


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
