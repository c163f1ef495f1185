"""What the batch path knows about a raster's CRS: the facts ``qgis_io.layer_info.CrsInfo`` gives QGIS runs,
read from the WKT with rasterio instead of QGIS.

Body detection, radii and ground distances (``core.bodies.crs_gsd_m``, which QGIS runs use too) are
``core.bodies``'s; this module only says which body a run is for, or why the model cannot serve it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .. import bodies, body_check
from ..bodies import Body
from ..body_check import Advice
from ..contract import ModelContract


@dataclass(frozen=True)
class CrsFacts:
    """A raster CRS reduced to what a grid run needs (plain values: travels to Dask workers)."""

    wkt: str                   # as the raster states it (planetary WKT kept intact)
    description: str           # the CRS's name, for messages
    body: Body | None          # the body used (override, else detected)
    overridden: bool
    degrees: bool              # map units are degrees (geographic)
    radius_m: float | None     # the CRS's own semi-major axis, when its WKT has one
    unit_to_m: float           # metres per map unit for projected CRSs
    valid: bool = True         # False: the raster has no CRS at all
    named: str | None = None   # the body the CRS's names give (core.bodies.named_body), ours or not

    @property
    def body_name(self) -> str:
        return self.body.name if self.body else "unknown"

    @property
    def ground_radius_m(self) -> float | None:
        """Radius for degree <-> metre conversions: the CRS's own, else the body's mean radius."""
        return self.radius_m or (self.body.mean_radius_m if self.body else None)


def crs_facts(crs, body_override: str | None = None) -> CrsFacts:
    """Facts of a ``rasterio.crs.CRS`` (or None), with the user's body override (a name, None or "auto")."""
    override = None if not body_override or body_override.strip().lower() == "auto" \
        else bodies.body_by_name(body_override)
    if crs is None or not crs.to_wkt():
        return CrsFacts("", "", override, override is not None, False, None, 1.0, valid=False)
    wkt = crs.to_wkt()
    wkt2 = crs.to_wkt(version="WKT2_2019") or wkt
    units, factor = (None, 1.0) if crs.is_geographic else crs.linear_units_factor
    degrees = bool(crs.is_geographic) or (units or "").lower().startswith("degree")
    unit_to_m = 1.0 if degrees or not (factor and math.isfinite(factor) and factor > 0) else float(factor)
    return facts_from_wkt(wkt, wkt2, _authid(crs), degrees, unit_to_m, override)


def facts_from_wkt(wkt: str, wkt2: str, authid: str, degrees: bool, unit_to_m: float,
                   override: Body | None) -> CrsFacts:
    """The facts of a CRS given as WKT (as stated, and WKT2 for the body rules), whatever library read it."""
    detected = bodies.detect_body(wkt2, authid)
    name = _FIRST_NAME.match(wkt2)
    return CrsFacts(wkt, name.group(1) if name else "", override or detected, override is not None, degrees,
                    bodies.semi_major_axis_m(wkt2), unit_to_m, named=bodies.named_body(wkt2))


#: The name of a WKT's outermost CRS: what QGIS shows as the CRS's description.
_FIRST_NAME = re.compile(r'\s*\w+\s*\[\s*"([^"]*)"')


def _authid(crs) -> str:
    try:
        auth = crs.to_authority()
    except Exception:  # noqa: BLE001 -- PROJ may not know the authority of a planetary CRS
        auth = None
    return f"{auth[0]}:{auth[1]}" if auth else ""


#: How a batch user fixes a CRS problem (``core.body_check``).
BATCH_ADVICE = Advice(subject="the raster", set_crs="Give it a CRS (gdal_edit.py -a_srs ...)", choose_body="--body",
                      override="--body")


def check_body(facts: CrsFacts, contract: ModelContract) -> str:
    """The body name to classify for, or ``BodyError``: the QGIS path's rule (``core.body_check``)."""
    return body_check.check_body(facts, contract, BATCH_ADVICE)
