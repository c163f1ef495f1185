"""One extent of one raster -> one decision: the QGIS-side path shared by the map tool and Processing.

Thread-safe by construction: it only touches a :class:`~.raster_read.RasterSource` snapshot (a provider
clone), a loaded core model and plain values, so it runs inside a ``QgsTask`` or a Processing thread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from qgis.core import QgsRectangle

from ..core.bodies import EARTH
from ..core.contract import ModelContract
from ..core.pipeline import ImageResult, classify_blocks
from ..core.session import TerrainModel
from . import layer_info
from .fields import Provenance, utc_now
from .layer_info import CrsInfo
from .raster_read import RasterSource, read_extent


class BodyError(ValueError):
    """The raster's body does not suit the model; the message says how to override it."""


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


def check_body(info: CrsInfo, contract: ModelContract) -> str | None:
    """The body name to classify for (None: unknown), or :class:`BodyError` when the model cannot serve it."""
    body = info.body
    if body is None:
        return None
    if body is EARTH and not info.overridden:
        raise BodyError(f"the layer's CRS ('{info.description}') is an Earth CRS, and this model knows terrain on "
                        f"{', '.join(contract.bodies)} only. If the raster really shows one of those, choose its "
                        "body explicitly (BODY parameter / plugin setting).")
    if body.name not in contract.bodies:
        raise BodyError(f"the model '{contract.model_name}' was made for {', '.join(contract.bodies)}, not "
                        f"{body.name}; choose another model or override the body if the CRS is mislabelled.")
    return body.name


def gsd_note(gsd: float, contract: ModelContract) -> str | None:
    """A warning when the pixels are far coarser or finer than what the model was trained on."""
    lo, hi = contract.gsd_range_m
    if not math.isfinite(gsd):
        return "ground pixel size unknown (no body or radius in the CRS)"
    if gsd < lo or gsd > hi:
        return (f"ground pixel size {gsd:.3g} m is outside the model's range {lo:g}-{hi:g} m; "
                "treat the label with care")
    return None


def classify_extent(source: RasterSource, extent: QgsRectangle, model: TerrainModel, info: CrsInfo,
                    threshold: float | None = None,
                    progress: Callable[[float], None] | None = None) -> ExtentOutcome:
    """Read ``extent`` (layer CRS), classify it with ``model`` and describe the result."""
    contract = model.contract
    body = check_body(info, contract)
    report = progress or (lambda _p: None)
    report(10.0)
    block = read_extent(source, extent, contract.input_size)
    report(50.0)
    gsd = layer_info.gsd_m(info, block.extent, block.width, block.height)
    (result,) = classify_blocks(model, [block.data], [block.nodata_mask], body, threshold)
    report(90.0)
    notes = list(block.notes)
    note = gsd_note(gsd, contract)
    if note:
        notes.append(note)
    provenance = Provenance(body=info.body_name, gsd_m=gsd, source_layer=source.layer_name,
                            model=contract.model_name, model_version=contract.model_version,
                            provider=model.provider, created_utc=utc_now())
    return ExtentOutcome(block.extent, result, provenance, notes)
