"""Teaching and harvesting read pixels as classifying does, so a raster that is not an image (issue 16's
``not_an_image``) is refused by ``teach_head`` and ``export_training_data`` too, before any work: a head
taught on heights, or training data cut from them, would teach the model that elevation is brightness."""
from __future__ import annotations

import pytest
from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsPointXY, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import QVariant

from conftest import VESTA_DTM, raster_path
from test_bad_input import refused


pytestmark = pytest.mark.usefixtures("terrain_processing")


def _points(dtm: QgsRasterLayer) -> QgsVectorLayer:
    points = QgsVectorLayer("Point", "examples", "memory")
    points.setCrs(dtm.crs())
    points.dataProvider().addAttributes([QgsField("class", QVariant.String)])
    points.updateFields()
    centre = dtm.extent().center()
    feats = []
    for i, label in enumerate(["groove", "groove", "other", "other"]):
        f = QgsFeature(points.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(centre.x() + i * 1000.0, centre.y())))
        f.setAttributes([label])
        feats.append(f)
    points.dataProvider().addFeatures(feats)
    return points


def test_teach_head_refuses_an_elevation_model(tiny_model, tmp_path):
    dtm = QgsRasterLayer(str(raster_path(VESTA_DTM)), "dtm")
    out = tmp_path / "grooves"
    refused(r"INPUT: '.*' is not an image: it holds elevation", alg="planet_terrain:teach_head",
            INPUT=str(raster_path(VESTA_DTM)), EXAMPLES=_points(dtm), LABEL_FIELD="class", MODEL=str(tiny_model),
            OUTPUT=str(out))
    assert not list(tmp_path.iterdir())


def test_export_training_data_refuses_an_elevation_model(tiny_model, tmp_path):
    dtm = QgsRasterLayer(str(raster_path(VESTA_DTM)), "dtm")
    cells = QgsVectorLayer("Polygon", "cells", "memory")
    cells.setCrs(dtm.crs())
    refused(r"RASTER: '.*' is not an image: it holds elevation", alg="planet_terrain:export_training_data",
            INPUT=cells, RASTER=str(raster_path(VESTA_DTM)), MODEL=str(tiny_model), OUTPUT=str(tmp_path / "data"))
    assert not (tmp_path / "data").exists()
