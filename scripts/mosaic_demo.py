"""`make mosaic-demo`: a whole mosaic through the batch command on a local 2-worker Dask cluster.

1. a 10,520 x 10,917 pixel mosaic of the shared Apollo 15 frames, as a VRT (``scripts/mosaic_vrt.py``);
2. ``python -m planet_terrain_plugin.core grid`` over it with 2 workers, **killed** (the run and its workers,
   SIGKILL) once a few partitions are written;
3. the same command again: it resumes, skipping the finished partitions (checked by manifest and checksum);
4. ``... merge`` into one GeoPackage; then, in QGIS: the layer's CRS is checked against the mosaic's, the class
   style is embedded (``classify_mosaic``'s ``style_geopackage``), and a PNG map is rendered.

Everything goes under ``build/mosaic-demo`` (replaced on each demo run; it is the demo's own folder).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KILL_AFTER = 3  # partitions written before the first run is killed


def _batch(*args: str) -> list[str]:
    return [sys.executable, "-m", "planet_terrain_plugin.core", *args]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def killed_run(command: list[str], after: int) -> None:
    """Start ``command``; SIGKILL it and its workers once ``after`` partitions are written."""
    proc = subprocess.Popen(command, cwd=ROOT, env=_env(), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    for line in proc.stderr:
        print(f"  {line.rstrip()}", flush=True)
        if line.startswith("[") and f"] {after}/" in line:
            os.killpg(proc.pid, signal.SIGKILL)
            print(f"  -- killed the run (and its workers) after {after} partitions --", flush=True)
            break
    proc.stderr.close()
    proc.wait()


def in_qgis(vrt: Path, gpkg: Path, model: str, png: Path) -> None:
    """Open the merged GeoPackage in QGIS, check its CRS, embed the style, render a map."""
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    from planet_terrain_plugin.core.contract import read_contract
    from planet_terrain_plugin.processing.classify_mosaic import style_geopackage
    from planet_terrain_plugin.qgis_io.layer_info import crs_info
    from scripts import render_map

    render_map._ensure_qgis()  # noqa: SLF001 -- the headless QgsApplication of the map renderer
    raster = QgsRasterLayer(str(vrt), vrt.stem)
    style_geopackage(str(gpkg), "terrain_grid", read_contract(model))
    layer = QgsVectorLayer(f"{gpkg}|layername=terrain_grid", "terrain_grid", "ogr")
    ours, theirs = crs_info(layer.crs()), crs_info(raster.crs())
    same = (ours.body, ours.radius_m, ours.degrees) == (theirs.body, theirs.radius_m, theirs.degrees)
    inside = raster.extent().buffered(raster.rasterUnitsPerPixelX() / 2).contains(layer.extent())  # float noise
    if not (layer.isValid() and same and inside):
        raise SystemExit(f"mosaic-demo: QGIS opens '{gpkg}' with CRS '{layer.crs().description()}', not the "
                         f"mosaic's '{raster.crs().description()}'")
    print(f"QGIS opens {gpkg.name}: {layer.featureCount()} cells, CRS '{layer.crs().description() or 'custom'}' "
          f"(the mosaic's body, radius and units), style '{layer.renderer().type()}' on '{layer.renderer().classAttribute()}'")
    render_map.render(vrt, gpkg, png, model,
                      title=f"{vrt.stem}: {layer.featureCount()} cells (batch, Dask)")
    print(f"Wrote {png}")
    del raster, layer
    render_map.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rasters", type=Path, required=True, help="folder of the shared rasters")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "mosaic-demo")
    p.add_argument("--tiles", default="8x9", help="mosaic size in Apollo frames")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model", help="ONNX model (default: the shipped one)")
    args = p.parse_args(argv)
    from planet_terrain_plugin.core.models import default_model_path

    model = str(Path(args.model).resolve()) if args.model else str(default_model_path())
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    vrt = out / f"apollo_mosaic_{args.tiles}.vrt"
    subprocess.run([sys.executable, "-m", "scripts.mosaic_vrt", "--rasters", str(args.rasters), "--tiles",
                    args.tiles, "--out", str(vrt)], cwd=ROOT, env=_env(), check=True, stdout=subprocess.DEVNULL)
    grid = _batch("grid", str(vrt), "--out", str(out / "run"), "--model", model, "--workers", str(args.workers))
    print(f"1. {' '.join(grid[1:])}  (killed after {KILL_AFTER} partitions)", flush=True)
    killed_run(grid, KILL_AFTER)
    print("2. the same command again: it resumes", flush=True)
    subprocess.run(grid, cwd=ROOT, env=_env(), check=True)
    gpkg = out / "apollo_mosaic.gpkg"
    print("3. merge", flush=True)
    subprocess.run(_batch("merge", str(out / "run"), "--out", str(gpkg)), cwd=ROOT, env=_env(), check=True)
    in_qgis(vrt, gpkg, model, out / "apollo_mosaic.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
