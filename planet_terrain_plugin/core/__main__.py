"""Command line: ``python -m planet_terrain_plugin.core classify IMAGE... [--model M] [--head H] [--threshold T] [--body B]``,
and ``teach LABELS.csv --out HEAD`` (a head on the model's embedding: ``core.heads``), and ``explain IMAGE...``
(why each image gets its label: ``core.explain_cli``).

Prints one JSON object per image (JSON lines), the shape an image-classification service returns -- ``probs``
over the classes -- plus ``label``, ``confidence`` and ``abstained``. Usable from scripts without QGIS.
Each subcommand lives in its own module, which adds its parser and the function that runs it.
"""
from __future__ import annotations

import argparse
import sys

from . import classify_cli, explain_cli, teach_cli
from .batch import cli as batch_cli

#: Modules of the subcommands: each has ``add_parser(subparsers)``, which sets ``run(args) -> exit status``.
COMMANDS = (classify_cli, batch_cli, teach_cli, explain_cli)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m planet_terrain_plugin.core", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
