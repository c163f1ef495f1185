"""Which rasters a batch run reads and what a worker needs to know about each (plain, picklable values).

The bands are chosen as QGIS chooses them for ``classify_grid`` (``qgis_io.raster_read.raster_source``): the
first three non-alpha bands are image bands, and a GDAL mask that applies to the whole dataset (ISIS3 cubes'
special pixels) is the alpha band QGIS would expose, so both paths see the same pixels and the same nodata.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .crs import CrsFacts, crs_facts

#: File endings taken from a folder given as INPUT (GDAL reads many more; name those files directly).
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".cub", ".img", ".jp2", ".png", ".jpg", ".jpeg")
#: Data types the model can read (complex types are refused, as in the QGIS path).
READABLE_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64",
                             "float32", "float64"})


class InputError(ValueError):
    """An INPUT cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class RasterFacts:
    """A raster as a batch task sees it."""

    path: str
    name: str                                  # the layer name QGIS would give it (file stem)
    width: int
    height: int
    transform: tuple[float, float, float, float, float, float]  # GDAL order: x0, px, rot, y0, rot, -py
    block: tuple[int, int]                     # (rows, columns) of one tile of band 1
    bands: tuple[int, ...]                     # image bands (1-based), at most three
    nodata: tuple[float | None, ...]           # declared nodata of each image band
    palettes: tuple[tuple | None, ...]         # colour table entries ((index, rgba), ...) of paletted bands
    alpha_band: int | None                     # a band whose colour interpretation is alpha
    mask_as_alpha: bool                        # the dataset's GDAL mask stands in for an alpha band
    crs: CrsFacts

    @property
    def pixel_size(self) -> tuple[float, float]:
        return abs(self.transform[1]), abs(self.transform[5])

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the raster's CRS."""
        x0, px, _, y0, _, py = self.transform
        return x0, y0 + py * self.height, x0 + px * self.width, y0

    @property
    def has_alpha(self) -> bool:
        return self.alpha_band is not None or self.mask_as_alpha


def expand_inputs(inputs: list[str]) -> list[str]:
    """Raster paths from files, folders (their rasters, sorted) and text files listing paths (``@list.txt``)."""
    paths: list[str] = []
    for item in inputs:
        if item.startswith("@"):
            listing = Path(item[1:])
            if not listing.is_file():
                raise InputError(f"the list file '{listing}' does not exist; give a text file with one raster path "
                                 "per line after '@'.")
            paths += [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        elif os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
            if not found:
                raise InputError(f"the folder '{item}' holds no raster ({', '.join(RASTER_SUFFIXES)}); give "
                                 "the rasters' folder or the files themselves.")
            paths += found
        else:
            paths.append(item)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise InputError(f"the input '{missing[0]}' does not exist; check the path.")
    return [os.path.abspath(p) for p in paths]


def raster_facts(path: str, body_override: str | None = None) -> RasterFacts:
    """Open ``path`` with rasterio and describe it; :class:`InputError` when it cannot be classified."""
    import rasterio
    from rasterio.enums import ColorInterp, MaskFlags

    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"'{path}' is not a raster GDAL can open ({exc}); give a GeoTIFF, VRT, ISIS3 cube, ...")
    with src:
        alpha = next((i for i, c in zip(src.indexes, src.colorinterp) if c == ColorInterp.alpha), None)
        image = [i for i in src.indexes if i != alpha]
        bad = [i for i in image if src.dtypes[i - 1] not in READABLE_DTYPES]
        if bad:
            raise InputError(f"band {bad[0]} of '{path}' has data type {src.dtypes[bad[0] - 1]}, which the model "
                             "cannot read (complex); convert the raster to a numeric type")
        if not image:
            raise InputError(f"'{path}' has no image bands (only an alpha band)")
        flags = set(src.mask_flag_enums[0])
        # QGIS exposes the mask as an alpha band when it covers the whole dataset, or is a real mask of a
        # single-band raster (ISIS3 special pixels); not for "all valid" or "nodata value" masks.
        mask_as_alpha = alpha is None and (flags == {MaskFlags.per_dataset} or (not flags and src.count == 1))
        t = src.transform
        if t.b or t.d:
            raise InputError(f"'{path}' has a rotated or sheared geotransform, which the grid's axis-aligned cells "
                             "cannot follow; warp it to a north-up raster first (gdalwarp).")
        image = image[:3]  # luminance uses at most three bands (core.preprocess)
        return RasterFacts(path=os.path.abspath(path), name=Path(path).stem, width=src.width, height=src.height,
                           transform=(t.c, t.a, t.b, t.f, t.d, t.e), block=tuple(src.block_shapes[0]),
                           bands=tuple(image), nodata=tuple(src.nodatavals[i - 1] for i in image),
                           palettes=tuple(_palette(src, i) for i in image),
                           alpha_band=alpha, mask_as_alpha=mask_as_alpha, crs=crs_facts(src.crs, body_override))


def _palette(src, band: int) -> tuple | None:
    """The colour table of a paletted band as hashable entries, None for a band of values."""
    from rasterio.enums import ColorInterp

    if src.colorinterp[band - 1] != ColorInterp.palette:
        return None
    try:
        return tuple(sorted((int(i), tuple(int(c) for c in rgba)) for i, rgba in src.colormap(band).items()))
    except ValueError:  # no colour table after all
        return None
