"""Command line: ``python -m planet_terrain_plugin.core classify IMAGE... [--model M] [--threshold T]``.

Prints one JSON object per image (JSON lines), the shape an image-classification service returns -- ``probs``
over the classes -- plus ``label``, ``confidence`` and ``abstained``. Usable from scripts without QGIS.
"""
from __future__ import annotations

import argparse
import json
import sys

from .batch import cli as batch_cli
from .contract import ContractError
from .images import read_image
from .models import NoModelError, default_model_path
from .pipeline import classify_blocks
from .session import load_model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m planet_terrain_plugin.core", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("classify", help="classify image files, one JSON line each")
    c.add_argument("images", nargs="+", help="image files (JPEG, PNG, GeoTIFF, ISIS3 cube, ...)")
    c.add_argument("--model", help="ONNX model file (default: the shipped model for the active provider)")
    c.add_argument("--threshold", type=float, help="abstention threshold (default: the model's)")
    c.add_argument("--body", help="Mars, Moon or Vesta: drop landforms impossible there")
    c.add_argument("--provider", help="auto, cuda, coreml or cpu (default: auto)")
    batch_cli.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in batch_cli.COMMANDS:
        return batch_cli.main(args)
    try:
        model = load_model(args.model or str(default_model_path()), args.provider)
    except (ContractError, NoModelError, ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = 0
    for path in args.images:
        try:
            block, mask = read_image(path)
            (result,) = classify_blocks(model, [block], [mask], args.body, args.threshold)
        except (OSError, ValueError, ImportError) as exc:
            print(json.dumps({"image": path, "error": str(exc)}))
            status = 1
            continue
        record = {"image": path, "model": model.contract.model_name, "model_version": model.contract.model_version,
                  "provider": model.provider}
        if result.decision is None:
            record.update(error=result.skipped_reason, abstained=True, label="unknown")
        else:
            record.update(result.decision.as_json(model.contract))
        print(json.dumps(record))
    return status


if __name__ == "__main__":
    sys.exit(main())
