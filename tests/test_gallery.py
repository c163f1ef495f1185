"""The training gallery (export/gallery.py builds it, core/gallery.py reads it): built from the shared HiRISE data
into a temporary folder, never into the repository (issue 16 item 5)."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from export import gallery as builder
from paths import HIRISE_V3
from planet_terrain_plugin.core import gallery
from planet_terrain_plugin.core.contract import read_contract
from planet_terrain_plugin.core.models import variant_path
from planet_terrain_plugin.core.session import load_model
from scripts.package import build_zip
from training.dataset import GrayCache, parse_name, read_records
from training.splits import read_split

FP16, INT8 = variant_path("fp16"), variant_path("int8")
SPLIT = FP16.parent / "planet_terrain_resnet50.split.json"
MAX_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """The default gallery of the shipped fp16 model, built from the shared data (a few hundred images)."""
    out = tmp_path_factory.mktemp("gallery") / gallery.gallery_path(Path("."), "planet_terrain_resnet50").name
    builder.build(FP16, str(HIRISE_V3), out)
    return out


def test_the_gallery_is_small_balanced_training_images_one_per_landmark(built):
    assert built.stat().st_size <= MAX_BYTES
    g = gallery.read_gallery(built)
    assert g.citation == gallery.DATASET_CITATION and "10.5281/zenodo.2538136" in g.citation
    assert g.licence == gallery.DATASET_LICENCE
    assert (g.model_name, g.model_version) == (read_contract(str(FP16)).model_name,
                                                read_contract(str(FP16)).model_version)
    assert g.thumbnails.shape[1:] == (builder.THUMB_PX, builder.THUMB_PX) and g.thumbnails.dtype == np.uint8
    split = read_split(SPLIT)
    assert {split[s] for s in g.sources} == {"train"}
    landmarks = [parse_name(f)[:2] for f in g.files]
    assert len(set(landmarks)) == len(landmarks)  # never two copies (rotations) of one landmark
    counts = {label: int((g.labels == label).sum()) for label in set(g.labels)}
    assert counts["other"] == builder.PER_CLASS and counts["crater"] == builder.PER_CLASS
    assert set(counts) == set(builder.CLASS_NAMES.values())
    assert max(counts.values()) <= builder.PER_CLASS


def test_the_build_is_deterministic(built, tmp_path):
    again = tmp_path / "again.npz"
    builder.build(FP16, str(HIRISE_V3), again)
    first, second = gallery.read_gallery(built), gallery.read_gallery(again)
    for name in gallery.ARRAYS:
        assert np.array_equal(getattr(first, name), getattr(second, name)), name


def test_int8_queries_find_the_fp16_gallerys_neighbours(built):
    """Cells are embedded by whichever variant runs (int8 on CPU); the gallery by fp16. On unseen test-split
    images the int8 query's top 5 overlaps the fp16 query's by >= 85 % (measured: 93 %)."""
    g = gallery.read_gallery(built)
    contract = read_contract(str(FP16))
    split = read_split(SPLIT)
    test = builder.balanced_sample(builder.one_per_landmark(
        [r for r in read_records(HIRISE_V3, "v3") if split.get(r.source_id) == "test"]), 10)
    cache = GrayCache(test, contract)
    x = np.stack([cache.eval_tensor(r) for r in test])
    q16, q8 = load_model(str(FP16)).run(x).embedding, load_model(str(INT8)).run(x).embedding
    overlap = np.mean([len({n.index for n in g.nearest(a)} & {n.index for n in g.nearest(b)}) / 5
                       for a, b in zip(q16, q8)])
    print(f"\ntop-5 overlap, int8 vs fp16 query on {len(test)} test images: {overlap:.3f}")
    assert overlap >= 0.85


def test_a_training_image_finds_itself_first(built):
    g = gallery.read_gallery(built)
    records = builder.training_records(str(HIRISE_V3), SPLIT, builder.PER_CLASS)
    assert [Path(r.path).name for r in records] == list(g.files)
    contract = read_contract(str(INT8))
    cache = GrayCache(records[::20], contract)
    x = np.stack([cache.eval_tensor(r) for r in records[::20]])
    for record, emb in zip(records[::20], load_model(str(INT8)).run(x).embedding):
        first = g.nearest(emb, 5)[0]
        assert first.file == Path(record.path).name and first.similarity > 0.9
        assert first.thumbnail.shape == (builder.THUMB_PX, builder.THUMB_PX)


def test_another_models_gallery_is_refused_and_none_is_no_error(built, tmp_path):
    contract = read_contract(str(INT8))
    assert gallery.gallery_for(contract, tmp_path) is None
    shutil.copy(built, gallery.gallery_path(tmp_path, contract.model_name))
    assert len(gallery.gallery_for(contract, tmp_path)) > 0
    with pytest.raises(gallery.GalleryError, match="build it again with `make gallery`"):
        gallery.gallery_for(contract.replace(model_version="9.9.9"), tmp_path)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(built.read_bytes()[:5000])
    with pytest.raises(gallery.GalleryError, match="cannot be read"):
        gallery.read_gallery(damaged)


def test_the_gallery_is_read_without_pickle(built, tmp_path):
    evil = tmp_path / "evil.npz"
    arrays = dict(np.load(built, allow_pickle=False))
    arrays["labels"] = np.array([object()] * len(arrays["labels"]), dtype=object)
    np.savez(evil, **arrays)
    with pytest.raises(gallery.GalleryError, match="cannot be read"):
        gallery.read_gallery(evil)


def test_the_package_zip_carries_the_gallery(built, tmp_path):
    plugin = tmp_path / "planet_terrain_plugin"
    (plugin / "models").mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    (plugin / "metadata.txt").write_text("[general]\nversion=9.9\n")
    shutil.copy(built, plugin / "models" / built.name)
    target, left_out = build_zip(tmp_path / "dist", plugin)
    with zipfile.ZipFile(target) as zf:
        assert f"planet_terrain_plugin/models/{built.name}" in zf.namelist()
    assert left_out == []


def test_the_explain_command_prints_the_panels_answer_as_json(built, tmp_path, capsys):
    from planet_terrain_plugin.core.__main__ import main

    image = HIRISE_V3 / "map-proj-v3" / "ESP_020606_1445_RED-0315.jpg"
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"nope")
    status = main(["explain", str(image), str(bad), "--model", str(INT8), "--gallery", str(built)])
    good, broken = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1 and "error" in broken and "occlusion" not in broken
    assert good["label"] == "crater" and good["occlusion"]["class"] == "crater"
    assert np.array(good["occlusion"]["drop"]).shape == (24, 24)
    assert good["occlusion"]["base_probability"] == pytest.approx(good["probs"]["crater"], abs=1e-4)
    assert len(good["nearest"]) == 5 and good["training_data"]["citation"] == gallery.DATASET_CITATION
    assert main(["explain", str(image), "--model", str(INT8), "--gallery", str(bad)]) == 2
