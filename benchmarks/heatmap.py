"""Seconds of one "Why this label" heatmap (``core.explain.occlusion_map``: one occluded view per patch position)
per model variant, on a real HiRISE crater crop: the wait a user has after clicking *Heatmap*.

Each variant's session is warmed by a coarse map first; the figure is the median of ``repeats`` full maps.
"""
from __future__ import annotations

import statistics
import time

from benchmarks.common import SHARED, model_variants, print_table

CRATER = SHARED / "data" / "hirise-map-proj-v3" / "map-proj-v3" / "ESP_020606_1445_RED-0315.jpg"  # a training crater


def measure(repeats: int = 3) -> list[dict]:
    from planet_terrain_plugin.core import explain
    from planet_terrain_plugin.core.calibrate import decide
    from planet_terrain_plugin.core.images import read_image
    from planet_terrain_plugin.core.preprocess import preprocess
    from planet_terrain_plugin.core.session import load_model

    block, mask = read_image(str(CRATER))
    rows = []
    for precision, path in model_variants().items():
        model = load_model(str(path))
        tensor = preprocess(block, model.contract, mask).tensor
        (decision,) = decide(model.logits(tensor[None]), model.contract)
        index = explain.class_to_explain(model.contract, decision.label, decision.probs)
        explain.occlusion_map(model, tensor, index, patch=16, stride=16)  # warm the session
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = explain.occlusion_map(model, tensor, index)
            times.append(time.perf_counter() - start)
        rows.append({"bench": "heatmap", "precision": precision, "seconds": statistics.median(times),
                     "repeats": times, "views": int(result.drop.size), "input_px": int(tensor.shape[-1])})
    return rows


def main() -> list[dict]:
    rows = measure()
    print_table("Why this label: one occlusion heatmap", ["precision", "occluded views", "input px", "seconds"],
                [[r["precision"], r["views"], r["input_px"], r["seconds"]] for r in rows])
    return rows


if __name__ == "__main__":
    main()
