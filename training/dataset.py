"""Reader for the HiRISE map-projected landmark sets (v3 and v1) and the cached 8-bit images.

The dataset root is a parameter, so the full 73,031-image Zenodo download works unchanged. Class ids are
mapped onto the contract's classes (:data:`HIRISE_LANDFORMS`) by *name*, after checking each set's class-map
CSV: a renamed or reordered class in a new dataset release must fail loudly, never train silently on the wrong
labels. Class 0 ("other") and v1's "edge" form the "other" pool, the terrain the model must abstain on.

Preprocessing is the plugin's own (:mod:`planet_terrain_plugin.core.preprocess`): each image is read with the
CLI's reader and passed through ``stretched_gray`` once; the evaluation path is exactly ``finish``.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planet_terrain_plugin.core.contract import HIRISE_LANDFORMS, HIRISE_OTHER, ModelContract
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.preprocess import finish, stretched_gray

#: ``<source image>-<landmark no.>[-<augmentation>].jpg``
NAME_RE = re.compile(r"^(?P<source>.+?)-(?P<landmark>\d+)(?:-(?P<aug>r90|r180|r270|fh|fv|brt))?\.jpg$")
#: v1 class-map names -> contract class names; v1's "edge" (half-black border crop) is not a landform.
V1_TO_CONTRACT = {"other": HIRISE_OTHER.name, "crater": "crater", "dark_dune": "dark dune",
                  "streak": "slope streak", "bright_dune": "bright dune", "impact": "impact ejecta",
                  "edge": HIRISE_OTHER.name}
#: Dataset layouts: (version, image folder, label file, class-map file).
LAYOUTS = {
    "v3": ("map-proj-v3", "labels-map-proj-v3.txt", "landmarks_map-proj-v3_classmap.csv"),
    "v1": ("map-proj", "labels-map-proj.txt", "landmarks_map-proj_classmap.csv"),
}


class DatasetError(ValueError):
    """The dataset on disk does not match what the contract and this reader expect."""


@dataclass(frozen=True)
class Record:
    """One image file with its contract label (0 = the "other" pool) and its grouping keys."""

    path: str
    version: str            # "v3" or "v1"
    label: int              # contract class id, 0 for "other"
    source_id: str          # HiRISE product id, shared between v1 and v3
    landmark_id: str        # "<version>/<source>-<no>": one landmark, all its augmented copies
    aug: str                # "" for the original, else r90 / r180 / r270 / fh / fv / brt
    raw_label: str          # the dataset's own class name (keeps v1 "edge" visible in reports)

    @property
    def known(self) -> bool:
        return self.label != HIRISE_OTHER.id


def parse_name(name: str) -> tuple[str, str, str]:
    """File name -> (source id, landmark number, augmentation or "")."""
    m = NAME_RE.match(name)
    if not m:
        raise DatasetError(f"file name '{name}' is not '<source>-<landmark no.>[-<aug>].jpg'")
    return m["source"], m["landmark"], m["aug"] or ""


def read_classmap(path: Path) -> dict[int, str]:
    """Class-map CSV -> {id: name}; tolerates a header row."""
    out: dict[int, str] = {}
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if len(row) < 2 or not row[0].strip().lstrip("-").isdigit():
                continue
            out[int(row[0])] = row[1].strip()
    if not out:
        raise DatasetError(f"class map '{path}' lists no classes")
    return out


def class_mapping(version: str, classmap: dict[int, str], source: Path) -> dict[int, tuple[int, str]]:
    """Dataset id -> (contract id, dataset name), checked against :data:`HIRISE_LANDFORMS`.

    v3 must list exactly "other" plus the contract's classes with the contract's ids; v1 must use only the
    names in :data:`V1_TO_CONTRACT`. Anything else raises :class:`DatasetError`.
    """
    by_name = {c.name: c.id for c in HIRISE_LANDFORMS}
    by_name[HIRISE_OTHER.name] = HIRISE_OTHER.id
    if version == "v3":
        expected = {c.id: c.name for c in (HIRISE_OTHER,) + HIRISE_LANDFORMS}
        if classmap != expected:
            raise DatasetError(f"class map '{source}' is {classmap}, but the model contract (core.contract."
                               f"HIRISE_LANDFORMS) expects {expected}; update the contract or the data, not both")
        return {i: (i, n) for i, n in classmap.items()}
    unknown = {i: n for i, n in classmap.items() if n not in V1_TO_CONTRACT}
    if unknown:
        raise DatasetError(f"class map '{source}' has classes {unknown} this reader cannot map to the contract")
    mapping = {i: (by_name[V1_TO_CONTRACT[n]], n) for i, n in classmap.items()}
    if any(c not in by_name.values() for c, _ in mapping.values()):
        raise DatasetError(f"class map '{source}' maps outside the contract's classes")
    return mapping


def read_records(root: str | Path, version: str, max_images: int = 0) -> list[Record]:
    """All labelled images of one dataset version under ``root``, sorted by file name."""
    root = Path(root)
    folder, labels_name, classmap_name = LAYOUTS[version]
    for need in (root / folder, root / labels_name, root / classmap_name):
        if not need.exists():
            raise DatasetError(f"{version} dataset at '{root}' lacks '{need.name}' (expected layout: "
                               f"{folder}/*.jpg, {labels_name}, {classmap_name})")
    mapping = class_mapping(version, read_classmap(root / classmap_name), root / classmap_name)
    records = []
    for line in (root / labels_name).read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"'{labels_name}': malformed line {line!r}")
        name, cid = parts[0], int(parts[1])
        if cid not in mapping:
            raise DatasetError(f"'{labels_name}': {name} has class {cid}, absent from the class map")
        path = root / folder / name
        if not path.is_file():
            raise DatasetError(f"'{labels_name}' lists {name}, which is not in {root / folder}")
        source, landmark, aug = parse_name(name)
        label, raw = mapping[cid]
        records.append(Record(str(path), version, label, source, f"{version}/{source}-{landmark}", aug, raw))
    records.sort(key=lambda r: Path(r.path).name)
    if max_images:
        records = _subsample(records, max_images)
    return records


def _subsample(records: list[Record], n: int) -> list[Record]:
    """A small deterministic subset that keeps every class present (for the smoke configuration)."""
    by_label: dict[int, list[Record]] = {}
    for r in records:
        by_label.setdefault(r.label, []).append(r)
    out: list[Record] = []
    i = 0
    while len(out) < min(n, len(records)):
        for label in sorted(by_label):
            if i < len(by_label[label]) and len(out) < n:
                out.append(by_label[label][i])
        i += 1
    return sorted(out, key=lambda r: Path(r.path).name)


def load_all(v3_root: str | Path, v1_root: str | Path | None, use_v1: bool, max_images: int = 0) -> list[Record]:
    """v3 plus (optionally) v1 records; v1 is switchable because it is cropped differently.

    ``v3_root`` may list several v3-layout roots separated by ``os.pathsep`` (``make train DATA_ROOT=a:b``): the
    shared data and a user's reviewed cells (the plugin's "Export reviewed features as training data")."""
    records = [r for root in str(v3_root).split(os.pathsep) if root for r in read_records(root, "v3", max_images)]
    if use_v1 and v1_root:
        records += read_records(v1_root, "v1", max_images)
    return records


class GrayCache:
    """``stretched_gray`` output (uint8) per image, computed once and kept in memory (and on disk if asked).

    The on-disk copy is keyed by the file list and the stretch percentiles, so a changed contract or dataset
    never reads stale pixels.
    """

    def __init__(self, records: list[Record], contract: ModelContract, cache_dir: str | Path | None = None):
        self.contract = contract
        self.index = {r.path: i for i, r in enumerate(records)}
        key = hashlib.sha1(("\n".join(r.path for r in records) + repr(contract.stretch_percentiles)).encode())
        file = Path(cache_dir) / f"gray-{key.hexdigest()[:16]}.npz" if cache_dir else None
        if file is not None and file.is_file():
            with np.load(file, allow_pickle=False) as z:
                self.images = list(np.split(z["pixels"], z["offsets"][1:-1]))
                self.shapes = z["shapes"]
            self.images = [im.reshape(s) for im, s in zip(self.images, self.shapes)]
        else:
            self.images = [self._load(r.path) for r in records]
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
                shapes = np.array([im.shape for im in self.images])
                sizes = np.array([im.size for im in self.images])
                np.savez(file, pixels=np.concatenate([im.ravel() for im in self.images]),
                         offsets=np.concatenate([[0], np.cumsum(sizes)]), shapes=shapes)

    def _load(self, path: str) -> np.ndarray:
        block, mask = read_image(path)
        gray8, _ = stretched_gray(block, self.contract, mask)
        return gray8

    def gray(self, record: Record) -> np.ndarray:
        return self.images[self.index[record.path]]

    def eval_tensor(self, record: Record) -> np.ndarray:
        """The deterministic (eval/val/test/calibration) input: exactly the plugin's ``finish``."""
        return finish(self.gray(record), self.contract)
