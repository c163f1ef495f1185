"""One extent -> one decision through the QGIS-side path: valid extents, nodata collars, bodies, GSD notes."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsRasterLayer

from conftest import APOLLO, MARS_EQUI
from model_factory import write_valid_model
from planet_terrain_plugin.core.session import load_model
from planet_terrain_plugin.qgis_io.classify import BodyError, classify_extent
from planet_terrain_plugin.qgis_io.layer_info import crs_info
from planet_terrain_plugin.qgis_io.raster_read import raster_source
from test_qgis_raster_read import pixel_rect


def run(layer, rect, model_path, body=None, threshold=None):
    return classify_extent(raster_source(layer), rect, load_model(str(model_path)), crs_info(layer.crs(), body),
                           threshold)


def test_interior_extent_is_classified_with_provenance(raster_layer, tiny_model):
    layer = raster_layer(APOLLO)
    outcome = run(layer, pixel_rect(layer, 600, 500, 100, 100), tiny_model)
    d = outcome.result.decision
    assert d is not None and outcome.result.valid_fraction == 1.0
    assert d.label in {"crater", "impact ejecta", "unknown"}  # Moon: the Mars-only classes are removed
    assert d.body_renormalised is True
    assert sum(d.probs) == pytest.approx(1.0) and d.confidence == pytest.approx(max(d.probs))
    p = outcome.provenance
    assert (p.body, p.source_layer, p.model, p.model_version, p.provider) == (
        "Moon", "AS15-M-0295_SML_geo", "tiny-test-model", "0.0.1-test", "CPUExecutionProvider")
    assert 160 < p.gsd_m < 180
    assert p.created_utc.endswith("Z") and p.created_utc[:2] == "20"
    assert outcome.extent == pixel_rect(layer, 600, 500, 100, 100)


def test_gsd_outside_the_models_range_is_noted(raster_layer, tiny_model):
    layer = raster_layer(APOLLO)  # ~170 m/px; the tiny model claims 0.25-6 m
    outcome = run(layer, pixel_rect(layer, 600, 500, 40, 40), tiny_model)
    assert any("outside the model's range" in n for n in outcome.notes)
    mars = raster_layer(MARS_EQUI)   # 0.25 m/px: inside
    assert not any("range" in n for n in run(mars, mars.extent(), tiny_model).notes)


def test_mostly_nodata_extent_is_reported_not_classified(raster_layer, tiny_model):
    layer = raster_layer(APOLLO)
    outcome = run(layer, pixel_rect(layer, 0, 0, 120, 120), tiny_model)  # the top-left collar corner
    assert outcome.result.decision is None
    assert "valid data" in outcome.result.skipped_reason and "nodata border" in outcome.result.skipped_reason


def test_threshold_one_makes_the_model_abstain(raster_layer, tiny_model):
    layer = raster_layer(APOLLO)
    d = run(layer, pixel_rect(layer, 600, 500, 60, 60), tiny_model, threshold=1.0).result.decision
    assert d.abstained and d.label == "unknown" and d.class_id == 0


@pytest.fixture
def earth_raster(tmp_path, qgis_app) -> QgsRasterLayer:
    """A small real GeoTIFF in EPSG:4326."""
    path = tmp_path / "earth.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 64, 64, 1, gdal.GDT_Byte)
    ds.SetGeoTransform((10.0, 0.01, 0, 50.0, 0, -0.01))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(np.random.default_rng(0).integers(1, 255, (64, 64), dtype=np.uint8))
    ds = None
    layer = QgsRasterLayer(str(path), "earth")
    assert layer.isValid()
    return layer


def test_earth_raster_is_refused_unless_the_body_is_overridden(earth_raster, tiny_model):
    with pytest.raises(BodyError, match="Earth CRS.*choose its body explicitly"):
        run(earth_raster, earth_raster.extent(), tiny_model)
    outcome = run(earth_raster, earth_raster.extent(), tiny_model, body="Moon")
    assert outcome.result.decision is not None and outcome.provenance.body == "Moon"


def test_model_made_for_another_body_is_refused(raster_layer, tmp_path):
    mars_only = write_valid_model(tmp_path / "mars_only.onnx", bodies=("Mars",))
    layer = raster_layer(APOLLO)
    with pytest.raises(BodyError, match="made for Mars, not Moon"):
        run(layer, pixel_rect(layer, 600, 500, 40, 40), mars_only)
