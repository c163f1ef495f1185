"""The training gallery: a few hundred training images, as thumbnails with their labels, source images and
embeddings, to show the nearest training examples of a cell ("why this label").

The file (``<model name>.gallery.npz`` beside the model, built by ``make gallery``: ``export/gallery.py``) is
plain arrays, read with ``allow_pickle=False`` (data, never code). Embeddings are stored reduced by PCA (fitted
on the gallery itself) and unit length, so similarity is a dot product; the query's embedding is projected the
same way. The data set's citation and licence travel inside the file and are shown with the examples.

The gallery belongs to a model name and version (every variant of one network shares its embedding space);
another model's gallery is refused with a message, and a missing gallery is not an error: the panel says how to
build one. No Qt, no torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zipfile import BadZipFile

import numpy as np

from .contract import ModelContract

GALLERY_FORMAT = "planet_terrain.gallery"
GALLERY_FORMAT_VERSION = 1
GALLERY_SUFFIX = ".gallery.npz"
#: The data set the gallery's images come from, cited wherever they are shown.
DATASET_CITATION = ("Wagstaff, K., Lu, S., Doran, G., Mandrake, L.: Mars orbital image (HiRISE) labeled data set, "
                    "version 3. NASA JPL; Zenodo, doi:10.5281/zenodo.2538136")
DATASET_LICENCE = "Creative Commons Attribution 4.0 International (CC BY 4.0)"
#: What the user reads when no gallery is installed for the model.
NO_GALLERY = "no training gallery installed: make gallery"
#: Array names of the file, and what they hold.
ARRAYS = {
    "thumbnails": "uint8 (N, T, T): the training images as the model read them (8-bit stretch), reduced",
    "labels": "str (N,): class name ('other' for the data set's class 0)",
    "sources": "str (N,): HiRISE source image id",
    "files": "str (N,): image file name in the data set",
    "vectors": "float16 (N, K): PCA-projected, unit-length embeddings",
    "pca_mean": "float32 (D,): embedding mean the projection subtracts",
    "pca_components": "float16 (K, D): the projection's axes",
}
TEXTS = ("format", "model_name", "model_version", "citation", "licence")


class GalleryError(ValueError):
    """A gallery file that cannot be used with this model; the message says what to do."""


@dataclass(frozen=True)
class Neighbour:
    """One of the nearest training examples of a query."""

    index: int
    label: str
    source: str
    file: str
    similarity: float  # cosine, -1..1
    thumbnail: np.ndarray  # uint8 (T, T)


@dataclass(frozen=True)
class Gallery:
    thumbnails: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    files: np.ndarray
    vectors: np.ndarray
    pca_mean: np.ndarray
    pca_components: np.ndarray
    model_name: str
    model_version: str
    citation: str
    licence: str

    def __len__(self) -> int:
        return len(self.labels)

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> (N, K) unit vectors in the gallery's PCA space."""
        z = (np.atleast_2d(np.asarray(embeddings, np.float32)) - self.pca_mean) @ \
            self.pca_components.astype(np.float32).T
        return unit_rows(z)

    def nearest(self, embedding: np.ndarray, k: int = 5) -> list[Neighbour]:
        """The ``k`` gallery images most similar (cosine) to one embedding, most similar first."""
        sims = self.vectors.astype(np.float32) @ self.project(embedding)[0]
        order = np.argsort(-sims, kind="stable")[:k]
        return [Neighbour(int(i), str(self.labels[i]), str(self.sources[i]), str(self.files[i]), float(sims[i]),
                          self.thumbnails[i]) for i in order]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def gallery_path(models_dir: Path, model_name: str) -> Path:
    return Path(models_dir) / f"{model_name}{GALLERY_SUFFIX}"


def read_gallery(path: str | Path) -> Gallery:
    """Read a gallery file; :class:`GalleryError` naming the file and what to do."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {name: z[name] for name in list(ARRAYS) + list(TEXTS)}
    except (OSError, ValueError, KeyError, EOFError, BadZipFile) as exc:
        raise GalleryError(f"the training gallery '{path}' cannot be read ({exc}); build it again with "
                           "`make gallery`") from None
    texts = {name: str(arrays.pop(name)) for name in TEXTS}
    version = texts.pop("format")
    if version != f"{GALLERY_FORMAT}/{GALLERY_FORMAT_VERSION}":
        raise GalleryError(f"'{path}' is not a gallery this plugin reads (format '{version}'); build it again "
                           "with `make gallery`")
    gallery = Gallery(**arrays, **texts)
    n, k = gallery.vectors.shape
    if not (len(gallery.thumbnails) == len(gallery.sources) == len(gallery.files) == n
            and gallery.pca_components.shape == (k, len(gallery.pca_mean))):
        raise GalleryError(f"the training gallery '{path}' is damaged (arrays of different lengths); build it "
                           "again with `make gallery`")
    return gallery


def gallery_for(contract: ModelContract, models_dir: Path) -> Gallery | None:
    """The gallery of ``contract``'s model in ``models_dir``; None when there is none (:data:`NO_GALLERY`),
    :class:`GalleryError` when it was made for another model."""
    path = gallery_path(models_dir, contract.model_name)
    if not path.is_file():
        return None
    gallery = read_gallery(path)
    if (gallery.model_name, gallery.model_version) != (contract.model_name, contract.model_version):
        raise GalleryError(f"the training gallery '{path.name}' was made with {gallery.model_name} "
                           f"{gallery.model_version}, not {contract.model_name} {contract.model_version}; "
                           "build it again with `make gallery`")
    return gallery


def write_gallery(path: str | Path, arrays: dict[str, np.ndarray], model_name: str, model_version: str) -> None:
    """Write a gallery file (``arrays``: every name of :data:`ARRAYS`), compressed, with the citation."""
    missing = sorted(set(ARRAYS) - set(arrays))
    if missing:
        raise ValueError(f"gallery arrays missing: {missing}")
    texts = dict(format=f"{GALLERY_FORMAT}/{GALLERY_FORMAT_VERSION}", model_name=model_name,
                 model_version=model_version, citation=DATASET_CITATION, licence=DATASET_LICENCE)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **{name: arrays[name] for name in ARRAYS}, **{k: np.array(v) for k, v in texts.items()})
