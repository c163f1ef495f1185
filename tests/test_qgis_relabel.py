"""Re-labelling a result layer at a new threshold from its stored probabilities (``qgis_io.relabel``).

The reference is always a fresh ``classify_grid`` run at that threshold on the same raster with the same real
tiny ONNX model: re-labelling must give the same label, class id and abstention for every cell.
"""
from __future__ import annotations

import pytest
from qgis.core import QgsFeatureRequest, QgsVectorLayer
from qgis.PyQt.QtCore import QVariant

from conftest import APOLLO, MARS_EQUI, raster_path
from model_factory import tiny_contract
from planet_terrain_plugin.core.contract import TerrainClass
from planet_terrain_plugin.qgis_io import export, relabel
from planet_terrain_plugin.qgis_io.fields import gsd_factor, gsd_warning

GRID = "planet_terrain:classify_grid"
CONTRACT = tiny_contract()


def grid(tiny_model, name=APOLLO, threshold=None, output="memory:", **params):
    import processing

    params = dict(INPUT=str(raster_path(name)), MODEL=str(tiny_model), OUTPUT=output, **params)
    if threshold is not None:
        params["THRESHOLD"] = threshold
    out = processing.run(GRID, params)["OUTPUT"]
    return out if isinstance(out, QgsVectorLayer) else export.load_export(out)


def cells(layer) -> dict[tuple[int, int], tuple]:
    return {(f["row"], f["col"]): (f["label"], int(f["class_id"]), bool(int(f["abstained"])), f["confidence"])
            for f in layer.getFeatures()}


@pytest.fixture(scope="module")
def apollo_grid(qgis_processing, tiny_model):
    """One Apollo grid at the model's threshold (0.3) and fresh runs at other thresholds, made once."""
    from planet_terrain_plugin.processing.provider import PROVIDER_ID, PlanetTerrainProvider
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    added = None
    if registry.providerById(PROVIDER_ID) is None:
        added = PlanetTerrainProvider()
        registry.addProvider(added)
    base = grid(tiny_model, CELL_SIZE=96, CELL_UNIT=1)
    confidences = sorted(f["confidence"] for f in base.getFeatures())
    thresholds = [0.0, round(confidences[len(confidences) // 4], 4), round(confidences[len(confidences) // 2], 4),
                  0.99, 1.0]
    fresh = {t: cells(grid(tiny_model, threshold=t, CELL_SIZE=96, CELL_UNIT=1)) for t in thresholds}
    yield base, fresh
    if added is not None:
        registry.removeProvider(added)


def copy_of(layer: QgsVectorLayer) -> QgsVectorLayer:
    """A memory copy, so each test edits its own layer."""
    return layer.materialize(QgsFeatureRequest())


def test_relabel_equals_a_fresh_run_at_every_threshold(apollo_grid):
    base, fresh = apollo_grid
    layer = copy_of(base)
    assert len({v[0] for v in fresh[max(t for t in fresh if t < 0.9)].values()}) > 1
    for t, want in fresh.items():
        counts = relabel.relabel_layer(layer, CONTRACT, t)
        got = cells(layer)
        assert got == want, t
        assert counts == relabel.label_counts(layer) and sum(counts.values()) == layer.featureCount()
        assert not layer.isEditable()
    assert set(cells(layer)[k][0] for k in cells(layer)) == {"unknown"}  # t = 1.0: everything abstains
    relabel.relabel_layer(layer, CONTRACT, 0.3)
    assert cells(layer) == cells(base)


def test_relabel_in_the_users_edit_session_is_one_undoable_step(apollo_grid):
    base, fresh = apollo_grid
    layer = copy_of(base)
    t = sorted(fresh)[2]
    layer.startEditing()
    relabel.relabel_layer(layer, CONTRACT, t)
    assert layer.isEditable() and cells(layer) == fresh[t]  # not committed: the user's session goes on
    layer.undoStack().undo()
    assert cells(layer) == cells(base)
    layer.rollBack()


def test_relabel_persists_in_file_layers_with_bool_or_integer_flags(apollo_grid, tmp_path):
    base, fresh = apollo_grid
    t = sorted(fresh)[2]
    for name in ("cells.gpkg", "cells.shp"):
        result = export.export_layer(base, str(tmp_path / name))
        layer = export.load_export(result.path)
        if name.endswith(".shp"):  # DBF: abstained is an integer and probability names are shortened
            assert layer.fields().field("abstained").type() != QVariant.Bool
            with pytest.raises(relabel.RelabelError, match="not a Planet Terrain result layer"):
                relabel.relabel_layer(layer, CONTRACT, t)
            continue
        relabel.relabel_layer(layer, CONTRACT, t)
        del layer
        assert cells(export.load_export(result.path)) == fresh[t]


def test_features_without_probabilities_are_left_alone(apollo_grid):
    base, fresh = apollo_grid
    layer = copy_of(base)
    victim = next(layer.getFeatures())
    before = (victim["label"], victim["abstained"])
    layer.dataProvider().changeAttributeValues({victim.id(): {layer.fields().indexOf("p_crater"): None}})
    counts = relabel.relabel_layer(layer, CONTRACT, 1.0)
    after = layer.getFeature(victim.id())
    assert (after["label"], after["abstained"]) == before
    assert counts.get(before[0], 0) >= 1 and sum(counts.values()) == layer.featureCount()


def test_wrong_model_and_bad_threshold_are_refused(apollo_grid):
    base, _ = apollo_grid
    other = tiny_contract(classes=(TerrainClass(3, "Rille Floor", ("Moon",)),))
    with pytest.raises(relabel.RelabelError, match="Rille|not a Planet Terrain result layer"):
        relabel.relabel_layer(base, other, 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        relabel.relabel_layer(base, CONTRACT, 1.5)
    plain = QgsVectorLayer("Polygon?field=label:string", "plain", "memory")
    assert not relabel.is_result_layer(plain, CONTRACT) and relabel.is_result_layer(base, CONTRACT)


def test_gsd_flag_field_marks_cells_outside_the_models_range(apollo_grid, tiny_model):
    base, _ = apollo_grid
    assert all(f["gsd_warn"] is True and f["gsd_m"] > 100 for f in base.getFeatures())  # 177 m vs 0.25-6 m
    mars = grid(tiny_model, MARS_EQUI, CELL_SIZE=32, CELL_UNIT=1)  # HiRISE 25 cm: inside the range
    assert mars.featureCount() > 0 and all(f["gsd_warn"] is False for f in mars.getFeatures())
    assert gsd_factor(177.5, (0.25, 6.0)) == pytest.approx(177.5 / 6.0)
    assert gsd_factor(0.05, (0.25, 6.0)) == pytest.approx(0.2)
    assert gsd_factor(0.25 * (1 - 1e-9), (0.25, 6.0)) == 1.0  # float noise at the edge is inside
    assert gsd_warning(float("nan"), (0.25, 6.0)) is None
