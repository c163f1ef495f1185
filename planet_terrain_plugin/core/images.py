"""Read plain image files (JPEG, PNG, GeoTIFF, ISIS3 cubes) into arrays without QGIS.

Pillow when installed (fast for JPEG/PNG), GDAL's Python bindings otherwise (every raster format GDAL reads,
with its nodata flags, GDAL mask bands and undeclared zero collars, as in the QGIS reader). Returns (array (bands, H, W) or (H, W), nodata mask or None).
"""
from __future__ import annotations

import os

import numpy as np

from . import nodata


def read_image(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image '{path}' does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".jpg", ".jpeg", ".png", ".bmp"):
        try:
            from PIL import Image
        except ImportError:
            pass
        else:
            with Image.open(path) as im:
                if im.mode not in ("L", "I;16", "I", "F"):
                    im = im.convert("RGB")
                arr = np.asarray(im)
            return (arr.transpose(2, 0, 1) if arr.ndim == 3 else arr), None
    return _read_with_gdal(path)


def _read_with_gdal(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        from osgeo import gdal
    except ImportError as exc:
        raise ImportError(f"cannot read '{path}': install Pillow (images) or GDAL's Python bindings (rasters)") from exc
    ds = gdal.Open(path)
    if ds is None:
        raise ValueError(f"'{path}' is not an image GDAL can read")
    bands, masks = [], []
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        if band.GetColorInterpretation() == gdal.GCI_AlphaBand:
            masks.append(nodata.alpha_nodata(band.ReadAsArray()))
            continue
        arr = band.ReadAsArray()
        bands.append(arr)
        if band.GetMaskFlags() != gdal.GMF_ALL_VALID:
            # GDAL's mask knows ISIS3 special pixels (LRS/HRS...) that the nodata value alone misses.
            masks.append(band.GetMaskBand().ReadAsArray() == 0)
        else:
            masks.append(nodata.band_nodata(arr, band.GetNoDataValue(), []))
    stack = np.stack(bands)
    mask = np.logical_or.reduce(masks) if masks else None
    return (stack[0] if len(bands) == 1 else stack), (mask if mask is not None and mask.any() else None)
