"""Score a shipped model the way a user meets it: through the plugin's image entry point, on unseen sources.

Runs ``python -m planet_terrain_plugin.core classify`` (a subprocess, exactly the command line users have) on
every test-split image of source HiRISE images the model never saw in training, and scores its JSON against
the labels. Its figures must agree with ``training.evaluate`` (which runs the same network through PyTorch):
a mismatch would mean the plugin path differs from what was measured. Any folder of labelled crops laid out like
the data set works with ``--data-root``, so a user holding HiRISE sources outside the shared data can score on
them too.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from planet_terrain_plugin.core.contract import UNKNOWN_ID, read_contract
from training.dataset import load_all
from training.metrics import macro_f1
from training.splits import read_split


def classify_with_cli(model: Path, images: list[str], chunk: int = 200) -> list[dict]:
    """One JSON record per image from the plugin's command line (run in chunks to keep argv short)."""
    records = []
    for start in range(0, len(images), chunk):
        proc = subprocess.run([sys.executable, "-m", "planet_terrain_plugin.core", "classify", "--model", str(model),
                               *images[start:start + chunk]], capture_output=True, text=True, check=False)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"the image entry point failed ({proc.returncode}): {proc.stderr[-2000:]}")
        records.extend(json.loads(line) for line in proc.stdout.splitlines() if line.strip())
    return records


def score(model: Path, split_file: Path, v3_root: Path, v1_root: Path | None, split: str = "test") -> dict:
    contract = read_contract(str(model))
    assignment = read_split(split_file)
    records = [r for r in load_all(v3_root, v1_root, v1_root is not None) if assignment.get(r.source_id) == split]
    out = classify_with_cli(model, [r.path for r in records])
    by_path = {o["image"]: o for o in out}
    ids = list(contract.class_ids)
    known = [r for r in records if r.known]
    other = [r for r in records if not r.known]
    y = np.array([ids.index(r.label) for r in known])
    argmax = np.array([ids.index(contract.classes[int(np.argmax(list(by_path[r.path]["probs"].values())))].id)
                       for r in known])
    accepted = np.array([not by_path[r.path]["abstained"] for r in known])
    decided = np.array([by_path[r.path]["class_id"] for r in known])
    return {
        "model": model.name, "split": split, "images": len(records), "sources": len({r.source_id for r in records}),
        "n_known": len(known), "n_other": len(other),
        "macro_f1_argmax": round(macro_f1(y, argmax, len(ids)), 4),
        "accuracy_argmax": round(float((y == argmax).mean()), 4),
        "known_coverage": round(float(accepted.mean()), 4),
        "accuracy_on_accepted": round(float((decided[accepted] == np.array(ids)[y[accepted]]).mean()), 4)
        if accepted.any() else None,
        "other_rejected": round(float(np.mean([by_path[r.path]["class_id"] == UNKNOWN_ID for r in other])), 4),
        "provider": out[0]["provider"] if out else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("planet_terrain_plugin/models/planet_terrain_resnet50.fp16.onnx"))
    p.add_argument("--split-file", type=Path, default=Path("planet_terrain_plugin/models/planet_terrain_resnet50.split.json"))
    p.add_argument("--data-root", type=Path, default=Path("../shared/data/hirise-map-proj-v3"))
    p.add_argument("--v1-root", type=Path, default=Path("../shared/data/hirise-map-proj-v1"))
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    result = score(args.model, args.split_file, args.data_root, args.v1_root if args.v1_root.exists() else None,
                   args.split)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
