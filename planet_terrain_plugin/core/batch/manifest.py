"""The run's manifest: what was asked (first line) and each finished partition (one line each, JSON lines).

Appending one line per partition keeps the cost per partition constant (a run may have 10^5 of them); a line
torn by a killed run is ignored. A rerun with the same request resumes: a partition whose file is there with
the recorded checksum is skipped, every other one is (re)computed. A request that differs from the recorded
one is refused rather than mixed into the same folder; nothing in the folder is ever removed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..checksum import file_sha256

MANIFEST = "manifest.jsonl"
FORMAT = 1


class ManifestError(ValueError):
    """The output folder cannot take this run; the message says why and what to do."""


@dataclass
class Manifest:
    """The request of a run and its finished partitions (by partition key)."""

    folder: str
    request: dict
    done: dict[str, dict] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return os.path.join(self.folder, MANIFEST)

    def record(self, entry: dict) -> None:
        """Append a finished partition (flushed and synced: it survives a killed run)."""
        self.done[entry["partition"]] = entry
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"done": entry}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def verified(self) -> dict[str, dict]:
        """Finished partitions whose file is present and unchanged (checksum)."""
        good = {}
        for key, entry in self.done.items():
            path = os.path.join(self.folder, entry["file"])
            if os.path.isfile(path) and file_sha256(path) == entry["sha256"]:
                good[key] = entry
        return good


def read_manifest(folder: str) -> Manifest | None:
    """The manifest in ``folder``, or None when there is none."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return None
    request, done = None, {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                item = json.loads(line)
            except json.JSONDecodeError:  # the last line of a killed run
                continue
            if "request" in item and request is None:
                request = item["request"]
            elif "done" in item:
                done[item["done"]["partition"]] = item["done"]
    if request is None:
        raise ManifestError(f"'{path}' has no request line: it is not a Planet Terrain manifest, or it was cut "
                            "short. Choose another --out folder.")
    return Manifest(folder, request, done)


def open_manifest(folder: str, request: dict) -> Manifest:
    """The manifest for ``request`` in ``folder``: resumed when it matches, new when the folder is new or empty."""
    os.makedirs(folder, exist_ok=True)
    existing = read_manifest(folder)
    if existing is not None:
        if existing.request != request:
            changed = sorted(k for k in set(request) | set(existing.request)
                             if request.get(k) != existing.request.get(k))
            raise ManifestError(f"'{folder}' holds a run with other settings ({', '.join(changed)} differ); "
                                "resume it with the same settings, or choose another --out folder.")
        return existing
    if os.listdir(folder):
        raise ManifestError(f"'{folder}' is not empty and holds no manifest; choose a new or empty --out folder "
                            "(nothing in it is replaced).")
    manifest = Manifest(folder, request)
    with open(manifest.path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"request": request, "format": FORMAT}) + "\n")
    return manifest
