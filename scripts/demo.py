"""``make demo``: the main job, headless, on the shipped default model and a shipped real raster.

Runs ``planet_terrain:classify_extent`` through ``qgis_process.bin`` (exactly as a user's batch job would) over
the Apollo 15 Moon frame, writes a GeoPackage under ``build/demo`` and prints the features. Without a shipped
model it stops with a message saying how to make one: no placeholder model is ever used.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from planet_terrain_plugin.core.models import NoModelError, default_model_path
from scripts import qgis_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raster", required=True, type=Path)
    parser.add_argument("--out", default=Path("build/demo"), type=Path)
    args = parser.parse_args(argv)
    try:
        model = default_model_path()
    except NoModelError as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 2
    if not args.raster.is_file():
        print(f"make demo: raster '{args.raster}' not found; set RASTER=... or SHARED=... (see README)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    output = (args.out / f"{args.raster.stem}_terrain.gpkg").resolve()
    output.unlink(missing_ok=True)
    profile = qgis_process.make_profile(args.out.resolve() / "qgis-profile")
    print(f"Classifying {args.raster.name} with {model.name} (headless qgis_process) ...")
    result = qgis_process.run_algorithm("planet_terrain:classify_extent",
                                        {"INPUT": str(args.raster.resolve()), "MODEL": str(model),
                                         "OUTPUT": str(output)}, profile)
    print(f"Wrote {output}")
    for key, value in sorted(result.get("results", {}).items()):
        print(f"  {key}: {value}")
    _print_features(output)
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
