"""Which body a raster shows, and how many metres one of its pixels spans there.

Planetary rasters rarely carry authority codes: ISIS3 cubes and the Apollo GeoTIFFs name their datum freely
("D_Mars", "GCS_VESTA", or just "unnamed ellipse" with a lunar radius). Detection therefore reads body names
from the WKT first, then IAU_2015 authority codes, then falls back to the ellipsoid radius, which is what really
matters for ground distances. Earth is recognised too, so the plugin can say "this is not a planetary raster"
instead of mislabelling it. A CRS of another body (Mercury, Titan, Ceres, ...) is detected as no body, never
as the one of ours its radius happens to resemble (Enceladus and Pallas are Vesta-sized), and
:func:`named_body` says which body it names, so the user can be told. Never QGIS's Earth constant for degrees:
distances use the detected body's radius.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Body:
    """A body with its IAU 2015 mean radius and the radius range its ellipsoids show in the wild."""

    name: str
    mean_radius_m: float
    radius_range_m: tuple[float, float]
    iau_code: int  # NAIF id * 100, the base of PROJ's IAU_2015 codes for this body
    names: tuple[str, ...]  # lower-case words that name it in WKT


#: Names include the instruments and missions whose products name their ellipsoid after them ("MOLA", "LOLA"):
#: a name that is none of ours makes a radius-only match untrusted (:func:`detect_body`).
MARS = Body("Mars", 3389500.0, (3.30e6, 3.45e6), 49900, ("mars", "martian", "areocentric", "areographic", "mola",
                                                        "hrsc", "ctx", "hirise", "themis"))
MOON = Body("Moon", 1737400.0, (1.70e6, 1.78e6), 30100, ("moon", "lunar", "luna", "selene", "selenocentric",
                                                        "selenographic", "lola", "lroc", "apollo", "kaguya",
                                                        "clementine"))
VESTA = Body("Vesta", 262700.0, (2.0e5, 3.0e5), 200000400, ("vesta",))
EARTH = Body("Earth", 6371008.8, (6.30e6, 6.40e6), 39900, ("earth", "wgs", "wgs84", "grs", "grs80", "nad",
                                                             "etrs", "osgb", "clarke", "bessel"))
PLANETARY_BODIES: tuple[Body, ...] = (MARS, MOON, VESTA)
ALL_BODIES: tuple[Body, ...] = PLANETARY_BODIES + (EARTH,)

_ELLIPSOID = re.compile(r'(?:ELLIPSOID|SPHEROID)\s*\[\s*"([^"]*)"\s*,\s*([0-9.eE+-]+)', re.IGNORECASE)
#: IAU codes as WKT2 (``ID["IAU",60600,2015]``) and WKT1 (``AUTHORITY["IAU","60600"]``) write them.
_IAU_CODE = re.compile(r'(?:ID|AUTHORITY)\s*\[\s*"IAU(?:_2015)?"\s*,\s*"?(\d+)', re.IGNORECASE)
#: Where a WKT names its body, most direct first: the ellipsoid, the datum, the geographic CRS.
_NAMING_KEYWORDS = (("ELLIPSOID", "SPHEROID"), ("DATUM",), ("GEOGCRS", "GEOGCS", "GEODCRS", "BASEGEOGCRS", "BASEGEODCRS"))


def _named(keywords: tuple[str, ...]) -> re.Pattern:
    """The quoted names of the WKT nodes ``keywords`` (``DATUM["D_Mars", ...]`` -> ``D_Mars``)."""
    return re.compile(r'\b(?:' + "|".join(keywords) + r')\s*\[\s*"([^"]*)"', re.IGNORECASE)


_NAMING = tuple(_named(k) for k in _NAMING_KEYWORDS)
_NAME_WORDS = _named(sum(_NAMING_KEYWORDS, ("PROJCRS", "PROJCS")))
#: Words around a body's name in ellipsoid, datum and CRS names that say nothing about the body
#: (``D_Mars``, ``GCS_Titan``, ``Vesta_localRadius``, ``Mercury (2015) - Sphere``, ``unnamed ellipse``).
_GENERIC_WORDS = frozenset({
    "unnamed", "unknown", "undefined", "none", "custom", "user", "defined", "not", "specified", "based", "on", "of",
    "the", "ellipse", "ellipsoid", "spheroid", "sphere", "spherical", "datum", "gcs", "crs", "geographic",
    "geocentric", "geodetic", "ocentric", "ographic", "planetocentric", "planetographic", "iau", "iau2000",
    "iau2015", "iag", "mean", "radius", "localradius", "polarradius", "equatorialradius", "reference"})


def body_by_name(name: str) -> Body:
    """Look a body up by its name (case-insensitive); used for the user's override."""
    for b in ALL_BODIES:
        if b.name.lower() == name.strip().lower():
            return b
    raise ValueError(f"unknown body '{name}'; choose one of {[b.name for b in PLANETARY_BODIES]}")


def semi_major_axis_m(wkt: str) -> float | None:
    """Semi-major axis of the (first) ellipsoid in a WKT1 or WKT2 string, in metres."""
    m = _ELLIPSOID.search(wkt or "")
    return float(m.group(2)) if m else None


def _by_code(code: int) -> Body | None:
    """The body of an IAU code (NAIF id * 100 + the CRS's number), None for a body that is none of ours."""
    return next((b for b in ALL_BODIES if code // 100 == b.iau_code // 100), None)


def _by_iau_code(codes: list[int]) -> Body | None:
    return next((b for b in map(_by_code, codes) if b is not None), None)


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def _by_words(words: set[str]) -> Body | None:
    return next((b for b in ALL_BODIES if words & set(b.names)), None)


def _by_name_words(wkt: str) -> Body | None:
    return _by_words({w for name in _NAME_WORDS.findall(wkt) for w in _words(name)})


def named_body(wkt: str) -> str | None:
    """The body a CRS's names give ("Titan" for ``ELLIPSOID["Titan (2015) - Sphere",...]``, "Mars" for
    ``SPHEROID["Mars_localRadius",...]``), or None when they are generic ("unnamed ellipse")."""
    for pattern in _NAMING:
        for name in pattern.findall(wkt or ""):
            core = re.sub(r"\([^)]*\)", " ", name.split(" - ")[0])
            words = [w for w in re.split(r"[^A-Za-z0-9]+", core)
                     if len(w) > 1 and not w.isdigit() and w.lower() not in _GENERIC_WORDS]
            if words:
                return " ".join(words)
    return None


def body_in_name(name: str) -> Body | None:
    """Which of our bodies a name such as :func:`named_body` returns names ("Mars 2000" -> Mars), if any."""
    return _by_words(set(_words(name)))


def _names_another_body(wkt: str, codes: list[int]) -> bool:
    """The CRS names a body that is none of ours: by an IAU code, or by the name of its ellipsoid or datum."""
    if any(_by_code(code) is None for code in codes):
        return True
    name = named_body(wkt)
    return name is not None and body_in_name(name) is None


def _by_radius(radius: float | None) -> Body | None:
    if radius is None:
        return None
    for b in ALL_BODIES:
        lo, hi = b.radius_range_m
        if lo <= radius <= hi:
            return b
    return None


def detect_body(wkt: str, authid: str = "") -> Body | None:
    """Body named by a CRS (WKT and, where QGIS has one, its auth id such as ``IAU_2015:49900``).

    The radius must agree with a name found in the text: a "Mars" datum on an Earth-sized ellipsoid is not
    trusted. Returns None when nothing identifies a body, and when the CRS names another body (by IAU code or
    name) whose radius merely falls in one of our bodies' ranges.
    """
    text = wkt or ""
    radius = semi_major_axis_m(text)
    by_radius = _by_radius(radius)
    code_match = re.match(r"IAU(?:_2015)?:(\d+)", authid or "", re.IGNORECASE)
    codes = [int(code_match.group(1))] if code_match else []
    by_code = _by_code(codes[0]) if codes else None
    if authid.upper().startswith("EPSG:"):
        by_code = by_code or (EARTH if by_radius in (None, EARTH) else None)
    codes += [int(c) for c in _IAU_CODE.findall(text)]
    for candidate in (by_code, _by_iau_code(codes), _by_name_words(text)):
        if candidate is not None and (radius is None or by_radius is candidate):
            return candidate
    if by_radius is not EARTH and _names_another_body(text, codes):
        return None
    return by_radius


def ground_pixel_size_m(body: Body, pixel_x: float, pixel_y: float, geographic: bool,
                        centre_lat_deg: float = 0.0, unit_to_m: float = 1.0,
                        radius_m: float | None = None) -> tuple[float, float]:
    """Ground size (x, y) in metres of one pixel of ``pixel_x`` by ``pixel_y`` CRS units.

    Geographic CRSs: degrees on the body's sphere (the CRS's own radius where known), x shrinking with
    cos(latitude). Projected CRSs: the CRS's linear unit (metres times ``unit_to_m``); the projection's scale
    distortion is not corrected, which is small within one map extent.
    """
    if geographic:
        r = radius_m or body.mean_radius_m
        metres_per_degree = math.pi * r / 180.0
        coslat = max(math.cos(math.radians(min(max(centre_lat_deg, -90.0), 90.0))), 1e-6)
        return abs(pixel_x) * metres_per_degree * coslat, abs(pixel_y) * metres_per_degree
    return abs(pixel_x) * unit_to_m, abs(pixel_y) * unit_to_m


def gsd_m(body: Body, pixel_x: float, pixel_y: float, geographic: bool, centre_lat_deg: float = 0.0,
          unit_to_m: float = 1.0, radius_m: float | None = None) -> float:
    """One number for the ground sampling distance: the geometric mean of the x and y pixel sizes."""
    gx, gy = ground_pixel_size_m(body, pixel_x, pixel_y, geographic, centre_lat_deg, unit_to_m, radius_m)
    return math.sqrt(gx * gy)


def crs_gsd_m(facts, width: float, height: float, columns: int, rows: int, centre_y: float) -> float:
    """Ground metres per pixel of a ``columns`` x ``rows`` image covering ``width`` x ``height`` CRS units.

    ``facts``: what is known of the raster's CRS -- QGIS's ``qgis_io.layer_info.CrsInfo`` or the batch command's
    ``core.batch.crs.CrsFacts`` (the same fields: valid, body, degrees, radius_m, unit_to_m), so both paths
    compute it here. NaN without a CRS (the map units are unknown, whatever the body), and for degrees with
    neither a radius in the WKT nor a detected body (no Earth guess), and for an image without pixels (a web
    layer reports 0 x 0).
    """
    if not facts.valid or columns <= 0 or rows <= 0:
        return float("nan")
    body = facts.body
    if body is None:
        if facts.degrees and facts.radius_m is None:
            return float("nan")
        # No body: the CRS's own radius is all that matters for ground distance; projected units need none.
        radius = facts.radius_m or 1.0
        body = Body("unknown", radius, (radius, radius), 0, ())
    return gsd_m(body, width / columns, height / rows, facts.degrees, centre_y, facts.unit_to_m, facts.radius_m)
