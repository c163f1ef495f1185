"""A large mosaic for the batch demo and benchmark, as a VRT over the shared rasters (no pixel is copied).

The two Apollo 15 metric frames (Moon, geographic) are laid out in a checkerboard of ``tiles_x`` x ``tiles_y``
frames, each in a slot the size of the first frame (the second is resampled into it by GDAL), with the first
frame's geotransform and CRS: 8 x 9 frames make a 10,520 x 10,917 pixel mosaic, with the frames' zero collars
between them (nodata cells the classifier skips, as on a real mosaic's gaps). The VRT's 512-pixel tiles are what
the batch command aligns its partitions to.
"""
from __future__ import annotations

import argparse
import html
from pathlib import Path

FRAMES = ("AS15-M-0295_SML_geo.tif", "AS15-M-0296_SML_geo.tif")
TILE = 512


def write_mosaic(rasters: Path, tiles_x: int, tiles_y: int, out: Path) -> Path:
    """Write the VRT (``out``); returns its path. Reads the frames' sizes and CRS with rasterio."""
    import rasterio

    sources = [rasters / name for name in FRAMES]
    with rasterio.open(sources[0]) as first:
        width, height, t, wkt = first.width, first.height, first.transform, first.crs.to_wkt()
    sizes = []
    for path in sources:
        with rasterio.open(path) as src:
            sizes.append((src.width, src.height))
    slots = []
    for ty in range(tiles_y):
        for tx in range(tiles_x):
            k = (tx + ty) % len(sources)
            sw, sh = sizes[k]
            slots.append(f"""    <SimpleSource>
      <SourceFilename relativeToVRT="0">{html.escape(str(sources[k].resolve()))}</SourceFilename>
      <SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="{sw}" ySize="{sh}"/>
      <DstRect xOff="{tx * width}" yOff="{ty * height}" xSize="{width}" ySize="{height}"/>
    </SimpleSource>""")
    body = "\n".join(slots)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"""<VRTDataset rasterXSize="{tiles_x * width}" rasterYSize="{tiles_y * height}">
  <SRS>{html.escape(wkt)}</SRS>
  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>
  <VRTRasterBand dataType="Byte" band="1" blockXSize="{TILE}" blockYSize="{TILE}">
    <ColorInterp>Gray</ColorInterp>
{body}
  </VRTRasterBand>
</VRTDataset>
""")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rasters", type=Path, required=True, help="folder of the shared rasters")
    p.add_argument("--tiles", default="8x9", help="frames across x down (8x9: 10,520 x 10,917 px)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    tx, ty = (int(v) for v in args.tiles.lower().split("x"))
    print(write_mosaic(args.rasters, tx, ty, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
