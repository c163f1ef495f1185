"""Which body a run classifies for, or why the model cannot serve the raster: one rule for every path.

The QGIS side (``qgis_io.classify.check_body``, from a layer's ``CrsInfo``) and the batch command
(``core.batch``, from rasterio's CRS) ask the same question with the same facts (``valid``, ``overridden``,
``body``, ``named``, ``radius_m``, ``description``); only the advice differs (a QGIS parameter or menu, a
command-line option), so it is passed in as :class:`Advice`.

A body the CRS does not identify as one of the model's is refused, never classified with every class: the
classes and the per-body removal are those of the model's bodies, so a Titan or Mercury raster would get
Martian labels. The way out is the user's override, for a CRS that mislabels a body we know.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import bodies
from .bodies import EARTH
from .contract import ModelContract


class BodyError(ValueError):
    """The raster's body does not suit the model; the message says how to override it."""


@dataclass(frozen=True)
class Advice:
    """How the user of one path fixes a CRS problem."""

    subject: str      # what holds the CRS: "the layer", "the raster"
    set_crs: str      # sentence start: how to give the raster a CRS
    choose_body: str  # where the body is chosen when there is no CRS
    override: str     # where the body is chosen to override the CRS


def check_body(info, contract: ModelContract, advice: Advice) -> str:
    """The body name to classify for, or :class:`BodyError` (with ``advice``) when the model cannot serve it."""
    body = info.body
    if not info.valid and not info.overridden:
        raise BodyError(f"{advice.subject} has no coordinate reference system, so neither its body (Mars, Moon, "
                        f"Vesta) nor its ground pixel size is known. {advice.set_crs} or choose the body explicitly "
                        f"({advice.choose_body}).")
    served = ", ".join(contract.bodies)
    way_out = f"If the raster really shows one of those, choose its body explicitly ({advice.override})."
    if body is None:
        raise BodyError(f"{advice.subject}'s CRS ('{info.description}') {unknown_body(info, served)}; this model "
                        f"knows terrain on {served} only. {way_out}")
    if body is EARTH and not info.overridden:
        raise BodyError(f"{advice.subject}'s CRS ('{info.description}') is an Earth CRS, and this model knows "
                        f"terrain on {served} only. {way_out}")
    if body.name not in contract.bodies:
        raise BodyError(f"the model '{contract.model_name}' was made for {served}, not "
                        f"{body.name}; choose another model or override the body if the CRS is mislabelled.")
    return body.name


def unknown_body(info, served: str) -> str:
    """What a CRS that identifies none of our bodies says instead: another body's name, or a foreign radius."""
    radius = f"{info.radius_m / 1000:,.1f} km" if info.radius_m else None
    ours = bodies.body_in_name(info.named) if info.named else None
    if ours is not None:  # one of our names on an ellipsoid of another size (or another body's code)
        return f"names {ours.name}, but its radius ({radius or 'none given'}) or authority code is another body's"
    if info.named:
        return f"is for {info.named}" + (f" (radius {radius})" if radius else "")
    if radius:
        return f"names no body, and its radius ({radius}) fits none of {served}"
    return "names no body and gives no radius, so its body is unknown"
