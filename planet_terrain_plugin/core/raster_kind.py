"""Is a raster an image at all? Elevation, slope, shaded-relief and colour-shaded products are refused.

The model classifies what a camera saw. A digital terrain model holds heights (or radii), a slope map angles, a
shaded relief the light a renderer computed from heights, and a colour-shaded product colours that stand for
values: given to the model they get confident, meaningless labels (a Vesta DTM came back `crater` at 0.93). The
softmax and the out-of-distribution score cannot be trusted to catch them, so they are refused from what the
file itself says, before any pixel reaches the model, by every entry point (QGIS through
``qgis_io.layer_info.raster_kind``, the image command line and the batch command).

The evidence, strongest first (the first that speaks decides, and the message names it):

1. a band's unit (metres, kilometres: heights; degrees or percent with a slope description: slope);
2. a band's description (elevation, height, DTM, radius, slope, hillshade, ...);
3. the ISIS3 label (GDAL's ``json:ISIS3`` metadata domain): a pixel base equal to the body's radius (stored
   values are radii minus the radius, as ISIS keeps shape models) or a ``ShapeModelStatistics`` table, which
   ISIS writes into shape models (DTMs) only;
4. a colour table whose colours are mostly not grey (a grey palette is a picture; colours stand for values);
5. the values themselves: floating-point values that are radii of the body (within :data:`RADIUS_SHARE` of its
   radius) or reach far below zero (:data:`HEIGHT_BELOW_DATUM_M`; no brightness is negative);
6. last, and only when nothing says "image": words of the file name (``dtm``, ``dem``, ``shade``, ``slope``,
   ...; ``hidtmgen`` or ``ortho`` are not such words).

No Qt here: facts come from GDAL's Python bindings when they are installed (without them nothing is refused).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable

import numpy as np


class RasterKind(str, Enum):
    """What a raster holds; only :attr:`IMAGE` is classified."""

    IMAGE = "image"
    ELEVATION = "elevation"
    SLOPE = "slope"
    SHADED_RELIEF = "shaded relief"
    COLOUR_SHADED = "colour-shaded product"


#: Values within this share of the body's radius are radii (a shape model), not brightness.
RADIUS_SHARE = 0.5
#: Floating-point values whose 5th percentile lies below this are heights below a datum: brightness (DN,
#: radiance, reflectance) is never this negative, while most DTMs of Mars and the Moon reach below their datum.
HEIGHT_BELOW_DATUM_M = -100.0
#: A colour table is a colour-shaded (or classification) product when more than this share of its entries are
#: colours rather than greys (channel spread above :data:`GREY_SPREAD`).
COLOURED_SHARE = 0.25
GREY_SPREAD = 32
#: Longest side of the decimated read used to look at the values (cheap on any raster; overviews help).
SAMPLE_SIDE = 256

_ELEVATION_UNITS = {"m", "metre", "metres", "meter", "meters", "km", "kilometre", "kilometres", "kilometer",
                    "kilometers", "ft", "feet"}
_SLOPE_UNITS = {"deg", "degree", "degrees", "°", "percent", "%"}
#: Words (of a band description or a file name) -> kind. Checked as whole words.
_WORDS: tuple[tuple[RasterKind, tuple[str, ...]], ...] = (
    (RasterKind.SHADED_RELIEF, ("hillshade", "hillshaded", "shade", "shaded", "relief", "shadedrelief")),
    (RasterKind.SLOPE, ("slope", "slopes", "aspect", "curvature", "roughness")),
    (RasterKind.COLOUR_SHADED, ("colorshade", "colourshade", "hypsometric", "colorrelief", "colourrelief")),
    (RasterKind.ELEVATION, ("dtm", "dem", "dsm", "elevation", "elev", "height", "heights", "altitude", "topo",
                            "topography", "radius", "radii", "gld100")),
)
#: File-name words that say "image": a name holding one is never refused on its words.
_IMAGE_WORDS = ("ortho", "orthoimage", "orthophoto", "image", "photo", "red", "irb", "edr", "rdr")

_WHAT = {
    RasterKind.ELEVATION: "it holds elevation",
    RasterKind.SLOPE: "it holds slope",
    RasterKind.SHADED_RELIEF: "it is a shaded relief",
    RasterKind.COLOUR_SHADED: "it is a colour-shaded product",
}
_ADVICE = {
    RasterKind.ELEVATION: "heights are not brightness",
    RasterKind.SLOPE: "a slope map is computed from heights, not seen by a camera",
    RasterKind.SHADED_RELIEF: "a shaded relief is rendered from heights, not photographed",
    RasterKind.COLOUR_SHADED: "its colours stand for values, they are not what a camera saw",
}


@dataclass(frozen=True)
class Verdict:
    """What a raster holds, and the evidence (empty for an image nothing spoke against)."""

    kind: RasterKind
    evidence: str = ""

    @property
    def is_image(self) -> bool:
        return self.kind is RasterKind.IMAGE

    def message(self, name: str) -> str:
        """The refusal: what the raster holds, the evidence, and what to use instead."""
        return (f"'{name}' is not an image: {_WHAT[self.kind]} ({self.evidence}); Planet Terrain "
                f"classifies images and {_ADVICE[self.kind]}. Use an orthoimage or a camera image of the area "
                "instead.")


@dataclass(frozen=True)
class BandFacts:
    description: str = ""
    unit: str = ""
    data_type: str = ""  # GDAL's name: Byte, Int16, Float32, ...
    offset: float = 0.0
    scale: float = 1.0
    colours: tuple[tuple[int, int, int], ...] = ()  # the colour table's entries (empty: none)


@dataclass(frozen=True)
class RasterFacts:
    """What the file says about itself: the input of :func:`judge` (filled by :func:`facts_from_gdal`)."""

    name: str
    bands: tuple[BandFacts, ...] = ()
    isis: dict | None = None  # the ``json:ISIS3`` metadata (its top level)
    radius_m: float | None = None  # the body's radius from the ISIS label or the CRS
    sample: np.ndarray | None = None  # valid values of band 1 (scaled), from a decimated read


def judge(facts: RasterFacts) -> Verdict:
    """The kind of raster ``facts`` describe (see the module docstring for the order of the evidence)."""
    for rule in (_by_units, _by_descriptions, _by_isis_label, _by_colour_table, _by_values, _by_name):
        verdict = rule(facts)
        if verdict is not None:
            return verdict
    return Verdict(RasterKind.IMAGE)


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (split at anything but letters and digits)."""
    return [w for w in re.split(r"[^0-9a-z°%]+", text.lower()) if w]


def _kind_of_words(found: Iterable[str]) -> tuple[RasterKind, str] | None:
    found = list(found)
    for kind, vocabulary in _WORDS:
        for word in found:
            if word in vocabulary:
                return kind, word
    return None


def _by_units(facts: RasterFacts) -> Verdict | None:
    for i, band in enumerate(facts.bands, start=1):
        unit = band.unit.strip().lower()
        if unit in _ELEVATION_UNITS:
            return Verdict(RasterKind.ELEVATION, f"band {i}'s unit is '{band.unit}'")
        if unit in _SLOPE_UNITS and _kind_of_words(words(band.description)):
            return Verdict(RasterKind.SLOPE, f"band {i} is '{band.description}' in '{band.unit}'")
    return None


def _by_descriptions(facts: RasterFacts) -> Verdict | None:
    for i, band in enumerate(facts.bands, start=1):
        hit = _kind_of_words(words(band.description))
        if hit is not None:
            return Verdict(hit[0], f"band {i} is described as '{band.description}'")
    return None


def _by_isis_label(facts: RasterFacts) -> Verdict | None:
    if not facts.isis:
        return None
    for key, value in facts.isis.items():
        if key.startswith("Table") and isinstance(value, dict) and value.get("Name") == "ShapeModelStatistics":
            return Verdict(RasterKind.ELEVATION, "its ISIS3 label carries a ShapeModelStatistics table, which ISIS "
                                                 "writes into shape models (DTMs)")
    pixels = (facts.isis.get("IsisCube") or {}).get("Core", {}).get("Pixels", {})
    base = _number(pixels.get("Base"))
    if facts.radius_m and base and abs(base - facts.radius_m) <= 0.01 * facts.radius_m:
        return Verdict(RasterKind.ELEVATION, f"its ISIS3 label's pixel base is {base:,.0f} m, the body's radius: "
                                             "the values are radii")
    return None


def _by_colour_table(facts: RasterFacts) -> Verdict | None:
    colours = facts.bands[0].colours if facts.bands else ()
    if not colours:
        return None
    spread = np.ptp(np.asarray(colours, dtype=np.int32), axis=1)
    coloured = float((spread > GREY_SPREAD).mean())
    if coloured <= COLOURED_SHARE:
        return None
    return Verdict(RasterKind.COLOUR_SHADED, f"a colour table of {len(colours)} entries, {coloured:.0%} of them "
                                             "colours rather than greys")


def _by_values(facts: RasterFacts) -> Verdict | None:
    band = facts.bands[0] if facts.bands else None
    sample = facts.sample
    if band is None or sample is None or sample.size == 0 or not band.data_type.startswith("Float") \
            and band.offset == 0 and band.scale == 1:
        return None
    low, high = (float(v) for v in np.percentile(sample, (5, 95)))
    radius = facts.radius_m
    if radius and radius > 1000 and abs(low - radius) <= RADIUS_SHARE * radius \
            and abs(high - radius) <= RADIUS_SHARE * radius:
        return Verdict(RasterKind.ELEVATION, f"its values, {low:,.0f} to {high:,.0f}, are radii of the body "
                                             f"({radius:,.0f} m)")
    if low < HEIGHT_BELOW_DATUM_M:
        return Verdict(RasterKind.ELEVATION, f"{band.data_type} values reaching {low:,.0f} (5th percentile), far "
                                             "below zero as heights below a datum are")
    return None


def _by_name(facts: RasterFacts) -> Verdict | None:
    found = words(os.path.splitext(facts.name)[0])
    if any(w in _IMAGE_WORDS for w in found):
        return None
    hit = _kind_of_words(found)
    if hit is None:
        return None
    return Verdict(hit[0], f"nothing in the file says otherwise, and its name holds '{hit[1]}'")


def _number(value: Any) -> float | None:
    try:
        return float(value["value"] if isinstance(value, dict) else value)
    except (KeyError, TypeError, ValueError):
        return None


# -- facts from GDAL ----------------------------------------------------------------------------------------
def facts_from_gdal(path: str) -> RasterFacts | None:
    """What GDAL reads of ``path`` (None without GDAL's bindings or when GDAL cannot open it)."""
    try:
        from osgeo import gdal
    except ImportError:
        return None
    try:
        dataset = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
        if dataset is None or dataset.RasterCount == 0:
            return None
        bands = tuple(_band_facts(gdal, dataset.GetRasterBand(i)) for i in range(1, dataset.RasterCount + 1))
        isis = _isis_label(dataset)
        radius = _radius(dataset, isis)
        first = bands[0]
        values = first.data_type.startswith("Float") or first.offset != 0 or first.scale != 1
        return RasterFacts(os.path.basename(path), bands, isis, radius,
                           _sample(dataset.GetRasterBand(1)) if values else None)
    except RuntimeError:  # GDAL with exceptions on: a file it cannot open is the readers' to report
        return None


def judge_file(path: str) -> Verdict:
    """:func:`judge` of the file at ``path`` (an image when GDAL cannot say)."""
    facts = facts_from_gdal(path)
    return Verdict(RasterKind.IMAGE) if facts is None else judge(facts)


class NotAnImageError(ValueError):
    """A raster that is not an image (:func:`check_file`); the message names the evidence and what to do."""


def check_file(path: str) -> None:
    """Refuse the file at ``path`` with :class:`NotAnImageError` when it is not an image."""
    verdict = judge_file(path)
    if not verdict.is_image:
        raise NotAnImageError(verdict.message(os.path.basename(path)))


def _band_facts(gdal, band) -> BandFacts:
    table = band.GetColorTable()
    colours = tuple(tuple(table.GetColorEntry(i)[:3]) for i in range(table.GetCount())) if table else ()
    return BandFacts(description=band.GetDescription() or "", unit=band.GetUnitType() or "",
                     data_type=gdal.GetDataTypeName(band.DataType) or "", offset=band.GetOffset() or 0.0,
                     scale=band.GetScale() or 1.0, colours=colours)


def _isis_label(dataset) -> dict | None:
    import json

    text = dataset.GetMetadata_List("json:ISIS3")
    if not text:
        return None
    try:
        return json.loads(text[0] if isinstance(text, list) else text)
    except (ValueError, TypeError):
        return None


def _radius(dataset, isis: dict | None) -> float | None:
    mapping = ((isis or {}).get("IsisCube") or {}).get("Mapping") or {}
    radius = _number(mapping.get("EquatorialRadius"))
    if radius:
        return radius
    srs = dataset.GetSpatialRef()
    try:
        return float(srs.GetSemiMajor()) if srs is not None else None
    except RuntimeError:
        return None


def _sample(band) -> np.ndarray:
    """Valid, scaled values of ``band`` from a read of at most :data:`SAMPLE_SIDE` pixels a side."""
    width, height = band.XSize, band.YSize
    step = max(1, -(-max(width, height) // SAMPLE_SIDE))
    w, h = max(1, width // step), max(1, height // step)
    values = band.ReadAsArray(buf_xsize=w, buf_ysize=h)
    mask = band.GetMaskBand().ReadAsArray(buf_xsize=w, buf_ysize=h)
    if values is None:
        return np.empty(0)
    values = values.astype(np.float64) * (band.GetScale() or 1.0) + (band.GetOffset() or 0.0)
    valid = np.isfinite(values) & ((mask > 0) if mask is not None else True)
    return values[valid]
