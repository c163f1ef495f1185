"""Few-shot benchmark of taught heads (``core.heads``) against the shipped 7-way head: ``make fewshot``.

HiRISE: grouped by source image with the shipped split (``models/*.split.json``): k = 1, 5, 10, 20 labelled
landmarks per class (originals, not their augmented copies; fewer where the train split has fewer) are drawn
from train-split sources, ``other`` counted as a class (the background pool), and both heads are scored on
every test-split image (the shipped model's own test set). A prediction is a class or ``unknown``; ``other``
images count as right when the head abstains. Several draws per k give the mean and spread. The done-when
figure is the macro-F1 over the four well-represented classes (crater, slope streak, bright dune, dark dune),
over those the test split holds: its sources hold no dark dune, so three.

The lunar case (``benchmarks.fewshot_moon``) teaches "crater" vs "plain" on one Apollo frame and tests on the
other. Figures go to build/fewshot/ (JSON, Markdown table, plot).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from benchmarks.common import BUILD, SHARED
from planet_terrain_plugin.core.calibrate import decide
from planet_terrain_plugin.core.contract import HIRISE_LANDFORMS, HIRISE_OTHER, UNKNOWN_LABEL
from planet_terrain_plugin.core.heads import Head, attach_head, backbone_info, teach
from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.models import default_model_path
from planet_terrain_plugin.core.preprocess import finish, stretched_gray
from planet_terrain_plugin.core.session import NetworkOutputs, TerrainModel, load_model
from training.dataset import Record, read_records

OUT = BUILD.parent / "fewshot"
V3 = SHARED / "data" / "hirise-map-proj-v3"
KS = (1, 5, 10, 20)
DRAWS = 5
#: Background ("other") examples per draw, as a multiple of k: background is whatever is none of the classes, so
#: a user labels it without expertise and in bulk; the test images are mostly background, so its pool matters.
BACKGROUND_FACTORS = (1, 5)
WELL_REPRESENTED = ("crater", "slope streak", "bright dune", "dark dune")
NAMES = {c.id: c.name for c in (HIRISE_OTHER,) + HIRISE_LANDFORMS}


def split_of(model_path: Path) -> dict[str, str]:
    """Source id -> split name, from the split file shipped beside the model."""
    split_file = next(model_path.parent.glob("*.split.json"))
    sources = json.loads(split_file.read_text())["sources"]
    return {s: name for name, ids in sources.items() for s in ids}


def outputs(model: TerrainModel, records: list[Record], batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(logits, embeddings) of the records' images, preprocessed as training and the plugin do."""
    logits, embeddings = [], []
    for start in range(0, len(records), batch):
        tensors = []
        for r in records[start:start + batch]:
            block, mask = read_image(r.path)
            tensors.append(finish(stretched_gray(block, model.contract, mask)[0], model.contract))
        out = model.run(np.stack(tensors))
        logits.append(out.logits)
        embeddings.append(out.embedding)
    return np.concatenate(logits), np.concatenate(embeddings)


def scores(truth: list[str], predicted: list[str]) -> dict[str, float]:
    """Accuracy (``other`` right when abstained), macro-F1 over the classes and over the well-represented ones,
    each over those the test images hold (the shipped split's test sources hold no dark dune)."""
    truth = [UNKNOWN_LABEL if t == HIRISE_OTHER.name else t for t in truth]
    f1 = {}
    for name in (c.name for c in HIRISE_LANDFORMS if c.name in truth):
        tp = sum(t == p == name for t, p in zip(truth, predicted))
        fp = sum(p == name != t for t, p in zip(truth, predicted))
        fn = sum(t == name != p for t, p in zip(truth, predicted))
        f1[name] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"accuracy": float(np.mean([t == p for t, p in zip(truth, predicted)])),
            "macro_f1_7": float(np.mean(list(f1.values()))),
            "macro_f1_4": float(np.mean([f1[n] for n in WELL_REPRESENTED if n in f1]))}


def draw(pool: dict[str, list[int]], k: int, background: int, rng: np.random.Generator) -> list[int]:
    """k examples of each class (all where fewer) and ``background`` of ``other``."""
    return [i for name, idx in pool.items()
            for i in rng.choice(idx, size=min(background if name == HIRISE_OTHER.name else k, len(idx)), replace=False)]


def head_predictions(head: Head, model: TerrainModel, embeddings: np.ndarray) -> list[str]:
    """The taught head's decisions (a class or unknown) on precomputed embeddings, as a classification decides."""
    taught = attach_head(model, head)
    out = head.outputs(NetworkOutputs(np.zeros((len(embeddings), 1)), embeddings))
    return [d.label for d in decide(out.logits, taught.contract, None, None, out.ood_score)]


def hirise(model: TerrainModel, seed: int) -> dict:
    """The HiRISE table: per k, mean and spread of each score over the draws, and the shipped head's."""
    split = split_of(Path(model.path))
    records = read_records(V3, "v3")
    train = [r for r in records if split.get(r.source_id) == "train" and not r.aug]
    test = [r for r in records if split.get(r.source_id) == "test"]
    print(f"embedding {len(train)} train-split originals and {len(test)} test-split images ...", flush=True)
    _, train_emb = outputs(model, train)
    test_logits, test_emb = outputs(model, test)
    truth = [NAMES[r.label] for r in test]
    shipped = scores(truth, [d.label for d in decide(test_logits, model.contract)])
    pool: dict[str, list[int]] = {}
    for i, r in enumerate(train):
        pool.setdefault(NAMES[r.label], []).append(i)
    backbone, rng, rows = backbone_info(model), np.random.default_rng(seed), []
    for factor, k in ((f, k) for f in BACKGROUND_FACTORS for k in KS):
        runs = []
        for _ in range(DRAWS):
            chosen = draw(pool, k, factor * k, rng)
            head = teach(train_emb[chosen], [NAMES[train[i].label] for i in chosen], f"k{k}", "bench", backbone)
            runs.append(scores(truth, head_predictions(head, model, test_emb)))
        rows.append({"k": k, "background": factor * k,
                     **{key: (statistics.mean(r[key] for r in runs), statistics.pstdev(r[key] for r in runs))
                        for key in runs[0]}})
        print(rows[-1], flush=True)
    return {"shipped": shipped, "taught": rows, "train_available": {n: len(v) for n, v in pool.items()},
            "test_images": len(test), "test_per_class": {n: truth.count(n) for n in NAMES.values()}}


def table(result: dict) -> str:
    """The Markdown table of the README section."""
    s = result["shipped"]
    lines = ["| head | accuracy | macro-F1 (7 classes) | macro-F1 (4 well-represented) |", "|---|---|---|---|",
             f"| shipped 7-way | {s['accuracy']:.3f} | {s['macro_f1_7']:.3f} | {s['macro_f1_4']:.3f} |"]
    for row in result["taught"]:
        lines.append(f"| taught, k = {row['k']}, {row['background']} background | " + " | ".join(f"{row[key][0]:.3f} ± {row[key][1]:.3f}" for key in
                                                                 ("accuracy", "macro_f1_7", "macro_f1_4")) + " |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ks = list(KS)
    for key, colour in (("macro_f1_4", "tab:blue"), ("accuracy", "tab:green")):
        for factor, style in zip(BACKGROUND_FACTORS, ("-", ":")):
            rows = [row for row in result["taught"] if row["background"] == factor * row["k"]]
            ax.errorbar(ks, [row[key][0] for row in rows], yerr=[row[key][1] for row in rows], marker="o",
                        color=colour, linestyle=style, capsize=3, label=f"taught ({factor}k background): {key}")
        ax.axhline(result["shipped"][key], color=colour, linestyle="--", label=f"shipped head: {key}")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("labelled examples per class (k)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("Few-shot heads on test-split HiRISE sources")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(default_model_path()))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-moon", action="store_true")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model)
    result = {"model": f"{model.contract.model_name} {model.contract.model_version}", "hirise": hirise(model, args.seed)}
    if not args.skip_moon:
        from benchmarks.fewshot_moon import moon

        result["moon"] = moon(args.model)
    (OUT / "fewshot.json").write_text(json.dumps(result, indent=1))
    (OUT / "fewshot.md").write_text(table(result["hirise"]) + "\n")
    plot(result["hirise"], OUT / "fewshot.png")
    print(table(result["hirise"]))
    print(f"written: {OUT}")


if __name__ == "__main__":
    main()
