"""Reading extents from the raster provider: shapes, dtypes, values, nodata masks, clipping and errors."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsRectangle

from conftest import APOLLO, MARS_EQUI, VESTA_DAWN, VESTA_DTM, raster_path
from planet_terrain_plugin.core import nodata
from planet_terrain_plugin.qgis_io.raster_read import (MIN_BLOCK_CACHE_BYTES, OVERSAMPLE, ExtentError,
                                                        bounded_block_cache, raster_source, read_extent, read_size,
                                                        row_block_bytes)


def pixel_rect(layer, col0: int, row0: int, cols: int, rows: int) -> QgsRectangle:
    """The layer-CRS rectangle of a pixel window (row 0 at the top)."""
    ext = layer.extent()
    px, py = ext.width() / layer.width(), ext.height() / layer.height()
    return QgsRectangle(ext.xMinimum() + col0 * px, ext.yMaximum() - (row0 + rows) * py,
                        ext.xMinimum() + (col0 + cols) * px, ext.yMaximum() - row0 * py)


def gdal_read(name: str, *window: int) -> np.ndarray:
    """Band 1 straight from GDAL (the dataset is kept alive while its band is read: GDAL's Python rule)."""
    dataset = gdal.Open(str(raster_path(name)))
    return dataset.GetRasterBand(1).ReadAsArray(*window)


def gdal_window(name: str, col0: int, row0: int, cols: int, rows: int) -> np.ndarray:
    return gdal_read(name, col0, row0, cols, rows)


def test_native_window_matches_gdal_pixel_for_pixel(raster_layer):
    layer = raster_layer(APOLLO)
    block = read_extent(raster_source(layer), pixel_rect(layer, 600, 500, 60, 40), input_size=32)
    assert block.data.shape == (1, 40, 60) and block.data.dtype == np.uint8
    np.testing.assert_array_equal(block.data[0], gdal_window(APOLLO, 600, 500, 60, 40))
    assert not block.nodata_mask.any()


def test_apollo_zero_collar_is_nodata_though_undeclared(raster_layer):
    layer = raster_layer(APOLLO)
    source = raster_source(layer)
    assert source.image_bands[0].nodata_value is None and source.alpha_band is None
    block = read_extent(source, pixel_rect(layer, 0, 580, 200, 40), input_size=64)
    expected = gdal_window(APOLLO, 0, 580, 200, 40) == 0
    assert block.data.shape == (1, 40, 200)
    assert block.nodata_mask[:, 0].all()                  # the collar at the left edge
    assert not block.nodata_mask[:, 150:].any()           # the image
    np.testing.assert_array_equal(block.nodata_mask, expected)


def test_int16_isis_null_pixels_are_masked(raster_layer):
    layer = raster_layer(VESTA_DAWN)
    block = read_extent(raster_source(layer), layer.extent(), input_size=128)
    assert block.data.dtype == np.int16 and block.data.shape == (1, 338, 180)
    truth = gdal_read(VESTA_DAWN)
    np.testing.assert_array_equal(block.data[0], truth)
    np.testing.assert_array_equal(block.nodata_mask, truth == -32768)
    assert 0.2 < block.nodata_mask.mean() < 0.4


def test_isis_special_pixels_beyond_the_nodata_value_are_masked(raster_layer):
    """The Vesta DTM holds LRS/HRS special pixels besides NULL: GDAL's mask (QGIS's alpha band) flags them."""
    layer = raster_layer(VESTA_DTM)
    source = raster_source(layer)
    assert source.alpha_band is not None and [b.number for b in source.image_bands] == [1]
    block = read_extent(source, layer.extent(), input_size=128)
    truth = gdal_read(VESTA_DTM)
    special = truth < -3.0e38
    other_specials = special & (truth != np.float32(source.image_bands[0].nodata_value))
    assert other_specials.sum() > 0  # the declared nodata value alone would miss these
    assert block.data.dtype == np.float32
    np.testing.assert_array_equal(block.nodata_mask, special)


def test_large_extent_is_read_at_a_capped_size_keeping_aspect(raster_layer):
    layer = raster_layer(APOLLO)
    source = raster_source(layer)
    block = read_extent(source, layer.extent(), input_size=32)
    cap = OVERSAMPLE * 32
    assert block.data.shape == (1, round(1213 * cap / 1315), cap)
    assert read_size(source, pixel_rect(layer, 0, 0, 100, 50), 32) == (100, 50)  # native when small


def test_extent_hanging_off_the_raster_is_clipped(raster_layer):
    layer = raster_layer(MARS_EQUI)
    ext = layer.extent()
    wider = QgsRectangle(ext.xMinimum() - ext.width(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum())
    block = read_extent(raster_source(layer), wider, input_size=64)
    assert block.extent == ext
    assert block.data.shape == (1, 50, 50)
    assert any("clipped" in n for n in block.notes)


def test_extent_off_the_raster_raises_a_clear_error(raster_layer):
    layer = raster_layer(APOLLO)
    far = QgsRectangle(10.0, 10.0, 11.0, 11.0)
    with pytest.raises(ExtentError, match="does not overlap the raster 'AS15-M-0295_SML_geo'"):
        read_extent(raster_source(layer), far, input_size=32)
    with pytest.raises(ExtentError, match="empty"):
        read_extent(raster_source(layer), QgsRectangle(), input_size=32)


def test_edge_zero_runs_keep_interior_black_pixels():
    a = np.array([[0, 0, 5, 6, 7, 0],
                  [0, 3, 0, 4, 9, 0],
                  [0, 2, 8, 0, 1, 0],
                  [0, 0, 0, 5, 0, 0]], dtype=np.uint8)
    m = nodata.edge_zero_runs(a)
    np.testing.assert_array_equal(m, np.array([[1, 1, 0, 0, 0, 1],
                                               [1, 0, 0, 0, 0, 1],   # (1, 2) is shadow inside the image
                                               [1, 0, 0, 0, 0, 1],   # (2, 3) too
                                               [1, 1, 1, 0, 1, 1]], bool))


def test_band_nodata_uses_declared_values_and_ranges_instead_of_guessing():
    a = np.array([[0, 1, 2], [3, 250, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(nodata.band_nodata(a, 255.0, []), [[0, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(nodata.band_nodata(a, None, [(1, 2)]), [[0, 1, 1], [0, 0, 0]])
    f = np.array([[np.nan, 1.0], [np.float32(-3.4028226550889045e38), 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(nodata.band_nodata(f, -3.4028226550889045e38, []), [[1, 0], [1, 0]])
    assert not nodata.equals_value(a, -32768.0).any()  # out of the dtype's range: no match, no overflow


def test_row_block_bytes_counts_whole_blocks_of_every_band(tmp_path):
    from qgis.core import QgsRasterLayer

    path = str(tmp_path / "tiled.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 100, 100, 2, gdal.GDT_UInt16,
                                              ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"])
    ds.SetGeoTransform([0, 1, 0, 100, 0, -1])
    ds = None
    source = raster_source(QgsRasterLayer(path, "tiled"))
    # a strip 50 px wide, 10 px high: 4 + 1 blocks across, 1 + 1 down, 2 bands of 2 bytes
    assert row_block_bytes(source, 50, 10) == 5 * 16 * 2 * 16 * 2 * 2
    # never more than the raster's own blocks (7 x 7)
    assert row_block_bytes(source, 1000, 1000) == 7 * 16 * 7 * 16 * 2 * 2


@pytest.fixture
def gdal_cache_limit():
    """GDAL's block cache limit, put back whatever a test does to it."""
    before = gdal.GetCacheMax()
    yield before
    gdal.SetCacheMax(before)


def test_bounded_block_cache_lowers_the_limit_only_while_it_runs(gdal_cache_limit):
    gdal.SetCacheMax(512 * 2**20)
    with bounded_block_cache(1000) as limit:
        assert limit == gdal.GetCacheMax() == MIN_BLOCK_CACHE_BYTES  # a floor for the rest of QGIS
        with bounded_block_cache(100 * 2**20) as inner:  # runs at the same time add their needs up
            assert inner == gdal.GetCacheMax() == 100 * 2**20 + 1000
        assert gdal.GetCacheMax() == MIN_BLOCK_CACHE_BYTES
    assert gdal.GetCacheMax() == 512 * 2**20
    with bounded_block_cache(2**40):  # never raised above the limit in force
        assert gdal.GetCacheMax() == 512 * 2**20
    gdal.SetCacheMax(16 * 2**20)
    with bounded_block_cache(0):  # a user's limit below the floor is kept
        assert gdal.GetCacheMax() == 16 * 2**20
    assert gdal.GetCacheMax() == 16 * 2**20


def test_bounded_block_cache_keeps_a_limit_set_by_someone_else_meanwhile(gdal_cache_limit):
    gdal.SetCacheMax(512 * 2**20)
    with pytest.raises(KeyError):
        with bounded_block_cache(0):
            gdal.SetCacheMax(200 * 2**20)
            raise KeyError("the run failed")
    assert gdal.GetCacheMax() == 200 * 2**20
