"""The ``grid`` and ``merge`` subcommands of ``python -m planet_terrain_plugin.core`` (see ``core.batch``)."""
from __future__ import annotations

import argparse
import sys

from ..contract import ContractError
from ..models import NoModelError, default_model_path
from .plan import DEFAULT_PARTITION_CELLS

#: What to install when the batch extra is missing.
INSTALL_HINT = "install the batch extra: python -m pip install -r requirements-batch.txt"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``grid`` and ``merge`` on the core command line's subparsers (each runs :func:`run`)."""
    g = sub.add_parser("grid", help="classify whole rasters/mosaics cell by cell on a Dask cluster "
                                    "(partitioned GeoParquet + manifest; a rerun resumes)")
    g.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="rasters, VRT/COG mosaics, folders of rasters, or @list.txt (one path per line)")
    g.add_argument("--out", required=True, help="output folder (new or empty; or a previous run's, to resume)")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--cell-size-m", type=float, help="cell size in metres on the body")
    size.add_argument("--cell-px", type=float, help="cell size in source pixels (default: classify_grid's)")
    g.add_argument("--overlap", type=float, default=0.0, help="fraction shared by neighbouring cells, 0-0.9")
    g.add_argument("--model", help="ONNX model file (default: the shipped model)")
    g.add_argument("--head", help="a head taught on the model (`teach`): its classes instead of the model's")
    g.add_argument("--threshold", type=float, help="abstention threshold (default: the model's)")
    g.add_argument("--body", help="Mars, Moon or Vesta: override the body read from the CRS")
    g.add_argument("--provider", help="onnxruntime provider on the workers: auto, cuda, coreml or cpu")
    g.add_argument("--scheduler", help="address of an existing Dask scheduler (default: a local cluster)")
    g.add_argument("--workers", type=int, help="local cluster worker processes (default: one per core; 0: run "
                                               "in this process without Dask)")
    g.add_argument("--batch-size", type=int, default=32, help="cells per onnxruntime call")
    g.add_argument("--partition-cells", type=int, default=DEFAULT_PARTITION_CELLS,
                   help=f"cells per partition, one Dask task (default {DEFAULT_PARTITION_CELLS})")
    m = sub.add_parser("merge", help="write a finished grid run as one GeoPackage for QGIS")
    m.add_argument("folder", help="the --out folder of a grid run")
    m.add_argument("--out", required=True, help="GeoPackage to write (.gpkg; never replaced)")
    for parser in (g, m):
        parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run a batch subcommand; messages on stderr, exit status 2 for bad input, 1 for a failed run."""
    try:
        return _grid(args) if args.command == "grid" else _merge(args)
    except ImportError as exc:
        print(f"error: {exc.name or exc} is missing; {INSTALL_HINT}", file=sys.stderr)
        return 2
    except (ValueError, ContractError, NoModelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _grid(args: argparse.Namespace) -> int:
    from .run import RunOptions, default_log
    from .run import run as run_grid
    from .source import expand_inputs

    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}")
    if args.batch_size < 1 or args.partition_cells < 1:
        raise ValueError("--batch-size and --partition-cells must be at least 1")
    if args.threshold is not None and not (0.0 <= args.threshold <= 1.0):
        raise ValueError(f"--threshold must be between 0 and 1, got {args.threshold}")
    options = RunOptions(inputs=expand_inputs(args.inputs), out=args.out,
                         model=args.model or str(default_model_path()), cell_size_m=args.cell_size_m,
                         cell_px=args.cell_px, overlap=args.overlap, threshold=args.threshold, body=args.body,
                         provider=args.provider, scheduler=args.scheduler, workers=args.workers,
                         batch_size=args.batch_size, partition_cells=args.partition_cells, head=args.head)
    try:
        summary = run_grid(options, default_log)
    except Exception as exc:  # noqa: BLE001 -- a partition failed on a worker: say so, the rest is kept
        if isinstance(exc, (ValueError, ImportError, OSError)):
            raise
        print(f"error: a partition failed ({type(exc).__name__}: {exc}); the finished ones are kept in the "
              f"manifest: rerun the same command to resume.", file=sys.stderr)
        return 1
    rate = summary.cells / summary.seconds if summary.seconds > 0 else float("nan")
    print(f"Done: {summary.partitions} partitions ({summary.skipped} resumed), {summary.classified} of "
          f"{summary.cells} cells classified, {summary.seconds:.1f} s ({rate:.0f} cells/s) -> {args.out}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from .merge import merge

    counts = merge(args.folder, args.out)
    for layer, n in counts.items():
        print(f"{args.out}: layer '{layer}', {n} cells")
    return 0
