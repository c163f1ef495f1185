"""The ``teach`` command: a CSV of labelled image files -> a head file (see ``core.heads``).

``python -m planet_terrain_plugin.core teach LABELS.csv --out HEAD``: each row is ``image path, label`` (a
header row is allowed; relative paths are relative to the CSV); ``other`` or ``background`` marks background
examples, on which the head's abstention is fitted. Prints one JSON object: where the head went, its classes and
the cross-validated accuracy per class. Exit status 2 when nothing was written, with the reason on stderr.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import TextIO

from .classify_cli import check_size
from .contract import ContractError
from .heads import HeadError, backbone_info, embed_blocks, head_path, save_head, teach
from .images import read_image
from .limits import max_read_side
from .models import NoModelError, default_model_path
from .newfile import NewFileError
from .session import ModelRunError, load_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("teach", help="teach a head on labelled image files (CSV: image path, label)")
    c.add_argument("labels", help="CSV file: image path, label per row ('other' = background)")
    c.add_argument("--out", required=True, help="head file to write (never replaces a file)")
    c.add_argument("--model", help="ONNX backbone (default: the shipped model for the active provider)")
    c.add_argument("--name", help="the head's name (default: the output file's name)")
    c.add_argument("--version", default="1", help="the head's version (default: 1)")
    c.add_argument("--provider", help="auto, cuda, coreml or cpu (default: auto)")
    c.set_defaults(run=run)


def read_label_rows(path: str) -> list[tuple[str, str]]:
    """(image path, label) rows of the CSV; :class:`HeadError` naming the row that is not one."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError) as exc:
        raise HeadError(f"labels file '{path}' cannot be read ({exc})") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["image", "label"], ["path", "label"]):
        rows = rows[1:]
    folder = os.path.dirname(os.path.abspath(path))
    out = []
    for number, row in enumerate(rows, 1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise HeadError(f"labels file '{path}', row {number} {row!r}: expected 'image path, label'")
        out.append((os.path.join(folder, row[0].strip()), row[1].strip()))
    if not out:
        raise HeadError(f"labels file '{path}' lists no examples; give rows 'image path, label'")
    return out


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        target = head_path(args.out)
        if os.path.exists(target):
            raise NewFileError(f"'{target}' already exists, and Planet Terrain never replaces a file; choose "
                               "another --out")
        rows = read_label_rows(args.labels)
        model = load_model(args.model or str(default_model_path()), args.provider)
        backbone = backbone_info(model)
        blocks, masks = [], []
        for image, _ in rows:
            block, mask = read_image(image, max_read_side(model.contract.input_size))
            check_size(block)
            blocks.append(block)
            masks.append(mask)
        embeddings, reasons = embed_blocks(model, blocks, masks)
        for (image, _), reason in zip(rows, reasons):
            if reason:
                raise HeadError(f"'{image}': {reason}; remove it from the labels file")
        name = args.name or os.path.basename(target).split(".")[0]
        head = teach(embeddings, [label for _, label in rows], name, args.version, backbone)
        written = save_head(head, target)
    except (ContractError, NoModelError, ImportError, ValueError, OSError, ModelRunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"head": written, "name": head.name, "version": head.version, "classes": list(head.classes),
                      "background": head.background, "cv": head.cv}), file=out)
    return 0
