"""The "Terrain classes" layer: typed fields, one feature per extent, appended per source, fixed palette."""
from __future__ import annotations

import pytest
from qgis.core import QgsCategorizedSymbolRenderer, QgsProject, QgsWkbTypes
from qgis.PyQt.QtCore import QVariant

from conftest import APOLLO
from model_factory import tiny_contract
from planet_terrain_plugin.core.calibrate import Decision
from planet_terrain_plugin.core.contract import TerrainClass
from planet_terrain_plugin.qgis_io import fields, result_layer, style
from test_qgis_raster_read import pixel_rect

EXPECTED = [("label", QVariant.String), ("class_id", QVariant.Int), ("confidence", QVariant.Double),
            ("abstained", QVariant.Bool), ("reason", QVariant.String), ("ood_score", QVariant.Double),
            ("p_crater", QVariant.Double), ("p_dark_dune", QVariant.Double), ("p_slope_streak", QVariant.Double),
            ("p_bright_dune", QVariant.Double), ("p_impact_ejecta", QVariant.Double),
            ("p_swiss_cheese", QVariant.Double), ("p_spider", QVariant.Double),
            ("body", QVariant.String), ("body_renorm", QVariant.Bool), ("gsd_m", QVariant.Double),
            ("gsd_warn", QVariant.Bool), ("scale_factor", QVariant.Double), ("source_layer", QVariant.String),
            ("model", QVariant.String),
            ("model_version", QVariant.String), ("provider", QVariant.String), ("created_utc", QVariant.String),
            ("reviewed_label", QVariant.String), ("reviewed", QVariant.Bool), ("reviewed_by", QVariant.String),
            ("reviewed_utc", QVariant.String)]

PROV = fields.Provenance("Moon", 171.5, "AS15", "tiny-test-model", "0.0.1-test", "CPUExecutionProvider",
                         "2026-11-23T17:00:00Z")
DECISION = Decision(1, "crater", 0.8, False, (0.8, 0.0, 0.0, 0.0, 0.2, 0.0, 0.0), True)


@pytest.fixture
def project(qgis_new_project):
    yield QgsProject.instance()
    QgsProject.instance().removeAllMapLayers()


def test_fields_are_typed_and_follow_the_contract():
    got = [(f.name(), f.type()) for f in fields.result_fields(tiny_contract())]
    assert got == EXPECTED
    other = tiny_contract(classes=(TerrainClass(3, "Rille Floor", ("Moon",)),))
    assert "p_rille_floor" in fields.result_fields(other).names()


def test_memory_layer_keeps_types_crs_and_values(project, raster_layer):
    source = raster_layer(APOLLO)
    contract = tiny_contract()
    layer = result_layer.result_layer_for(project, source.crs(), contract, source.name(), source.id())
    assert layer.name() == "Terrain classes (AS15-M-0295_SML_geo)"
    assert layer.geometryType() == QgsWkbTypes.PolygonGeometry
    assert layer.crs() == source.crs() and "+R=1737400" in layer.crs().toProj()
    assert [(f.name(), f.type()) for f in layer.fields()] == EXPECTED
    rect = pixel_rect(source, 600, 500, 50, 50)
    result_layer.append_features(layer, [fields.decision_feature(layer.fields(), rect, DECISION, contract, PROV)])
    (feat,) = list(layer.getFeatures())
    assert feat["label"] == "crater" and feat["class_id"] == 1 and feat["confidence"] == pytest.approx(0.8)
    assert feat["abstained"] is False and feat["body_renorm"] is True
    assert feat["p_impact_ejecta"] == pytest.approx(0.2) and feat["gsd_m"] == pytest.approx(171.5)
    assert feat["provider"] == "CPUExecutionProvider" and feat["created_utc"] == "2026-11-23T17:00:00Z"
    assert feat.geometry().boundingBox() == rect


def test_second_run_appends_to_the_same_layer_other_models_get_their_own(project, raster_layer):
    source = raster_layer(APOLLO)
    contract = tiny_contract()
    first = result_layer.result_layer_for(project, source.crs(), contract, source.name(), source.id())
    again = result_layer.result_layer_for(project, source.crs(), contract, source.name(), source.id())
    assert again is first and len(project.mapLayers()) == 1
    other = tiny_contract(classes=(TerrainClass(1, "crater", ("Moon",)),))
    assert result_layer.result_layer_for(project, source.crs(), other, source.name(), source.id()) is not first
    assert len(project.mapLayers()) == 2


def test_categorized_style_by_label_with_fixed_palette(project, raster_layer):
    source = raster_layer(APOLLO)
    layer = result_layer.create_result_layer(source.crs(), tiny_contract(), source.name(), source.id())
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "label"
    colours = {c.value(): c.symbol().symbolLayer(0).fillColor().name() for c in renderer.categories()}
    assert colours["unknown"] == "#9e9e9e"
    assert colours["crater"] == style.PALETTE["crater"] == "#e6194b"
    assert set(colours) == {"crater", "dark dune", "slope streak", "bright dune", "impact ejecta",
                            "swiss cheese", "spider", "unknown"}
    assert len(set(colours.values())) == len(colours)  # every class distinguishable
    assert style.class_colour("rille floor").name() == style.class_colour("rille floor").name()
