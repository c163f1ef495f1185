"""Property tests that complete the ones next to the code (test_core_contract, test_core_preprocess, test_grid).

Already there and not repeated: any value under any *known* contract key parses or raises ContractError;
any dtype/shape/nodata mix of 2-D and (bands, H, W) arrays gives a finite tensor or MostlyNodataError; grids
tile exact multiples, cover any extent when clipped, stride with overlap and count geographic rows exactly.

Added here: whole metadata dicts (keys missing, foreign, misspelled; values of any JSON type or not JSON);
arrays of the wrong rank and masks of the wrong shape (clear errors, nothing else); extreme magnitudes that can
overflow the stretch; and the snapping of a grid area to the raster's pixel grid (processing side).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from model_factory import tiny_contract
from planet_terrain_plugin.core.contract import KEY_PREFIX, OPTIONAL_KEYS, ContractError, ModelContract
from planet_terrain_plugin.core.preprocess import MostlyNodataError, preprocess

CONTRACT = tiny_contract()
KNOWN = sorted(CONTRACT.to_metadata())

# -- the contract parser: arbitrary metadata dicts ----------------------------------------------------------------
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                  max_size=3), max_leaves=5)
_value = st.one_of(_json.map(json.dumps), st.text(max_size=12))  # JSON of any type, or not JSON at all
_key = st.one_of(st.sampled_from(KNOWN), st.text(max_size=12).map(lambda t: KEY_PREFIX + t), st.text(max_size=12))


@settings(max_examples=200, deadline=None)
@given(drop=st.sets(st.sampled_from(KNOWN), max_size=len(KNOWN)), extra=st.dictionaries(_key, _value, max_size=5))
def test_any_metadata_dict_parses_to_a_valid_contract_or_names_the_problem(drop, extra):
    md = {k: v for k, v in CONTRACT.to_metadata().items() if k not in drop}
    md.update(extra)
    try:
        c = ModelContract.from_metadata(md, "any.onnx")
    except ContractError as exc:
        msg = str(exc)
        assert msg.startswith("Model 'any.onnx': ")
        # the key is named when one is at fault; a dict without any planet_terrain.* key says so instead
        assert (exc.key is not None and f"'{KEY_PREFIX}{exc.key}'" in msg) or "no Planet Terrain contract" in msg \
            or exc.key is None
    else:
        c.validate("any.onnx")
        required = set(KNOWN) - {KEY_PREFIX + k for k in OPTIONAL_KEYS}
        assert not (required - set(md)), "a contract parsed although a required key was missing"


@settings(max_examples=100, deadline=None)
@given(md=st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=8))
def test_foreign_metadata_alone_is_refused_as_no_contract(md):
    md = {k: v for k, v in md.items() if not k.startswith(KEY_PREFIX)}
    with pytest.raises(ContractError, match="no Planet Terrain contract"):
        ModelContract.from_metadata(md, "foreign.onnx")


# -- preprocessing: wrong ranks, wrong masks, extreme magnitudes --------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arr=hnp.arrays(dtype=st.sampled_from([np.uint8, np.int16, np.uint16, np.float32, np.float64]),
                      shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6)),
       mask_shape=st.one_of(st.none(), hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6)))
def test_wrong_ranks_and_mask_shapes_give_clear_errors_only(arr, mask_shape):
    if arr.ndim == 3 and arr.shape[0] == 0:
        return  # zero bands: test_an_image_without_bands_is_a_clear_error below
    mask = None if mask_shape is None else np.zeros(mask_shape, bool)
    try:
        t = preprocess(arr, CONTRACT, mask).tensor
    except MostlyNodataError as exc:
        assert "valid" in str(exc)
    except ValueError as exc:
        assert any(w in str(exc) for w in ("expected a (H, W) or (bands, H, W) array", "is empty",
                                           "nodata mask shape")), str(exc)
    else:
        assert t.shape == (3, 32, 32) and np.isfinite(t).all()


def test_an_image_without_bands_is_a_clear_error():
    with pytest.raises(ValueError, match="no bands|is empty|expected a"):
        preprocess(np.zeros((0, 4, 4), np.uint8), CONTRACT)


_EXTREMES = [1e308, -1e308, np.finfo(np.float64).max, -np.finfo(np.float64).max, 3.4028234663852886e38,
             -3.4028234663852886e38, np.nan, np.inf, -np.inf, 0.0, 5e-324, -5e-324]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arr=hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 16), st.integers(1, 16)),
                      elements=st.one_of(st.floats(-1e3, 1e3), st.sampled_from(_EXTREMES))),
       nodata_share=st.floats(0, 1))
@example(arr=np.array([[[-1e308] * 8 + [1e308] * 8] * 4]), nodata_share=0.0)
def test_extreme_magnitudes_never_produce_an_invalid_operation(arr, nodata_share):
    """No NaN may arise on the way: a NaN cast to uint8 is a silent, wrong pixel."""
    mask = np.random.default_rng(0).random(arr.shape[-2:]) < nodata_share
    try:
        with np.errstate(invalid="raise", divide="raise"):
            t = preprocess(arr, CONTRACT, mask).tensor
    except MostlyNodataError:
        return
    assert np.isfinite(t).all()


# -- grid geometry: snapping an area to the raster's pixels (processing side) ---------------------------------------
@settings(max_examples=200, deadline=None)
@given(x0=st.floats(-1e6, 1e6), y0=st.floats(-1e6, 1e6), cols=st.integers(1, 500), rows=st.integers(1, 500),
       px=st.floats(0.01, 100), py=st.floats(0.01, 100), a=st.floats(-0.2, 1.2), b=st.floats(-0.2, 1.2),
       c=st.floats(-0.2, 1.2), d=st.floats(-0.2, 1.2))
def test_snapped_area_covers_the_request_on_whole_pixels_inside_the_raster(qgis_app, x0, y0, cols, rows, px, py,
                                                                          a, b, c, d):
    from qgis.core import QgsRectangle

    from planet_terrain_plugin.qgis_io.engine import snap_to_pixels

    raster = QgsRectangle(x0, y0, x0 + cols * px, y0 + rows * py)
    area = QgsRectangle(x0 + min(a, b) * cols * px, y0 + min(c, d) * rows * py,
                        x0 + max(a, b) * cols * px, y0 + max(c, d) * rows * py)
    wanted = area.intersect(raster)
    if wanted.isEmpty() or wanted.width() < px * 1e-3 or wanted.height() < py * 1e-3:
        return
    snapped = snap_to_pixels(wanted, raster, px, py)
    tol_x, tol_y = 1e-6 * px + 1e-9 * abs(x0), 1e-6 * py + 1e-9 * abs(y0)
    # inside the raster
    assert snapped.xMinimum() >= raster.xMinimum() - tol_x and snapped.xMaximum() <= raster.xMaximum() + tol_x
    assert snapped.yMinimum() >= raster.yMinimum() - tol_y and snapped.yMaximum() <= raster.yMaximum() + tol_y
    # covers what was asked (up to the snapping's own 1e-9-pixel slack)
    assert snapped.xMinimum() <= wanted.xMinimum() + tol_x and snapped.xMaximum() >= wanted.xMaximum() - tol_x
    assert snapped.yMinimum() <= wanted.yMinimum() + tol_y and snapped.yMaximum() >= wanted.yMaximum() - tol_y
    # on whole pixels, and never more than one pixel bigger on each side
    edges = ((snapped.xMinimum(), raster.xMinimum(), px), (snapped.xMaximum(), raster.xMinimum(), px),
             (snapped.yMinimum(), raster.yMaximum(), py), (snapped.yMaximum(), raster.yMaximum(), py))
    for edge, origin, size in edges:
        steps = (edge - origin) / size
        assert math.isclose(steps, round(steps), abs_tol=1e-6)
    assert snapped.width() <= wanted.width() + 2 * px + tol_x and snapped.height() <= wanted.height() + 2 * py + tol_y
