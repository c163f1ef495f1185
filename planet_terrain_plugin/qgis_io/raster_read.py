"""Pixels of a raster extent, read from the layer's data provider (never a screen render) into numpy.

A :class:`RasterSource` is a snapshot taken on the main thread: a *clone* of the data provider plus the facts
about the layer the worker needs, so the read can run inside a ``QgsTask`` or a Processing thread without
touching the layer itself.

Read resolution: the core's antialiased resize (``core.preprocess``) makes the model input from whatever
block it gets, exactly as training made it from full-resolution crops. The block is therefore read at the
raster's native resolution, unless the extent spans more than ``OVERSAMPLE`` x the model input size in
pixels: then the provider is asked for a block whose longer side is that cap (aspect ratio kept), which bounds
memory and time for huge extents while leaving the final antialiased reduction to the core.

Pixel types: a paletted band is read as its indices and expanded to the colours its table names
(``core.palette``); 64-bit integer bands, which QGIS 3.22's provider reports as an unknown data type, are read
through an in-memory GDAL VRT that presents them as Float64 (exact up to 2**53, far finer than the 8-bit
stretch resolves). Complex and colour-packed (ARGB) bands are refused with a message.

GDAL's block cache: every block GDAL decodes stays in one process-wide cache, up to ``GDAL_CACHEMAX`` (5 % of
RAM by default). A grid run walks the raster once, row by row, so without a bound that cache ends up holding
the whole decoded raster: the run's memory would grow with the area read, not with what the run needs.
:func:`bounded_block_cache` caps it, for the duration of such a run, at what one row of reads touches.
"""
from __future__ import annotations

import hashlib
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from qgis.core import (Qgis, QgsCoordinateReferenceSystem, QgsProviderRegistry, QgsRaster, QgsRasterDataProvider,
                       QgsRasterLayer, QgsRasterRange, QgsRectangle)

from ..core import nodata, palette
from ..core.limits import OVERSAMPLE, read_block_size  # noqa: F401 -- OVERSAMPLE: see the module docstring

#: numpy dtype of each QGIS raster data type the pipeline accepts (complex and ARGB types are refused).
DTYPES: dict[int, np.dtype] = {
    int(Qgis.Byte): np.dtype(np.uint8),
    int(Qgis.UInt16): np.dtype(np.uint16),
    int(Qgis.Int16): np.dtype(np.int16),
    int(Qgis.UInt32): np.dtype(np.uint32),
    int(Qgis.Int32): np.dtype(np.int32),
    int(Qgis.Float32): np.dtype(np.float32),
    int(Qgis.Float64): np.dtype(np.float64),
}
if hasattr(Qgis, "Int8"):  # QGIS >= 3.30
    DTYPES[int(Qgis.Int8)] = np.dtype(np.int8)

#: Raster providers that serve rendered map images (styled colours, often over the network), never data values.
WEB_MAP_PROVIDERS = frozenset({"wms", "arcgismapserver"})

#: QGIS colour interpretation of a band that is a transparency / GDAL mask band.
ALPHA = int(QgsRasterDataProvider.AlphaBand) if hasattr(QgsRasterDataProvider, "AlphaBand") else 6


class ExtentError(ValueError):
    """The requested extent cannot be read from this raster; the message says why and what to do."""


class RasterReadError(ExtentError):
    """The raster's provider failed to deliver pixels it should have (a damaged or vanished file)."""


@dataclass(frozen=True)
class BandInfo:
    number: int
    dtype: np.dtype
    nodata_value: float | None
    user_ranges: tuple[tuple[float, float], ...]
    #: RGBA lookup table of a paletted band (``core.palette.lookup_table``), None for a band of values.
    palette: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass
class RasterSource:
    """What a worker thread needs to read a layer: a provider clone and the layer's facts."""

    provider: QgsRasterDataProvider
    crs: QgsCoordinateReferenceSystem
    extent: QgsRectangle
    columns: int
    rows: int
    image_bands: tuple[BandInfo, ...]
    alpha_band: BandInfo | None
    layer_name: str
    layer_id: str

    @property
    def pixel_size(self) -> tuple[float, float]:
        return self.extent.width() / self.columns, self.extent.height() / self.rows


@dataclass
class RasterBlock:
    """Pixels of one extent: (bands, H, W) data in the source dtype, an (H, W) nodata mask, the read extent."""

    data: np.ndarray
    nodata_mask: np.ndarray
    extent: QgsRectangle
    notes: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.data.shape[2]

    @property
    def height(self) -> int:
        return self.data.shape[1]


def _user_ranges(provider: QgsRasterDataProvider, band: int) -> tuple[tuple[float, float], ...]:
    ranges = []
    for r in provider.userNoDataValues(band):
        ranges.append((r.min(), r.max()) if isinstance(r, QgsRasterRange) else (float(r), float(r)))
    return tuple(ranges)


def web_layer_problem(layer: QgsRasterLayer) -> str | None:
    """Why ``layer`` must not be read when it is a web map (rendered tiles, not data; reading means network)."""
    if layer.providerType() not in WEB_MAP_PROVIDERS:
        return None
    return (f"'{layer.name()}' is a web map layer ({layer.providerType()}: WMS/WMTS/XYZ tiles or a map service), whose "
            "pixels are rendered colours, not the image data; it is not read. Open the original raster file "
            "(GeoTIFF, ISIS3 cube, ...) or download the data first.")


def raster_source(layer: QgsRasterLayer) -> RasterSource:
    """Snapshot ``layer`` for reading in another thread (call on the thread that owns the layer)."""
    if layer is None or not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        raise ExtentError("the input is not a valid raster layer; choose a raster layer (GeoTIFF, ISIS3 cube, ...)")
    problem = web_layer_problem(layer)
    if problem:
        raise ExtentError(problem)
    provider = _float64_view(layer) or layer.dataProvider()
    bands, alpha = [], None
    for b in range(1, provider.bandCount() + 1):
        dtype = DTYPES.get(int(provider.dataType(b)))
        if provider.colorInterpretation(b) == ALPHA and dtype is not None:
            alpha = alpha or BandInfo(b, dtype, None, ())
            continue
        if dtype is None:
            raise ExtentError(f"band {b} of '{layer.name()}' has data type {provider.dataType(b)!r}, which the "
                              "model cannot read (complex or colour-packed); convert the raster to a numeric type")
        has_nd = provider.sourceHasNoDataValue(b) and provider.useSourceNoDataValue(b)
        bands.append(BandInfo(b, dtype, provider.sourceNoDataValue(b) if has_nd else None, _user_ranges(provider, b),
                              _palette(provider, b)))
    if not bands:
        raise ExtentError(f"'{layer.name()}' has no image bands (only a mask/alpha band)")
    # Luminance uses at most the first three image bands (core.preprocess); reading more is wasted time.
    return RasterSource(provider.clone(), QgsCoordinateReferenceSystem(layer.crs()), QgsRectangle(layer.extent()),
                        layer.width(), layer.height(), tuple(bands[:3]), alpha, layer.name(), layer.id())


def _palette(provider: QgsRasterDataProvider, band: int) -> np.ndarray | None:
    """The colour lookup table of a paletted band, None for a band of values."""
    if provider.colorInterpretation(band) != QgsRaster.PaletteIndex:
        return None
    items = provider.colorTable(band)
    return palette.lookup_table((int(i.value), i.color.getRgb()) for i in items) if items else None


#: GDAL's 64-bit integer types (GDAL >= 3.5), which QGIS 3.22's provider cannot read.
_WIDE_INTEGER_TYPES = ("GDT_Int64", "GDT_UInt64")


def _float64_view(layer: QgsRasterLayer) -> QgsRasterDataProvider | None:
    """A provider presenting ``layer``'s 64-bit integer bands as Float64, or None when it needs none: only a GDAL
    raster whose every band of unknown type is a 64-bit integer (a complex band keeps its refusal)."""
    provider = layer.dataProvider()
    unknown = [b for b in range(1, provider.bandCount() + 1) if int(provider.dataType(b)) == int(Qgis.UnknownDataType)]
    if not unknown or layer.providerType() != "gdal":
        return None
    try:
        from osgeo import gdal
    except ImportError:
        return None
    path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()
    dataset = gdal.Open(path)
    wide = {getattr(gdal, name) for name in _WIDE_INTEGER_TYPES if hasattr(gdal, name)}
    if dataset is None or any(dataset.GetRasterBand(b).DataType not in wide for b in unknown):
        return None
    # One VRT per source file (an XML text in GDAL's memory), replaced when the file is opened again.
    vrt = f"/vsimem/planet_terrain/{hashlib.sha1(path.encode()).hexdigest()}.float64.vrt"
    if gdal.Translate(vrt, dataset, format="VRT", outputType=gdal.GDT_Float64) is None:
        return None
    view = QgsRasterLayer(vrt, layer.name())
    return view.dataProvider().clone() if view.isValid() else None


def clip_extent(source: RasterSource, extent: QgsRectangle) -> QgsRectangle:
    """The part of ``extent`` (layer CRS) that lies on the raster; :class:`ExtentError` when none does."""
    if extent is None or extent.isNull() or extent.isEmpty() or not all(
            math.isfinite(v) for v in (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())):
        raise ExtentError("the extent is empty; drag a rectangle (or give an extent) with a width and a height")
    clipped = extent.intersect(source.extent)
    px, py = source.pixel_size
    if (extent.width() < px / 2 or extent.height() < py / 2) and source.extent.contains(extent.center()):
        raise ExtentError(f"the extent is narrower than half a pixel of '{source.layer_name}'; drag a larger "
                          "rectangle (or give an extent spanning several pixels)")
    if clipped.isEmpty() or clipped.width() < px / 2 or clipped.height() < py / 2:
        raise ExtentError(
            f"the extent {extent.toString(4)} does not overlap the raster '{source.layer_name}' "
            f"({source.extent.toString(4)}, in {source.crs.description() or 'its CRS'}); draw it over the image, "
            "or check that the extent is given in the layer's CRS")
    return clipped


def read_size(source: RasterSource, extent: QgsRectangle, input_size: int) -> tuple[int, int]:
    """(width, height) in pixels of the block to read for ``extent`` (see the module docstring)."""
    px, py = source.pixel_size
    return read_block_size(extent.width() / px, extent.height() / py, input_size)


def _band_array(source: RasterSource, band: int, dtype: np.dtype, extent: QgsRectangle,
                width: int, height: int) -> np.ndarray:
    block = source.provider.block(band, extent, width, height)
    if block is None or not block.isValid() or block.width() != width or block.height() != height:
        raise RasterReadError(f"the raster provider returned no pixels for band {band} of '{source.layer_name}'; "
                              "check that the file is still readable")
    raw = bytes(block.data())
    expected = width * height * dtype.itemsize
    if len(raw) != expected:
        raise ExtentError(f"band {band} of '{source.layer_name}' returned {len(raw)} bytes, {expected} expected")
    return np.frombuffer(raw, dtype=dtype).reshape(height, width)


def read_extent(source: RasterSource, extent: QgsRectangle, input_size: int) -> RasterBlock:
    """Read every image band of ``extent`` (clipped to the raster) with a vectorised nodata mask."""
    clipped = clip_extent(source, extent)
    width, height = read_size(source, clipped, input_size)
    arrays, mask = [], np.zeros((height, width), bool)
    for band in source.image_bands:
        arr = _band_array(source, band.number, band.dtype, clipped, width, height)
        if band.palette is not None:  # indices -> the colours they name (a block is read by nearest neighbour)
            colours, band_mask = palette.expand_band(arr, band.palette, band.nodata_value, list(band.user_ranges),
                                                     detect_collar=source.alpha_band is None)
            arrays.extend(colours)
            mask |= band_mask
            continue
        mask |= nodata.band_nodata(arr, band.nodata_value, list(band.user_ranges),
                                   detect_collar=source.alpha_band is None)
        arrays.append(arr)
    if source.alpha_band is not None:
        alpha = _band_array(source, source.alpha_band.number, source.alpha_band.dtype, clipped, width, height)
        mask |= nodata.alpha_nodata(alpha)
    notes = []
    if clipped != extent:
        notes.append("the extent was clipped to the raster's edge")
    return RasterBlock(arrays[0][None] if len(arrays) == 1 else np.stack(arrays), mask, clipped, notes)


#: Smallest GDAL block cache :func:`bounded_block_cache` leaves (bytes): room for what other layers (the map
#: canvas) read meanwhile, and GDAL's own default before it became a share of RAM.
MIN_BLOCK_CACHE_BYTES = 32 * 2**20
#: Block side assumed for a provider that reports none (not GDAL-backed): generous, so the cap never starves it.
_UNKNOWN_BLOCK = 512


def row_block_bytes(source: RasterSource, width: float, height: float) -> int:
    """Bytes of decoded source blocks that reading a strip ``width`` x ``height`` (layer units) touches.

    Whole blocks of every band (a pixel-interleaved file decodes all bands of a block together), one more block
    each way for a strip that does not start on a block edge; never more than the whole raster.
    """
    px, py = source.pixel_size
    provider = source.provider
    bx = provider.xBlockSize() if provider.xBlockSize() > 0 else _UNKNOWN_BLOCK
    by = provider.yBlockSize() if provider.yBlockSize() > 0 else _UNKNOWN_BLOCK
    blocks_x = min(math.ceil(source.columns / bx), math.ceil(width / px / bx) + 1)
    blocks_y = min(math.ceil(source.rows / by), math.ceil(height / py / by) + 1)
    pixel_bytes = sum(max(1, provider.dataTypeSize(b)) for b in range(1, provider.bandCount() + 1))
    return blocks_x * bx * blocks_y * by * pixel_bytes


_cache_lock = threading.Lock()
_cache_claims: dict[int, int] = {}  # id of a running bounded_block_cache -> bytes it needs
_cache_state: dict[str, int] = {}  # "original": the limit to restore, "set": the limit last set here


def _apply_cache_limit(gdal) -> None:
    limit = min(_cache_state["original"], max(MIN_BLOCK_CACHE_BYTES, sum(_cache_claims.values())))
    if gdal.GetCacheMax() != limit:
        gdal.SetCacheMax(limit)  # lowering it drops least-recently-used blocks down to the new limit
    _cache_state["set"] = limit


@contextmanager
def bounded_block_cache(need_bytes: int) -> Iterator[int | None]:
    """GDAL's block cache limited to ``need_bytes`` (at least :data:`MIN_BLOCK_CACHE_BYTES`, never more than
    the limit in force) inside the ``with`` block; the limit in force before is restored afterwards.

    The limit is process-wide: runs at the same time add their needs up, the last one out restores the
    limit, and a limit someone else set during the run is the one kept. Yields the limit in force (None
    without GDAL's Python bindings, when nothing is changed).
    """
    try:
        from osgeo import gdal
    except ImportError:
        yield None
        return
    key = object()
    with _cache_lock:
        if not _cache_claims:
            _cache_state["original"] = gdal.GetCacheMax()
            _cache_state["set"] = _cache_state["original"]
        _cache_claims[id(key)] = max(0, int(need_bytes))
        _apply_cache_limit(gdal)
        limit = _cache_state["set"]
    try:
        yield limit
    finally:
        with _cache_lock:
            del _cache_claims[id(key)]
            current = gdal.GetCacheMax()
            if current != _cache_state["set"]:
                _cache_state["original"] = current  # changed by someone else meanwhile: theirs is kept
            if _cache_claims:
                _apply_cache_limit(gdal)
            elif current != _cache_state["original"]:
                gdal.SetCacheMax(_cache_state["original"])
