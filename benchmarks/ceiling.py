"""The ceiling: bare onnxruntime on already preprocessed batches, per precision and batch size."""
from __future__ import annotations

import numpy as np

from benchmarks.common import median_rate, model_variants, print_table
from planet_terrain_plugin.core.session import clear_cache, load_model

BATCHES = (1, 8, 32)


def measure(images_per_point: int = 64, repeats: int = 3) -> list[dict]:
    rows = []
    for precision, path in model_variants().items():
        clear_cache()
        model = load_model(str(path))
        s = model.contract.input_size
        rng = np.random.default_rng(0)
        for batch in BATCHES:
            x = rng.standard_normal((batch, 3, s, s)).astype(np.float32)
            runs = max(1, images_per_point // batch)

            def work() -> int:
                for _ in range(runs):
                    model.logits(x)
                return runs * batch

            rate, all_rates = median_rate(work, repeats)
            rows.append({"bench": "onnxruntime", "precision": precision, "batch": batch, "images_per_s": rate,
                         "repeats": all_rates, "provider": model.provider})
    return rows


def main() -> list[dict]:
    rows = measure()
    print_table("Bare onnxruntime (preprocessed batches): the ceiling", ["precision", "batch", "images/s"],
                [[r["precision"], r["batch"], r["images_per_s"]] for r in rows])
    return rows


if __name__ == "__main__":
    main()
