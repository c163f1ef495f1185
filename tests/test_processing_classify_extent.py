"""``planet_terrain:classify_extent`` through processing.run inside the test session's QGIS."""
from __future__ import annotations

import pytest
from qgis.core import QgsProcessingException, QgsWkbTypes

from conftest import APOLLO, raster_path
from planet_terrain_plugin.core import models
from test_qgis_raster_read import pixel_rect

ALG = "planet_terrain:classify_extent"


def run(**params):
    import processing

    params.setdefault("OUTPUT", "memory:")
    return processing.run(ALG, params)


def test_provider_and_algorithm_are_registered(terrain_processing):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(ALG)
    assert alg is not None and alg.provider().name() == "Planet Terrain"
    names = [p.name() for p in alg.parameterDefinitions()]
    assert names == ["INPUT", "EXTENT", "MODEL", "THRESHOLD", "BODY", "HEAD", "OUTPUT"]
    assert alg.parameterDefinition("BODY").options() == ["auto", "Mars", "Moon", "Vesta"]


def test_extent_of_a_moon_raster_gives_one_typed_feature(terrain_processing, tiny_model, raster_layer):
    layer = raster_layer(APOLLO)
    rect = pixel_rect(layer, 600, 500, 80, 60)
    extent = f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()}"
    res = run(INPUT=str(raster_path(APOLLO)), EXTENT=extent, MODEL=str(tiny_model))
    out = res["OUTPUT"]
    assert out.wkbType() in (QgsWkbTypes.Polygon, QgsWkbTypes.MultiPolygon)
    assert "+R=1737400" in out.crs().toProj()
    (feat,) = list(out.getFeatures())
    assert feat["label"] == res["LABEL"] and feat["confidence"] == pytest.approx(res["CONFIDENCE"])
    assert feat["body"] == "Moon" and feat["model"] == "tiny-test-model"
    assert feat["provider"] == res["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    assert feat.geometry().boundingBox().toString(6) == rect.toString(6)
    assert 160 < feat["gsd_m"] < 180


def test_whole_layer_when_no_extent_threshold_and_body_override(terrain_processing, tiny_model):
    res = run(INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), THRESHOLD=1.0, BODY=1)  # BODY 1 = Mars
    (feat,) = list(res["OUTPUT"].getFeatures())
    assert feat["label"] == "unknown" and feat["abstained"] is True and feat["body"] == "Mars"
    assert feat["body_renorm"] is False  # Mars allows every class
    assert feat.geometry().boundingBox().toString(3) == "143.497,-24.995 : 151.196,-17.893"


def test_mostly_nodata_extent_gives_no_feature_and_says_why(terrain_processing, tiny_model, raster_layer):
    from qgis.core import QgsProcessingFeedback

    layer = raster_layer(APOLLO)
    rect = pixel_rect(layer, 0, 0, 100, 100)

    class Recorder(QgsProcessingFeedback):
        errors: list[str] = []

        def reportError(self, error, fatalError=False):  # noqa: N802
            self.errors.append(error)

    import processing

    feedback = Recorder()
    res = processing.run(ALG, {"INPUT": str(raster_path(APOLLO)), "MODEL": str(tiny_model), "OUTPUT": "memory:",
                               "EXTENT": f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()}"},
                         feedback=feedback)
    assert res["OUTPUT"].featureCount() == 0 and res["LABEL"] == ""
    assert any("Not classified" in e and "nodata border" in e for e in feedback.errors)


def test_missing_default_model_fails_with_how_to_get_one(terrain_processing):
    if models.installed_variants():
        pytest.skip("a default model is installed in the plugin; the no-model path cannot occur")
    with pytest.raises(QgsProcessingException, match=r"MODEL: No default model is installed.*make train export"):
        run(INPUT=str(raster_path(APOLLO)))


def test_broken_model_names_the_bad_key(terrain_processing, broken_model):
    with pytest.raises(QgsProcessingException, match=r"planet_terrain\.temperature' is missing"):
        run(INPUT=str(raster_path(APOLLO)), MODEL=str(broken_model))


def test_off_raster_extent_names_the_problem(terrain_processing, tiny_model):
    with pytest.raises(QgsProcessingException, match="does not overlap the raster"):
        run(INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), EXTENT="0,1,0,1")


def test_non_raster_input_is_refused(terrain_processing, tiny_model, tmp_path):
    text = tmp_path / "not_a_raster.txt"
    text.write_text("hello")
    with pytest.raises(QgsProcessingException):
        run(INPUT=str(text), MODEL=str(tiny_model))


def test_output_loaded_into_the_project_gets_the_class_palette(terrain_processing, tiny_model, qgis_new_project):
    from qgis.core import QgsCategorizedSymbolRenderer, QgsProject

    import processing

    res = processing.runAndLoadResults(ALG, {"INPUT": str(raster_path(APOLLO)), "MODEL": str(tiny_model),
                                             "OUTPUT": "TEMPORARY_OUTPUT"})
    layer = QgsProject.instance().mapLayer(res["OUTPUT"])
    try:
        assert layer is not None and layer.featureCount() == 1
        renderer = layer.renderer()
        assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "label"
        assert {c.value() for c in renderer.categories()} >= {"crater", "unknown"}
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_extent_in_an_earth_crs_is_refused_for_a_moon_raster(terrain_processing, tiny_model):
    with pytest.raises(QgsProcessingException, match=r"EXTENT: cannot place the rectangle from 'WGS 84'"):
        run(INPUT=str(raster_path(APOLLO)), MODEL=str(tiny_model), EXTENT="145,146,-22,-21 [EPSG:4326]")
