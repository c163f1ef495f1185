"""Preprocessing: golden values computed by hand, every dtype and band count, nodata, and property tests."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from model_factory import tiny_contract
from paths import HIRISE_V3, RASTERS
from planet_terrain_plugin.core import nodata
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.preprocess import (
    MostlyNodataError, percentiles_of, preprocess, preprocess_many, resize, stretch_to_uint8, stretched_gray,
    to_luminance)


def test_resize_upsample_golden():
    # 2 -> 4 with a triangle filter: [a, .75a+.25b, .25a+.75b, b] along each axis.
    out = resize(np.array([[0.0, 100.0], [200.0, 300.0]]), 4)
    row0 = [0, 25, 75, 100]
    row3 = [200, 225, 275, 300]
    expected = np.array([row0, [50, 75, 125, 150], [150, 175, 225, 250], row3], float)
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_resize_downsample_averages_instead_of_aliasing():
    checker = np.indices((64, 64)).sum(axis=0) % 2 * 255.0  # 1-pixel checkerboard
    out = resize(checker, 16)
    np.testing.assert_allclose(out, 127.5, atol=1.0)  # nearest-neighbour would give all 0 or all 255


def test_stretch_golden_with_full_range_percentiles():
    lum = np.array([[0.0, 100.0], [200.0, 300.0]])
    out = stretch_to_uint8(lum, np.ones_like(lum, bool), (0.0, 100.0))
    np.testing.assert_array_equal(out, [[0, 85], [170, 255]])


def test_whole_path_golden():
    c = tiny_contract(input_size=4, stretch_percentiles=(0.0, 100.0), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    block = np.array([[0, 1000], [2000, 3000]], dtype=np.uint16)
    t = preprocess(block, c).tensor
    gray = np.array([[0, 85], [170, 255]], float)
    ref = resize(gray, 4) / 255.0
    assert t.shape == (3, 4, 4) and t.dtype == np.float32
    for ch in range(3):
        np.testing.assert_allclose(t[ch], (ref - 0.5) / 0.5, atol=1e-6)
    assert t[0, 0, 0] == pytest.approx(-1.0) and t[0, 3, 3] == pytest.approx(1.0)


def test_rgb_uses_rec601_luma_and_ignores_alpha():
    rgba = np.zeros((4, 2, 2), np.uint8)
    rgba[0] = 255  # pure red
    rgba[3] = 7  # alpha must not matter
    np.testing.assert_allclose(to_luminance(rgba), 0.299 * 255)


def test_nodata_is_masked_and_filled_with_the_valid_mean():
    c = tiny_contract(stretch_percentiles=(0.0, 100.0))
    block = np.array([[-32768, 10, 20], [30, -32768, 40]], np.int16)
    gray, fraction = stretched_gray(block, c, block == -32768)
    assert fraction == pytest.approx(4 / 6)
    valid = gray[block != -32768]
    np.testing.assert_array_equal(valid, [0, 85, 170, 255])
    assert gray[0, 0] == gray[1, 1] == np.rint(valid.mean())


def test_mostly_nodata_is_refused_with_a_reason():
    block = np.zeros((10, 10), np.float32)
    mask = np.ones_like(block, bool)
    mask[0, :3] = False
    with pytest.raises(MostlyNodataError, match="3% of the pixels are valid"):
        preprocess(block, tiny_contract(), mask)


def test_nan_and_inf_become_nodata():
    block = np.array([[np.nan, np.inf, 1.0, 2.0], [3.0, -np.inf, 4.0, 5.0]], np.float32)
    gray, fraction = stretched_gray(block, tiny_contract(stretch_percentiles=(0.0, 100.0)))
    assert fraction == pytest.approx(5 / 8)
    assert gray.dtype == np.uint8


def test_flat_image_is_mid_grey_not_a_division_by_zero():
    gray, _ = stretched_gray(np.full((5, 5), 7.0), tiny_contract())
    assert (gray == 128).all()


def test_real_hirise_crop():
    path = next((HIRISE_V3 / "map-proj-v3").glob("*.jpg"))
    block, mask = read_image(str(path))
    assert block.shape == (227, 227) and block.dtype == np.uint8 and mask is None
    t = preprocess(block, tiny_contract()).tensor
    assert t.shape == (3, 32, 32) and np.isfinite(t).all()


@settings(max_examples=120, deadline=None)
@given(arr=hnp.arrays(dtype=st.sampled_from([np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]),
                      shape=st.one_of(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
                                      st.tuples(st.integers(1, 5), st.integers(1, 30), st.integers(1, 30)))),
       nodata_share=st.floats(0, 1))
def test_any_input_gives_a_finite_tensor_or_a_clear_error(arr, nodata_share):
    rng = np.random.default_rng(0)
    mask = rng.random(arr.shape[-2:]) < nodata_share
    try:
        t = preprocess(arr, tiny_contract(), mask).tensor
    except MostlyNodataError as exc:
        assert "valid" in str(exc)
    else:
        assert t.shape == (3, 32, 32) and np.isfinite(t).all()


@settings(max_examples=200, deadline=None)
@given(values=hnp.arrays(np.float64, st.integers(1, 500),
                         elements=st.one_of(st.integers(-40000, 40000).map(float),
                                            st.floats(-1e6, 1e6, allow_nan=False))),
       q=st.tuples(st.floats(0, 50), st.floats(50, 100)))
def test_fast_percentiles_equal_numpy(values, q):
    np.testing.assert_allclose(percentiles_of(values, q), np.percentile(values, q), rtol=0, atol=0)


def _one_by_one(blocks, contract, masks):
    """The per-image path preprocess_many must reproduce: (tensor or None, valid fraction) per block."""
    out = []
    for block, mask in zip(blocks, masks):
        try:
            prepared = preprocess(block, contract, mask)
            out.append((prepared.tensor, prepared.valid_fraction))
        except MostlyNodataError as exc:
            out.append((None, exc.valid_fraction))
    return out


def _assert_same_as_one_by_one(blocks, contract, masks):
    stacked, usable, fractions = preprocess_many(blocks, contract, masks)
    tensors = [None] * len(blocks)
    for row, i in enumerate(usable):
        tensors[i] = stacked[row]
    for (want, want_fraction), got, fraction in zip(_one_by_one(blocks, contract, masks), tensors, fractions):
        assert fraction == want_fraction
        assert (got is None) == (want is None)
        if want is not None:
            # The same 8-bit image in both paths; only the batched resize may round its last bit differently.
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    return tensors


@settings(max_examples=80, deadline=None)
@given(dtype=st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.float64]),
       bands=st.sampled_from([1, 2, 3, 4]), side=st.integers(2, 30), count=st.integers(1, 6),
       nodata_share=st.sampled_from([0.0, 0.0, 0.3, 0.7]), flat=st.booleans(), seed=st.integers(0, 2**16))
def test_vectorised_batch_equals_one_image_at_a_time(dtype, bands, side, count, nodata_share, flat, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    lo, hi = (info.min, info.max) if info else (-1e4, 1e4)
    blocks, masks = [], []
    for k in range(count):
        block = rng.uniform(lo, hi, (bands, side, side)).astype(dtype)
        if flat and k == 0:
            block[:] = block.flat[0]
        if info is None and k == 1:
            block[0, 0, 0] = np.nan  # non-finite pixels make a block partly valid
        blocks.append(block)
        masks.append(rng.random((side, side)) < nodata_share if k % 2 else None)
    blocks.append(rng.integers(0, 255, (1, side + 1, side), dtype=np.uint8))  # another shape in the same call
    masks.append(None)
    _assert_same_as_one_by_one(blocks, tiny_contract(), masks)


def test_vectorised_batch_on_real_cells_with_a_nodata_collar():
    from osgeo import gdal

    data = gdal.Open(str(RASTERS / "AS15-M-0295_SML_geo.tif")).ReadAsArray()  # rotated frame in a zero collar
    cell = 24
    blocks, masks = [], []
    for y in range(0, 240, cell):
        for x in range(0, data.shape[1] - cell, cell * 3):
            block = data[y:y + cell, x:x + cell]
            blocks.append(block[None])
            masks.append(nodata.band_nodata(block, None, []))
    tensors = _assert_same_as_one_by_one(blocks, tiny_contract(input_size=96), masks)
    kinds = {t is None for t in tensors}
    assert kinds == {True, False}, "the sample must hold both collar cells and image cells"
    assert any(0 < m.mean() < 0.5 for m in masks), "and cells partly in the collar"


def test_vectorised_batch_names_a_malformed_block():
    with pytest.raises(ValueError, match="empty"):
        preprocess_many([np.zeros((1, 0, 5), np.uint8)], tiny_contract())
