"""``make demo``: the main jobs, headless, on the shipped default model and a shipped real raster.

1. ``planet_terrain:classify_extent`` through ``qgis_process.bin`` (exactly as a user's batch job would) over the
   Apollo 15 Moon frame -> ``build/demo/<raster>_terrain.gpkg``, features printed;
2. ``planet_terrain:classify_grid`` over the same frame (``--cell-size`` metres, 20 km by default; 0: the
   algorithm's own default) -> ``build/demo/<raster>_grid.gpkg``, cells per class printed;
3. a PNG map of (2) next to it, ``build/demo/<raster>_grid.png``: the raster, the cells coloured by class and a
   legend with counts, rendered in-process with QGIS's own renderer (``scripts/render_map.py``).

Without a shipped model it stops with a message saying how to make one: no placeholder model is ever used.
``--model`` picks another model file (the tests use a tiny one; its map says so in its title).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from planet_terrain_plugin.core.models import NoModelError, default_model_path
from scripts import qgis_process

DEFAULT_CELL_M = 20000.0
#: Files SQLite may leave next to a GeoPackage; removed with it before a run (the algorithm refuses to overwrite).
_GPKG_SIDES = ("", "-wal", "-shm", "-journal")


def _fresh(path: Path) -> Path:
    for side in _GPKG_SIDES:
        Path(str(path) + side).unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raster", required=True, type=Path)
    parser.add_argument("--out", default=Path("build/demo"), type=Path)
    parser.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    parser.add_argument("--cell-size", type=float, default=DEFAULT_CELL_M,
                        help="grid cell size in metres on the body (0: the model's input size in pixels)")
    parser.add_argument("--no-map", action="store_true", help="skip the PNG map")
    args = parser.parse_args(argv)
    os.environ["GDAL_PAM_ENABLED"] = "NO"  # no .aux.xml next to the (shared, read-only) raster when rendering
    if args.model is not None:
        model = args.model.resolve()
        if not model.is_file():
            print(f"make demo: model '{args.model}' not found", file=sys.stderr)
            return 2
    else:
        try:
            model = default_model_path()
        except NoModelError as exc:
            print(f"make demo: {exc}", file=sys.stderr)
            return 2
    if not args.raster.is_file():
        print(f"make demo: raster '{args.raster}' not found; set RASTER=... or SHARED=... (see README)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    raster = str(args.raster.resolve())
    profile = qgis_process.make_profile(args.out.resolve() / "qgis-profile")

    output = _fresh((args.out / f"{args.raster.stem}_terrain.gpkg").resolve())
    print(f"Classifying {args.raster.name} with {model.name} (headless qgis_process) ...")
    result = qgis_process.run_algorithm("planet_terrain:classify_extent",
                                        {"INPUT": raster, "MODEL": str(model), "OUTPUT": str(output)}, profile)
    print(f"Wrote {output}")
    for key, value in sorted(result.get("results", {}).items()):
        print(f"  {key}: {value}")
    _print_features(output)

    grid = _fresh((args.out / f"{args.raster.stem}_grid.gpkg").resolve())
    params = {"INPUT": raster, "MODEL": str(model), "OUTPUT": str(grid)}
    if args.cell_size > 0:
        params.update(CELL_SIZE=f"{args.cell_size:g}", CELL_UNIT="0")  # metres
    what = f"{args.cell_size / 1000:g} km cells" if args.cell_size > 0 else "default cells"
    print(f"Classifying {args.raster.name} in a grid of {what} (headless qgis_process) ...")
    result = qgis_process.run_algorithm("planet_terrain:classify_grid", params, profile)
    results = result.get("results", {})
    print(f"Wrote {grid}: {results.get('CELLS_CLASSIFIED')} of {results.get('CELLS_TOTAL')} cells classified "
          f"({results.get('CELLS_NODATA')} mostly nodata)")
    for label, count in json.loads(results.get("CLASS_COUNTS") or "{}").items():
        print(f"  {label}: {count} cell(s)")

    if not args.no_map:
        from scripts import render_map

        png = grid.with_suffix(".png")
        try:
            render_map.render(raster, grid, png, model)
        finally:
            render_map.shutdown()
        print(f"Wrote {png}")
    return 0


def _print_features(path: Path) -> None:
    """Print the classified features with GDAL/OGR (no QGIS needed to read the result back)."""
    from osgeo import ogr

    ds = ogr.Open(str(path))
    if ds is None:
        return
    layer = ds.GetLayer(0)
    for feature in layer:
        items = feature.items()
        print(f"  -> {items.get('label')} (confidence {items.get('confidence'):.3f}, abstained "
              f"{bool(items.get('abstained'))}, body {items.get('body')}, {items.get('gsd_m'):.1f} m/px, "
              f"provider {items.get('provider')})")


if __name__ == "__main__":
    sys.exit(main())
