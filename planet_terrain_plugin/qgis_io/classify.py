"""One extent of one raster -> one decision, as a grid of one cell through the engine (``engine``): the path
shared by the map tool and Processing.

Thread-safe by construction: it only touches a :class:`~.raster_read.RasterSource` snapshot (a provider
clone), a loaded core model and plain values, so it runs inside a ``QgsTask`` or a Processing thread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from qgis.core import QgsRectangle

from ..core import body_check
from ..core.body_check import Advice, BodyError  # noqa: F401 -- BodyError re-exported
from ..core.calibrate import INVALID_OUTPUT_NOTE, Reason
from ..core.contract import ModelContract
from ..core.limits import MIN_EXTENT_PIXELS
from ..core.pipeline import ImageResult
from ..core.session import TerrainModel
from . import engine, layer_info
from .fields import Provenance, utc_now
from .layer_info import CrsInfo
from .raster_read import ExtentError, RasterSource, clip_extent
from .transform import to_raster_longitudes


class Cancelled(Exception):
    """The user cancelled the run; nothing was produced."""


@dataclass
class ExtentOutcome:
    """What one classified (or skipped) extent produced."""

    extent: QgsRectangle             # the extent read, in the layer CRS (clipped to the raster)
    result: ImageResult              # decision, or the reason it was skipped
    provenance: Provenance
    notes: list[str] = field(default_factory=list)

    @property
    def classified(self) -> bool:
        return self.result.decision is not None


#: How a QGIS user fixes a CRS problem (``core.body_check``).
QGIS_ADVICE = Advice(subject="the layer", set_crs="Set the layer's CRS (Layer Properties > Source)",
                     choose_body="BODY parameter / Planet Terrain > Body menu",
                     override="BODY parameter / plugin setting")


def check_body(info: CrsInfo, contract: ModelContract) -> str:
    """The body name to classify for, or :class:`BodyError` when the model cannot serve it (``core.body_check``)."""
    return body_check.check_body(info, contract, QGIS_ADVICE)


class NotAnImageError(ExtentError):
    """The raster holds elevation, slope, shaded relief or colours standing for values, not an image
    (``core.raster_kind``); the message names the evidence and what to use instead."""


def image_problem(provider, name: str) -> str | None:
    """Why the raster of ``provider`` (shown as ``name``) is not an image, or None when it is one."""
    verdict = layer_info.raster_verdict(provider)
    return None if verdict.is_image else verdict.message(name)


def check_image(source: RasterSource) -> None:
    """Refuse a raster that is not an image (:class:`NotAnImageError`), before any pixel is read."""
    problem = image_problem(source.provider, source.layer_name)
    if problem:
        raise NotAnImageError(problem)


def gsd_note(gsd: float, contract: ModelContract) -> str | None:
    """A warning when the pixels are far coarser or finer than what the model was trained on."""
    lo, hi = contract.gsd_range_m
    if not math.isfinite(gsd):
        return "ground pixel size unknown (no CRS, or no body or radius in it)"
    if gsd < lo or gsd > hi:
        return (f"ground pixel size {gsd:.3g} m is outside the model's range {lo:g}-{hi:g} m; "
                "treat the label with care")
    return None


def check_geographic_raster(source: RasterSource, info: CrsInfo) -> None:
    """Refuse a geographic (degree) raster wider than the globe: its geotransform is mislabelled, so every
    position, ground size and area computed from it would be wrong (a 720° raster would report twice the
    body's surface). One pixel of slack allows for a global raster whose edge pixels overlap."""
    px, _ = source.pixel_size
    width = source.extent.width()
    if info.degrees and width > 360.0 + px * (1 + 1e-9):
        raise ExtentError(
            f"the raster '{source.layer_name}' spans {width:g}° of longitude, more than the whole globe (360°): its "
            "geotransform (origin or pixel size) is wrong, so no position or area on it can be trusted. Fix its "
            "georeferencing, e.g. gdal_edit.py -a_ullr <west> <north> <east> <south> (or -a_srs when the CRS is "
            "wrong), and try again.")


def check_geographic_extent(source: RasterSource, extent: QgsRectangle, info: CrsInfo) -> QgsRectangle:
    """``extent`` in the raster's longitudes; refused when it crosses a pole or the longitude seam of a geographic
    (degree) raster, or when the raster is wider than the globe (:func:`check_geographic_raster`).

    An extent written in the other longitude convention (-60..-20 for a raster of 0..360) is moved by 360° onto
    the raster (``transform.to_raster_longitudes``). One that crosses the seam is refused rather than clipped or
    split: clipping would silently drop the part of the area the user asked about (it lies at the opposite edge
    of the image), and splitting would make one label out of two images. Half a pixel of slack allows for
    rectangles snapped by hand to the edge.
    """
    if not info.degrees:
        return extent
    check_geographic_raster(source, info)
    extent = to_raster_longitudes(extent, source.extent)
    px, py = source.pixel_size
    for lat in (extent.yMaximum(), extent.yMinimum()):
        if abs(lat) > 90.0 + py / 2:
            raise ExtentError(
                f"the extent reaches latitude {lat:.6g}°, beyond the {'north' if lat > 0 else 'south'} pole: a "
                "longitude/latitude rectangle cannot cross a pole. Keep it within ±90° latitude, or classify a "
                "polar stereographic version of the raster.")
    raster = source.extent
    if raster.width() >= 360.0 - px / 2:  # a global raster: beyond one edge the globe continues at the other
        west = extent.xMinimum() < raster.xMinimum() - px / 2
        east = extent.xMaximum() > raster.xMaximum() + px / 2
        if west or east:
            seam = raster.xMinimum() if west else raster.xMaximum()
            raise ExtentError(
                f"the extent crosses longitude {seam:g}°, where this global raster wraps around (the antimeridian "
                "seam): its two parts lie at opposite edges of the image. Classify each side of the seam "
                "separately, or use a copy of the raster centred elsewhere.")
    return extent


def check_extent_size(source: RasterSource, extent: QgsRectangle) -> None:
    """Refuse an extent (already clipped to the raster) narrower than :data:`MIN_EXTENT_PIXELS` source pixels."""
    px, py = source.pixel_size
    width, height = extent.width() / px, extent.height() / py
    if min(width, height) < MIN_EXTENT_PIXELS - 1e-6:
        raise ExtentError(
            f"the extent covers only {width:.3g} x {height:.3g} pixels of '{source.layer_name}'; at least "
            f"{MIN_EXTENT_PIXELS} x {MIN_EXTENT_PIXELS} are needed to show terrain (a smaller one would reach the "
            "model as an upsampled blur). Drag a larger rectangle, or zoom out first.")


def classify_extent(source: RasterSource, extent: QgsRectangle, model: TerrainModel, info: CrsInfo,
                    threshold: float | None = None,
                    progress: Callable[[float], None] | None = None,
                    cancelled: Callable[[], bool] | None = None) -> ExtentOutcome:
    """Read ``extent`` (layer CRS), classify it with ``model`` and describe the result.

    Progress: 10 reading, 50 inference, 90 done (the caller writes). ``cancelled`` is polled after the read and
    after inference; when it returns True, :class:`Cancelled` is raised and nothing is returned (so no caller
    can write a half-made result).
    """
    contract = model.contract
    body = check_body(info, contract)
    extent = check_geographic_extent(source, extent, info)
    clipped = clip_extent(source, extent)
    check_extent_size(source, clipped)
    report = progress or (lambda _p: None)
    stop = cancelled or (lambda: False)
    report(10.0)  # reading
    chunk = engine.read_rectangle(source, clipped, contract)
    if stop():
        raise Cancelled("cancelled while reading the pixels; nothing was classified")
    report(50.0)  # inference
    (_, (_, _, read_at, width, height)) = chunk.reads[0]
    gsd = layer_info.gsd_m(info, read_at, width, height)
    _, (result,) = engine.decide_chunk(chunk, model, body, threshold, 1)
    if stop():
        raise Cancelled("cancelled during inference; nothing was written")
    report(90.0)  # the caller writes
    notes = ["the extent was clipped to the raster's edge"] if clipped != extent else []
    note = gsd_note(gsd, contract)
    if note:
        notes.append(note)
    if result.decision is not None and result.decision.reason is Reason.INVALID_OUTPUT:
        notes.append(INVALID_OUTPUT_NOTE)
    provenance = Provenance(body=info.body_name, gsd_m=gsd, source_layer=source.layer_name,
                            model=contract.model_name, model_version=contract.model_version,
                            provider=model.provider, created_utc=utc_now())
    return ExtentOutcome(clipped, result, provenance, notes)
