"""Read image files (JPEG, PNG, GIF, GeoTIFF, ISIS3 cubes, VRT, ...) into arrays without QGIS.

Pillow when installed (fast for JPEG/PNG), GDAL's Python bindings otherwise (every raster format GDAL reads,
with its nodata flags, GDAL mask bands and undeclared zero collars, as in the QGIS reader). Returns (array
(bands, H, W) or (H, W), nodata mask or None).

What a picture means is kept whatever the file format: palette indices are expanded to their colours (an index
is a name for a colour, not a brightness), and transparency (an alpha channel, a palette entry or a PNG colour
key) is nodata, exactly as a TIFF's alpha band is.

Memory: a file's header can claim any size (a 165 kB PNG of 12000² pixels, a VRT of 400000²). With
``max_side`` such an image is read reduced -- GDAL's overviews or a decimated read, whose memory follows the
output size -- so nothing near the full resolution is ever held. Pillow, which can only decode a PNG whole,
hands such files to GDAL; without GDAL it decodes JPEGs at reduced scale and refuses what it would not decode.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from . import nodata, palette
from .limits import MIN_EXTENT_PIXELS

#: Extensions Pillow reads (when it is installed); everything else goes to GDAL.
PIL_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
#: Pillow modes kept as they are (grey levels of any depth, colour); others are converted to RGB.
_PIL_PLAIN_MODES = ("L", "I;16", "I;16B", "I;16L", "I", "F", "RGB")


class ImageError(ValueError):
    """An image file that cannot be read as a picture; the message names the problem and what to do."""


def read_image(path: str, max_side: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels and nodata mask of the image file at ``path``.

    ``max_side``: an image whose longer side exceeds it is read reduced to about that side (aspect kept); None
    reads the full resolution (training, which crops the rasters it reads).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image '{path}' does not exist; check the path")
    gdal = _gdal()
    if os.path.splitext(path)[1].lower() in PIL_EXTENSIONS:
        try:
            from PIL import Image  # noqa: F401 -- only whether Pillow is there
        except ImportError:
            pass
        else:
            read = _read_with_pil(path, max_side, defer_large=gdal is not None)
            if read is not None:
                return read
    if gdal is None:
        raise ImportError(f"cannot read '{path}': install Pillow (images) or GDAL's Python bindings (rasters)")
    return _read_with_gdal(gdal, path, max_side)


def reduced_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) to read: unchanged up to ``max_side``, else scaled so the longer side is ``max_side``.

    The shorter side never drops below :data:`MIN_EXTENT_PIXELS` (or the image's own, if smaller), so a very
    elongated image is not reduced into one the pipeline would refuse as too small.
    """
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)

    def side(n: int) -> int:
        return max(min(n, MIN_EXTENT_PIXELS), round(n * scale))

    return side(width), side(height)


def _gdal():
    try:
        from osgeo import gdal
    except ImportError:
        return None
    return gdal


# -- Pillow ---------------------------------------------------------------------------------------------------------
def _read_with_pil(path: str, max_side: int | None,
                   defer_large: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Read with Pillow; None when the image is larger than ``max_side`` (or than Pillow decodes) and
    ``defer_large`` says GDAL is there to read it reduced."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # the size is checked here, not by Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        if defer_large:
            return None
        raise ImageError(f"'{path}' has more pixels than Pillow will decode ({exc}); install GDAL's Python "
                         "bindings, which read it reduced, or reduce the image first") from None
    with image:
        large = bool(max_side) and max(image.size) > max_side
        if large and defer_large:
            return None
        if large:
            image.draft(None, (max_side, max_side))  # JPEG: decoded at 1/2 to 1/8 scale; no effect otherwise
        picture, alpha = _pil_picture(image)
        if large:
            factor = max(picture.size) // max_side
            if factor > 1:
                picture = picture.reduce(factor)
                alpha = alpha.reduce(factor) if alpha is not None else None
        arr = np.asarray(picture)  # inside the ``with``: ``picture`` may be the file's own image
        mask = nodata.alpha_nodata(np.asarray(alpha)) if alpha is not None else None
    return (arr.transpose(2, 0, 1) if arr.ndim == 3 else arr), (mask if mask is not None and mask.any() else None)


def _pil_picture(image):
    """(picture in a plain mode, its alpha channel or None): palettes expanded, transparency split off."""
    if image.mode in ("P", "PA"):
        transparent = image.mode == "PA" or "transparency" in image.info or image.palette.mode == "RGBA"
        image = image.convert("RGBA" if transparent else "RGB")
    elif image.mode in ("L", "RGB") and "transparency" in image.info:  # a PNG colour key (tRNS)
        image = image.convert("LA" if image.mode == "L" else "RGBA")
    if image.mode in ("LA", "La", "RGBA", "RGBa"):
        alpha = image.getchannel("A")
        return image.convert("L" if image.mode[0] == "L" else "RGB"), alpha
    if image.mode not in _PIL_PLAIN_MODES:  # 1-bit, CMYK, YCbCr, LAB, HSV
        image = image.convert("RGB")
    return image, None


# -- GDAL -----------------------------------------------------------------------------------------------------------
def _read_with_gdal(gdal, path: str, max_side: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    gdal.ErrorReset()
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # GDAL's complaint goes into the message, not onto stderr
    try:
        ds = gdal.Open(path)
        if ds is None:
            raise ImageError(f"'{path}' is not an image GDAL can read ({_last_error(gdal)}); check the file, or "
                             "convert it to GeoTIFF or PNG")
        return _gdal_pixels(gdal, ds, path, max_side)
    finally:
        gdal.PopErrorHandler()


def _gdal_pixels(gdal, ds, path: str, max_side: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Every band of ``ds`` at the size :func:`reduced_size` gives: palettes expanded, alpha and masks as nodata."""
    width, height = reduced_size(ds.RasterXSize, ds.RasterYSize, max_side)
    reduced = (width, height) != (ds.RasterXSize, ds.RasterYSize)

    def read(source, resampling=gdal.GRIORA_NearestNeighbour, **kw) -> np.ndarray:
        arr = source.ReadAsArray(buf_xsize=width, buf_ysize=height, resample_alg=resampling, **kw)
        if arr is None:
            raise ImageError(f"cannot read the pixels of '{path}' ({_last_error(gdal)}); check that the files it "
                             "refers to exist (a VRT's sources, an ISIS3 cube's data file) and can be read")
        return arr

    bands = [ds.GetRasterBand(i) for i in range(1, ds.RasterCount + 1)]
    kinds = [_band_kind(gdal, b) for b in bands]
    plain = [i + 1 for i, k in enumerate(kinds) if k == "plain"]
    # Plain bands averaged where reduced (antialiasing), in one call when they share a data type (a PNG is then
    # decoded once for all of them; one call would cast mixed types to the first band's).
    resampling = gdal.GRIORA_Average if reduced else gdal.GRIORA_NearestNeighbour
    if len({bands[i - 1].DataType for i in plain}) == 1:
        values = list(np.reshape(read(ds, resampling, band_list=plain), (len(plain), height, width)))
    else:
        values = [read(bands[i - 1], resampling) for i in plain]
    arrays, masks = [], []
    for band, kind in zip(bands, kinds):
        if kind == "alpha":
            masks.append(nodata.alpha_nodata(read(band)))
            continue
        if kind == "palette":  # indices read as they are (never averaged), then looked up
            indices = read(band)
            table = band.GetColorTable()
            colours, mask = palette.expand_band(indices, palette.lookup_table(
                (i, table.GetColorEntry(i)) for i in range(table.GetCount())), band.GetNoDataValue(), [])
            arrays.extend(colours)
            masks.append(mask)
            continue
        arr = values[plain.index(band.GetBand())]
        arrays.append(arr)
        if band.GetMaskFlags() != gdal.GMF_ALL_VALID:
            # GDAL's mask knows ISIS3 special pixels (LRS/HRS...) that the nodata value alone misses.
            masks.append(read(band.GetMaskBand()) == 0)
        else:
            masks.append(nodata.band_nodata(arr, band.GetNoDataValue(), []))
    if not arrays:
        raise ImageError(f"'{path}' has no image bands (only a mask or alpha band)")
    stack = np.stack(arrays)
    mask = np.logical_or.reduce(masks) if masks else None
    return (stack[0] if len(arrays) == 1 else stack), (mask if mask is not None and mask.any() else None)


def _band_kind(gdal, band) -> str:
    interpretation = band.GetColorInterpretation()
    if interpretation == gdal.GCI_AlphaBand:
        return "alpha"
    if interpretation == gdal.GCI_PaletteIndex and band.GetColorTable() is not None:
        return "palette"
    return "plain"


def _last_error(gdal) -> str:
    return (gdal.GetLastErrorMsg() or "no reason given").strip()
