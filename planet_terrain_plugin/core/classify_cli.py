"""The ``classify`` command: image files -> one strict JSON line each (see ``__main__``).

A batch is never lost to one bad file: whatever goes wrong with an image becomes that image's line,
``{"image": ..., "error": "<the problem and what to do>"}``, and the next image is read; the exit status is 1
when any line carries an error. Mistakes that concern every image (the model, ``--body``, ``--threshold``)
stop before any image is read, with exit status 2. Every line is strict JSON: an image whose model output is not
finite (a broken model's NaN) is an ``invalid_output`` line with an error, and any non-finite number that would
still reach a line is written as null.

A raster that is not an image (elevation, slope, shaded relief, colour-shaded: ``core.raster_kind``) and a
georeferenced image of a body the model does not serve are refused: an error line whose ``reason`` is
``not_an_image`` or ``unknown_body``. A georeferenced image is classified for the body of its CRS (unless
``--body`` overrides it), as QGIS does, and its line carries ``scale_factor`` (``core.image_geo``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, TextIO

from . import raster_kind
from .bodies import body_by_name
from .body_check import BodyError
from .calibrate import INVALID_OUTPUT_NOTE, Reason, at_scale
from .contract import UNKNOWN_ID, UNKNOWN_LABEL, ContractError, ModelContract
from .heads import attach_head, read_head
from .image_geo import image_body, image_geo
from .images import ImageError, read_image
from .limits import MIN_EXTENT_PIXELS, max_read_side
from .models import NoModelError, default_model_path
from .pipeline import classify_blocks
from .result_schema import SCALE_FACTOR_FIELD, gsd_factor
from .session import ModelRunError, TerrainModel, load_model

#: GDAL block cache (MB) for a run of this command unless the user sets GDAL_CACHEMAX: a decimated read of a
#: huge image passes every block through the cache once, and GDAL's default (5 % of RAM) would keep them all.
GDAL_CACHE_MB = "64"


class UsageError(ValueError):
    """An argument that concerns the whole run is wrong; the message says what to give instead."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("classify", help="classify image files, one JSON line each")
    c.add_argument("images", nargs="+", help="image files (JPEG, PNG, GIF, GeoTIFF, ISIS3 cube, VRT, ...)")
    c.add_argument("--model", help="ONNX model file (default: the shipped model for the active provider)")
    c.add_argument("--head", help="head file (from 'teach'): answer with its classes instead of the model's")
    c.add_argument("--threshold", type=float, help="abstention threshold between 0 and 1 (default: the model's)")
    c.add_argument("--body", help="Mars, Moon or Vesta (any letter case): drop landforms impossible there")
    c.add_argument("--provider", help="auto, cuda, coreml or cpu (default: auto)")
    c.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Classify ``args.images``, one line each on ``out``; the exit status (0, 1: some image failed, 2)."""
    try:
        model = load_model(args.model or str(default_model_path()), args.provider)
        if args.head:
            model = attach_head(model, read_head(args.head))
        body = resolve_body(args.body, model.contract)
        check_threshold(args.threshold)
    except (ContractError, NoModelError, ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("GDAL_CACHEMAX", GDAL_CACHE_MB)
    status = 0
    for path in args.images:
        record = finite_record(classify_file(model, path, body, args.threshold))
        print(json.dumps(record, allow_nan=False), file=out, flush=True)
        if "error" in record:
            status = 1
    return status


def resolve_body(name: str | None, contract: ModelContract) -> str | None:
    """The body as the contract spells it (``moon`` -> ``Moon``), or :class:`UsageError` naming those it serves."""
    if name is None:
        return None
    served = ", ".join(contract.bodies)
    try:
        body = body_by_name(name).name
    except ValueError:
        body = None
    if body not in contract.bodies:
        raise UsageError(f"--body '{name}': the model '{contract.model_name}' serves {served}; give one of those "
                         "(any letter case), or leave --body out")
    return body


def check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold {threshold}: give a number between 0 and 1, or leave it out for the "
                         "model's own")


def classify_file(model: TerrainModel, path: str, body: str | None, threshold: float | None) -> dict[str, Any]:
    """The line for one image file: the decision, or ``{"image", "error"}`` saying what went wrong."""
    try:
        raster_kind.check_file(path)
        geo = image_geo(path, body)
        body = image_body(geo, model.contract) if geo is not None else body
        block, mask = read_image(path, max_read_side(model.contract.input_size))
        check_size(block)
        (result,) = classify_blocks(model, [block], [mask], body, threshold)
    except raster_kind.NotAnImageError as exc:
        return {"image": path, "error": str(exc), "reason": Reason.NOT_AN_IMAGE.value}
    except BodyError as exc:
        return {"image": path, "error": str(exc), "reason": Reason.UNKNOWN_BODY.value}
    except (OSError, ValueError, ImportError) as exc:  # ImageError, unreadable files, malformed pixels
        return {"image": path, "error": str(exc)}
    except ModelRunError as exc:
        return {"image": path, "error": f"{exc}. Check that the model file is a Planet Terrain model."}
    except MemoryError:
        return {"image": path, "error": "not enough memory to read or classify this image; reduce it (e.g. "
                                        "gdal_translate -outsize 25% 25%) or free memory, then try again"}
    except Exception as exc:  # noqa: BLE001 -- one image's surprise must not lose the rest of the batch
        return {"image": path, "error": f"unexpected {type(exc).__name__}: {exc}; please report this with the "
                                        "file if you can"}
    record = {"image": path, "model": model.contract.model_name, "model_version": model.contract.model_version,
              "provider": model.provider}
    if result.decision is None:
        record.update(error=result.skipped_reason, abstained=True, label=UNKNOWN_LABEL)
    else:
        factor = gsd_factor(geo.gsd_m(block.shape[-1], block.shape[-2]), model.contract.gsd_range_m) \
            if geo is not None else math.nan
        record.update(at_scale(result.decision, factor).as_json(model.contract))
        record[SCALE_FACTOR_FIELD] = round(factor, 4) if math.isfinite(factor) else None
        if result.decision.reason is Reason.INVALID_OUTPUT:
            record["error"] = INVALID_OUTPUT_NOTE
    return record


def check_size(block) -> None:
    """Refuse an image smaller than :data:`MIN_EXTENT_PIXELS` on a side (the rule QGIS applies to extents)."""
    height, width = block.shape[-2:]
    if min(width, height) < MIN_EXTENT_PIXELS:
        raise ImageError(f"the image is {width} x {height} pixels; at least {MIN_EXTENT_PIXELS} x "
                         f"{MIN_EXTENT_PIXELS} are needed to show terrain (a smaller one would reach the model as an "
                         "upsampled blur). Use a larger image, or a larger crop of it.")


def finite_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` fit for strict JSON: one holding NaN or infinity becomes a not-classified one, those numbers
    null."""
    clean, finite = _finite(record)
    if not finite:
        clean.update(label=UNKNOWN_LABEL, class_id=UNKNOWN_ID, abstained=True, reason=Reason.INVALID_OUTPUT.value)
        clean.setdefault("error", INVALID_OUTPUT_NOTE)
    return clean


def _finite(value: Any) -> tuple[Any, bool]:
    """``value`` with every non-finite float replaced by None, and whether none was."""
    if isinstance(value, float):
        return (value, True) if math.isfinite(value) else (None, False)
    if isinstance(value, dict):
        pairs = {k: _finite(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, all(ok for _, ok in pairs.values())
    if isinstance(value, (list, tuple)):
        items = [_finite(v) for v in value]
        return [v for v, _ in items], all(ok for _, ok in items)
    return value, True
