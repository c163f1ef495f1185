"""qgis_io.export: every format, in every real raster's CRS, reloaded in QGIS and compared field by field.

The layers are real "Terrain classes" layers (``result_layer.create_result_layer`` with ``fields``' schema
and real decisions) whose polygons are grid cells over the real rasters' extents, plus the row/col fields of
grid runs. Nothing is mocked: files are written to real folders and reopened through QGIS's OGR provider.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import stat

import numpy as np
import pytest
from hypothesis import given, strategies as st
from qgis.core import (NULL, QgsCoordinateReferenceSystem, QgsFeature, QgsFeedback, QgsField, QgsRasterLayer,
                       QgsVectorLayer)
from qgis.PyQt.QtCore import QVariant

from conftest import APOLLO, LOLA, MARS_EQUI, MARS_POLAR, VESTA_DAWN, as_unprivileged_user, raster_path
from crs_equivalence import equivalent_crs
from model_factory import tiny_contract
from planet_terrain_plugin.core.bodies import detect_body
from planet_terrain_plugin.core.calibrate import decide_from_probs
from planet_terrain_plugin.core.grid import CellSize, Extent, Grid
from planet_terrain_plugin.qgis_io import export
from planet_terrain_plugin.qgis_io.export import (ExportCancelled, ExportError, export_layer, load_export,
                                                  shapefile_field_names)
from planet_terrain_plugin.qgis_io.fields import GRID_FIELDS, Provenance, decision_values
from planet_terrain_plugin.qgis_io.result_layer import create_result_layer

RASTER_NAMES = {
    "moon-geographic": APOLLO,
    "moon-lambert": LOLA,
    "vesta-equirectangular": VESTA_DAWN,
    "mars-equirectangular": MARS_EQUI,
    "mars-polar-stereographic": MARS_POLAR,
}
#: CRSs from QGIS's IAU_2015 database (what a user picks in the CRS dialog), with an extent on each body.
IAU_CRSS = {
    "iau-moon-geographic": ("IAU_2015:30100", (10.0, 10.0, 11.0, 11.0)),
    "iau-mars-north-polar": ("IAU_2015:49930", (-5000.0, -5000.0, 5000.0, 5000.0)),
    "iau-vesta-equirectangular": ("IAU_2015:200000410", (0.0, 0.0, 30000.0, 30000.0)),
}
FORMATS = list(export.FORMATS)
#: Formats whose reloaded CRS is *equal* (QgsCoordinateReferenceSystem ==) to the original, for every CRS.
EXACT_CRS = {"gpkg", "fgb", "csv"}
CONTRACT = tiny_contract()


def _raster(key: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(raster_path(RASTER_NAMES[key])), key)
    assert layer.isValid()
    return layer


def _probabilities(n: int) -> np.ndarray:
    """Deterministic probability rows: confident craters, confident slope streaks, and unsure ones."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n):
        p = rng.dirichlet(np.ones(CONTRACT.num_classes) * 0.5)
        if i % 3 == 0:
            p = 0.1 * p
            p[0] += 0.9  # crater
        elif i % 3 == 1:
            p = 0.1 * p
            p[2] += 0.9  # slope streak
        else:
            p = np.full(CONTRACT.num_classes, 1.0 / CONTRACT.num_classes)  # abstains
        rows.append(p)
    return np.array(rows)


def make_result_layer(key: str, cells_per_side: int = 3, grid_fields: bool = True) -> QgsVectorLayer:
    """A styled Terrain classes layer in the raster's (or IAU) CRS, one feature per grid cell over its extent."""
    if key in IAU_CRSS:
        code, box = IAU_CRSS[key]
        crs, extent, name, source_id = QgsCoordinateReferenceSystem(code), Extent(*box), code, code
        assert crs.isValid(), code
    else:
        raster = _raster(key)
        crs, e, name, source_id = raster.crs(), raster.extent(), raster.name(), raster.id()
        extent = Extent(e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum())
    layer = create_result_layer(crs, CONTRACT, name, source_id)
    if grid_fields:
        layer.dataProvider().addAttributes([QgsField(name, kind) for name, kind in GRID_FIELDS])
        layer.updateFields()
    grid = Grid(extent, CellSize(extent.width / cells_per_side, extent.height / cells_per_side))
    cells = list(grid)
    assert len(cells) == cells_per_side ** 2
    decisions = [dataclasses.replace(d, ood_score=5.0 + 0.25 * i)  # the shipped model's files carry a score
                 for i, d in enumerate(decide_from_probs(_probabilities(len(cells)), CONTRACT, CONTRACT.threshold))]
    body = detect_body(crs.toWkt(), crs.authid()).name
    provenance = Provenance(body, 1.5, name, CONTRACT.model_name, CONTRACT.model_version,
                            "CPUExecutionProvider", "2026-11-23T17:00:00Z")
    features = []
    from qgis.core import QgsGeometry, QgsRectangle

    for cell, decision in zip(cells, decisions):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromRect(QgsRectangle(cell.xmin, cell.ymin, cell.xmax, cell.ymax)))
        values = decision_values(decision, CONTRACT, provenance)
        if grid_fields:
            values.update(row=cell.row, col=cell.col)
        for name, value in values.items():
            f.setAttribute(layer.fields().indexOf(name), value)
        features.append(f)
    assert layer.dataProvider().addFeatures(features)[0]
    layer.updateExtents()
    return layer


def _files(folder) -> set[str]:
    return set(os.listdir(folder))


def _type_family(field) -> str:
    kind = field.type()
    if kind in (QVariant.Int, QVariant.LongLong, QVariant.UInt, QVariant.ULongLong):
        return "int"
    if kind == QVariant.Double:
        return "double"
    if kind == QVariant.Bool:
        return "bool"
    if kind == QVariant.String:
        return "string"
    return f"other:{field.typeName()}"


#: What each source type reads back as, per format (where a format has no such type).
_EXPECTED_FAMILY = {
    ("bool", "shp"): {"int"}, ("bool", "csv"): {"int", "bool"},
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("key", list(RASTER_NAMES) + list(IAU_CRSS))
def test_round_trip_keeps_features_fields_values_and_crs(tmp_path, key, fmt):
    layer = make_result_layer(key)
    path = str(tmp_path / f"classes{export.FORMATS[fmt].extension}")
    result = export_layer(layer, path)
    assert result.feature_count == layer.featureCount() == 9
    assert not [f for f in _files(tmp_path) if f.startswith(".")], "temporary files left behind"

    back = load_export(path)
    assert back.featureCount() == 9
    names = result.field_names
    expected_names = [names[n] for n in layer.fields().names()]
    if fmt == "csv":
        expected_names = [export.CSV_X_FIELD, export.CSV_Y_FIELD] + expected_names
    got_names = [n for n in back.fields().names() if n not in ("fid", "ogc_fid")]
    assert got_names == expected_names
    if fmt == "shp":
        assert all(len(n) <= 10 for n in got_names)
        assert names["p_slope_streak"] == "p_slope_st" and names["model_version"] == "model_vers"
    else:
        assert all(k == v for k, v in names.items())
    for src_field in layer.fields():
        out_field = back.fields().field(names[src_field.name()])
        family = _type_family(src_field)
        assert _type_family(out_field) in _EXPECTED_FAMILY.get((family, fmt), {family}), (
            src_field.name(), out_field.typeName())

    # values, feature by feature (matched on row/col), and geometry
    originals = {(f["row"], f["col"]): f for f in layer.getFeatures()}
    for got in back.getFeatures():
        want = originals[(got[names["row"]], got[names["col"]])]
        for src_field in layer.fields():
            a, b = want[src_field.name()], got[names[src_field.name()]]
            if src_field.type() == QVariant.Double:
                assert math.isclose(float(b), float(a), rel_tol=1e-9, abs_tol=1e-12), src_field.name()
            elif src_field.type() == QVariant.Bool:
                assert bool(int(b)) == bool(a), src_field.name()
            elif a == "" and fmt in ("shp", "csv"):  # DBF and CSV cannot tell an empty text from a missing one
                assert b in ("", None, NULL), src_field.name()
            else:
                assert b == a, src_field.name()
        if fmt == "csv":
            centre = want.geometry().centroid().asPoint()
            tol = 1e-12 * max(abs(v) for v in (layer.extent().xMinimum(), layer.extent().xMaximum(),
                                               layer.extent().yMinimum(), layer.extent().yMaximum()))
            assert math.isclose(got[export.CSV_X_FIELD], centre.x(), rel_tol=1e-12, abs_tol=tol)
            assert math.isclose(got[export.CSV_Y_FIELD], centre.y(), rel_tol=1e-12, abs_tol=tol)
            assert math.isclose(got.geometry().asPoint().x(), centre.x(), rel_tol=1e-12, abs_tol=tol)
        else:
            box_a, box_b = want.geometry().boundingBox(), got.geometry().boundingBox()
            for va, vb in zip((box_a.xMinimum(), box_a.yMinimum(), box_a.xMaximum(), box_a.yMaximum()),
                              (box_b.xMinimum(), box_b.yMinimum(), box_b.xMaximum(), box_b.yMaximum())):
                assert math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-9)

    # the CRS survived: equal where the format can hold it exactly, geodetically identical everywhere
    original, reloaded = layer.crs(), back.crs()
    assert reloaded.isValid()
    if fmt in EXACT_CRS or (fmt == "geojson" and "geographic" not in key):
        assert reloaded == original, (original.toWkt(), reloaded.toWkt())
    assert equivalent_crs(original, reloaded, layer.extent())
    assert detect_body(reloaded.toWkt(), reloaded.authid()) == detect_body(original.toWkt(), original.authid())


@pytest.mark.parametrize("key", ["mars-polar-stereographic", "iau-moon-geographic"])
def test_plain_qgis_loses_the_geopackage_crs_and_ours_keeps_it(tmp_path, key):
    """The known QGIS 3.22 loss: a plain GeoPackage export reloads an unequal (WKT1-only: polar stereographic
    variant A -> B) or invalid (IAU_2015:30100) CRS; ours reloads the very same CRS."""
    from qgis.core import QgsCoordinateTransformContext, QgsVectorFileWriter

    layer = make_result_layer(key, grid_fields=False)
    plain = str(tmp_path / "plain.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    QgsVectorFileWriter.writeAsVectorFormatV3(layer, plain, QgsCoordinateTransformContext(), options)
    assert QgsVectorLayer(plain, "plain", "ogr").crs() != layer.crs()  # the problem export.py solves
    ours = export_layer(layer, str(tmp_path / "ours.gpkg")).path
    assert QgsVectorLayer(ours, "ours", "ogr").crs() == layer.crs()


def test_geopackage_embeds_its_style_as_default(tmp_path):
    layer = make_result_layer("vesta-equirectangular")
    path = export_layer(layer, str(tmp_path / "styled.gpkg")).path
    assert not [f for f in _files(tmp_path) if f.endswith(("-wal", "-shm", "-journal"))]
    back = QgsVectorLayer(path, "styled", "ogr")  # loads the database's default style
    renderer = back.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "label"
    assert sorted(c.value() for c in renderer.categories()) == sorted(list(CONTRACT.class_names) + ["unknown"])
    styles = back.listStylesInDatabase()
    assert export.STYLE_NAME in styles[2]


def test_geojson_carries_a_named_wkt_crs(tmp_path):
    import json

    layer = make_result_layer("mars-equirectangular")
    path = export_layer(layer, str(tmp_path / "c.geojson")).path
    with open(path, encoding="utf-8") as handle:
        doc = json.load(handle)
    assert doc["crs"]["type"] == "name" and "Mars" in doc["crs"]["properties"]["name"]
    assert len(doc["features"]) == 9


@pytest.mark.parametrize("fmt", ["gpkg", "shp", "csv"])
def test_filters_keep_only_confident_and_chosen_labels(tmp_path, fmt):
    layer = make_result_layer("moon-geographic")
    labels = [f["label"] for f in layer.getFeatures()]
    confident = [lab for lab, f in zip(labels, layer.getFeatures()) if not f["abstained"]]
    assert 0 < len(confident) < len(labels)
    ext = export.FORMATS[fmt].extension
    r1 = export_layer(layer, str(tmp_path / f"confident{ext}"), confident_only=True)
    assert r1.feature_count == len(confident) == load_export(r1.path).featureCount()
    assert all(not bool(int(f[r1.field_names["abstained"]])) for f in load_export(r1.path).getFeatures())
    r2 = export_layer(layer, str(tmp_path / f"craters{ext}"), labels=["crater"])
    assert r2.feature_count == labels.count("crater") > 0
    assert {f["label"] for f in load_export(r2.path).getFeatures()} == {"crater"}
    r3 = export_layer(layer, str(tmp_path / f"both{ext}"), confident_only=True, labels=["unknown", "crater"])
    assert r3.feature_count == labels.count("crater")  # "unknown" features are the abstained ones
    with pytest.raises(ExportError, match="no labels"):
        export_layer(layer, str(tmp_path / f"none{ext}"), labels=[])


def test_filters_need_the_terrain_fields(tmp_path):
    plain = QgsVectorLayer("Polygon", "plain", "memory")
    plain.setCrs(_raster("vesta-equirectangular").crs())
    with pytest.raises(ExportError, match="'abstained' field"):
        export_layer(plain, str(tmp_path / "p.gpkg"), confident_only=True)
    assert _files(tmp_path) == set()


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_output_is_refused_unless_overwrite(tmp_path, fmt):
    layer = make_result_layer("vesta-equirectangular")
    path = str(tmp_path / f"out{export.FORMATS[fmt].extension}")
    export_layer(layer, path)
    before = {f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in _files(tmp_path)}
    with pytest.raises(ExportError, match="already exists"):
        export_layer(layer, path)
    after = {f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in _files(tmp_path)}
    assert after == before
    result = export_layer(layer, path, overwrite=True, labels=["crater"])
    assert load_export(result.path).featureCount() == result.feature_count == 3
    assert not [f for f in _files(tmp_path) if f.startswith(".")]


def test_a_lone_stale_sidecar_also_counts_as_existing(tmp_path):
    (tmp_path / "out.prj").write_text("stale")
    with pytest.raises(ExportError, match="out.prj' already exists"):
        export_layer(make_result_layer("moon-lambert"), str(tmp_path / "out.shp"))


def test_read_only_folder_gives_a_clear_message():
    import shutil
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="planet-terrain-ro-", dir="/tmp"))  # /tmp: reachable by any user
    os.chmod(base, 0o755)
    folder = base / "locked"
    folder.mkdir()
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    layer = make_result_layer("moon-geographic")
    try:
        with as_unprivileged_user(), pytest.raises(ExportError) as info:
            export_layer(layer, str(folder / "classes.gpkg"))
    finally:
        os.chmod(folder, stat.S_IRWXU)
    try:
        assert f"cannot write to the folder '{folder}'" in str(info.value)
        assert _files(folder) == set()
    finally:
        shutil.rmtree(base)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export_layer(make_result_layer("moon-lambert"), str(tmp_path / "nope" / "c.gpkg"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_cancel_mid_write_leaves_nothing(tmp_path, fmt):
    layer = make_result_layer("mars-polar-stereographic", cells_per_side=25)  # 625 features
    feedback = QgsFeedback()
    feedback.progressChanged.connect(lambda _p: feedback.cancel())  # the user presses Cancel mid-way
    with pytest.raises(ExportCancelled):
        export_layer(layer, str(tmp_path / f"big{export.FORMATS[fmt].extension}"), feedback=feedback)
    assert _files(tmp_path) == set()


def test_failure_at_the_final_rename_leaves_no_temporaries(tmp_path):
    (tmp_path / "taken.gpkg").mkdir()  # a folder where the file should go: the final rename must fail
    with pytest.raises(ExportError):
        export_layer(make_result_layer("vesta-equirectangular"), str(tmp_path / "taken.gpkg"), overwrite=True)
    assert _files(tmp_path) == {"taken.gpkg"} and os.listdir(tmp_path / "taken.gpkg") == []


def test_unknown_extension_lists_the_formats(tmp_path):
    with pytest.raises(ExportError, match=r"\.gpkg, \.geojson, \.fgb, \.shp, \.csv"):
        export_layer(make_result_layer("moon-lambert"), str(tmp_path / "c.kml"))


def test_equivalent_crs_rejects_other_bodies_and_radii():
    moon = _raster("moon-geographic").crs()
    mars = _raster("mars-equirectangular").crs()
    extent = _raster("moon-geographic").extent()
    assert equivalent_crs(moon, moon, extent)
    assert not equivalent_crs(moon, QgsCoordinateReferenceSystem("EPSG:4326"), extent)
    assert not equivalent_crs(moon, mars, extent)
    bigger = QgsCoordinateReferenceSystem.fromWkt(moon.toWkt().replace("1737400", "1738100"))
    assert bigger.isValid() and not equivalent_crs(moon, bigger, extent)


# -- the Shapefile name mapping ------------------------------------------------------------------------------
def test_shapefile_names_for_the_terrain_schema():
    layer = make_result_layer("moon-lambert")
    mapping = shapefile_field_names(layer.fields().names())
    assert mapping["p_slope_streak"] == "p_slope_st"
    assert mapping["p_impact_ejecta"] == "p_impact_e"
    assert mapping["p_swiss_cheese"] == "p_swiss_ch"
    assert mapping["body_renorm"] == "body_renor"
    assert mapping["confidence"] == "confidence" and mapping["p_crater"] == "p_crater"
    assert len({v.lower() for v in mapping.values()}) == len(mapping)


def test_shapefile_name_collisions_get_numbered_suffixes():
    names = ["p_crater_rim_a", "p_crater_rim_b", "p_crater_r", "p_crater_rim_c"]
    assert shapefile_field_names(names) == {
        "p_crater_r": "p_crater_r", "p_crater_rim_a": "p_crater_1", "p_crater_rim_b": "p_crater_2",
        "p_crater_rim_c": "p_crater_3"}


@given(st.lists(st.text(alphabet="abcdefghij_", min_size=1, max_size=16), min_size=1, max_size=30,
                unique_by=str.lower))
def test_shapefile_mapping_is_short_unique_and_stable(names):
    mapping = shapefile_field_names(names)
    assert list(mapping) == names
    assert all(len(v) <= 10 for v in mapping.values())
    assert len({v.lower() for v in mapping.values()}) == len(names)
    assert all(mapping[n] == n for n in names if len(n) <= 10)
    assert shapefile_field_names(names) == mapping
