"""Build the training gallery shipped beside a model (``make gallery``): ``core/gallery.py`` reads it.

Which images: the model's *training* split (its ``<model>.split.json``, grouped by source image), HiRISE v3
layout under ``--data-root`` (the shared subset or the full Zenodo download), one copy per landmark (the
original when present, else its first augmented copy in :data:`AUG_PREFERENCE` order: never two rotations of
one landmark), a balanced sample of up to ``--per-class`` landmarks per class including class 0 ("other"),
taken round-robin over the class's source images so one image does not fill a class.

Each image is read and preprocessed exactly as training evaluated it (``training.dataset.GrayCache``: the
plugin's own reader and 8-bit stretch); the thumbnail is that 8-bit image reduced to ``--thumb`` px, and the
embedding is the model's. Embeddings are reduced by PCA to ``--dims`` (fitted on the gallery) and stored as
unit-length float16, with the projection. The output is deterministic for the same data, split and model.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from planet_terrain_plugin.core.contract import HIRISE_LANDFORMS, HIRISE_OTHER, read_contract
from planet_terrain_plugin.core.gallery import gallery_path, unit_rows, write_gallery
from planet_terrain_plugin.core.models import MODELS_DIR, variant_path
from planet_terrain_plugin.core.preprocess import resize
from planet_terrain_plugin.core.session import load_model
from training.dataset import GrayCache, Record, read_records
from training.splits import read_split

#: Which copy of a landmark stands for it: the original first, brightness-changed last.
AUG_PREFERENCE = ("", "fh", "fv", "r90", "r180", "r270", "brt")
PER_CLASS = 40
THUMB_PX = 64
DIMS = 128
BATCH = 32
CLASS_NAMES = {c.id: c.name for c in (HIRISE_OTHER,) + HIRISE_LANDFORMS}


def one_per_landmark(records: list[Record]) -> list[Record]:
    """The preferred copy of each landmark (:data:`AUG_PREFERENCE`), in file-name order."""
    best: dict[str, Record] = {}
    for r in records:
        held = best.get(r.landmark_id)
        if held is None or AUG_PREFERENCE.index(r.aug) < AUG_PREFERENCE.index(held.aug):
            best[r.landmark_id] = r
    return sorted(best.values(), key=lambda r: Path(r.path).name)


def balanced_sample(records: list[Record], per_class: int) -> list[Record]:
    """Up to ``per_class`` records per label, round-robin over each label's source images (sorted)."""
    out = []
    for label in sorted({r.label for r in records}):
        by_source: dict[str, list[Record]] = defaultdict(list)
        for r in records:
            if r.label == label:
                by_source[r.source_id].append(r)
        queues = [by_source[s] for s in sorted(by_source)]
        taken, depth = [], 0
        while len(taken) < per_class and any(depth < len(q) for q in queues):
            taken += [q[depth] for q in queues if depth < len(q)][:per_class - len(taken)]
            depth += 1
        out += taken
    return out


def training_records(data_root: str, split_file: Path, per_class: int) -> list[Record]:
    """The gallery's records: training split, one copy per landmark, balanced per class."""
    split = read_split(split_file)
    train = [r for r in read_records(data_root, "v3") if split.get(r.source_id) == "train"]
    if not train:
        raise SystemExit(f"no image under '{data_root}' belongs to the training split of {split_file}; give the "
                         "HiRISE v3 data the model was trained on (DATA_ROOT=...)")
    return balanced_sample(one_per_landmark(train), per_class)


def pca(x: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components (K, D)) of ``x``'s top ``dims`` principal axes, signs fixed (deterministic)."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:min(dims, len(vt))]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return mean, comps * signs[:, None]


def build(model_path: Path, data_root: str, out: Path, per_class: int = PER_CLASS, thumb: int = THUMB_PX,
          dims: int = DIMS) -> dict:
    """Write the gallery of ``model_path`` to ``out``; returns a summary (counts per class, bytes)."""
    contract = read_contract(str(model_path))
    model = load_model(str(model_path))
    split_file = model_path.parent / f"{contract.model_name}.split.json"
    records = training_records(data_root, split_file, per_class)
    cache = GrayCache(records, contract)
    tensors = np.stack([cache.eval_tensor(r) for r in records])
    embeddings = np.concatenate([model.run(tensors[i:i + BATCH]).embedding for i in range(0, len(tensors), BATCH)])
    mean, comps = pca(embeddings.astype(np.float64), dims)
    vectors = unit_rows((embeddings - mean) @ comps.T)
    thumbs = np.stack([np.clip(np.rint(resize(cache.gray(r) / 255.0, thumb) * 255), 0, 255).astype(np.uint8)
                       for r in records])
    arrays = dict(thumbnails=thumbs, labels=np.array([CLASS_NAMES[r.label] for r in records]),
                  sources=np.array([r.source_id for r in records]),
                  files=np.array([Path(r.path).name for r in records]), vectors=vectors.astype(np.float16),
                  pca_mean=mean.astype(np.float32), pca_components=comps.astype(np.float16))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    write_gallery(partial, arrays, contract.model_name, contract.model_version)
    partial.replace(out)  # a build artefact of ours, never a user's file
    counts = {n: int((arrays["labels"] == n).sum()) for n in CLASS_NAMES.values()}
    return {"path": str(out), "images": len(records), "per_class": counts, "bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=variant_path("fp16"),
                        help="the model whose embeddings the gallery holds (default: the shipped fp16 file)")
    parser.add_argument("--data-root", default="../shared/data/hirise-map-proj-v3")
    parser.add_argument("--out", type=Path, default=None, help=f"default: {MODELS_DIR}/<model name>.gallery.npz")
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--thumb", type=int, default=THUMB_PX)
    parser.add_argument("--dims", type=int, default=DIMS)
    args = parser.parse_args(argv)
    out = args.out or gallery_path(args.model.parent, read_contract(str(args.model)).model_name)
    summary = build(args.model, args.data_root, out, args.per_class, args.thumb, args.dims)
    print(f"{summary['path']}: {summary['images']} images, {summary['bytes'] / 1e6:.2f} MB; per class "
          + ", ".join(f"{n} {c}" for n, c in summary["per_class"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
