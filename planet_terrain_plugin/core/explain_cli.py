"""The ``explain`` command: image files -> one strict JSON line each, what the panel's "Why this label" shows.

Each line is the ``classify`` line of the image plus ``occlusion`` (the explained class, its probability, patch
and stride, and the drop per block, top row first: ``core.explain``) and ``nearest`` (the 5 nearest training
examples of the model's gallery, ``core.gallery``, with the data set's citation), or ``nearest_note`` when no
gallery is installed. Errors follow ``classify``'s rules (one image's error is its own line; exit status 1).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from . import explain
from .classify_cli import check_size, classify_file, finite_record, resolve_body
from .contract import ContractError
from .gallery import NO_GALLERY, Gallery, GalleryError, gallery_for, read_gallery
from .images import read_image
from .limits import max_read_side
from .models import MODELS_DIR, NoModelError, default_model_path
from .preprocess import preprocess
from .session import TerrainModel, load_model

DIGITS = 4


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("explain", help="why each image gets its label: occlusion map and nearest training images")
    c.add_argument("images", nargs="+", help="image files (as for classify)")
    c.add_argument("--model", help="ONNX model file (default: the shipped model for the active provider)")
    c.add_argument("--body", help="Mars, Moon or Vesta (any letter case)")
    c.add_argument("--gallery", help="training gallery file (default: the model's, beside the shipped models)")
    c.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        model = load_model(args.model or str(default_model_path()))
        body = resolve_body(args.body, model.contract)
        gallery = read_gallery(args.gallery) if args.gallery else gallery_for(model.contract, MODELS_DIR)
    except (ContractError, NoModelError, GalleryError, ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = 0
    for path in args.images:
        record = classify_file(model, path, body, None)
        if "error" not in record:
            record.update(explain_file(model, path, body, gallery, record))
        record = finite_record(record)
        print(json.dumps(record, allow_nan=False), file=out, flush=True)
        status = 1 if "error" in record else status
    return status


def explain_file(model: TerrainModel, path: str, body: str | None, gallery: Gallery | None,
                 record: dict[str, Any]) -> dict[str, Any]:
    """The ``occlusion`` and ``nearest`` members for one image already classified in ``record``."""
    block, mask = read_image(path, max_read_side(model.contract.input_size))
    check_size(block)
    tensor = preprocess(block, model.contract, mask).tensor
    probs = [record["probs"][name] for name in model.contract.class_names]
    index = explain.class_to_explain(model.contract, record["label"], probs)
    occ = explain.occlusion_map(model, tensor, index, body)
    extra: dict[str, Any] = {"occlusion": {
        "class": model.contract.class_names[index], "base_probability": round(occ.base_probability, DIGITS),
        "patch_px": occ.patch, "stride_px": occ.stride, "drop": occ.drop.round(DIGITS).tolist()}}
    embedding = explain.embedding_of(model, tensor)
    if gallery is None or embedding is None:
        extra["nearest_note"] = NO_GALLERY if gallery is None else "the model has no embedding output"
        return extra
    extra["nearest"] = [{"label": n.label, "source": n.source, "file": n.file,
                         "similarity": round(n.similarity, DIGITS)} for n in gallery.nearest(embedding)]
    extra["training_data"] = {"citation": gallery.citation, "licence": gallery.licence}
    return extra
