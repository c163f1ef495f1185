"""The ceiling: bare onnxruntime on already preprocessed batches, per precision and batch size.

Two layouts are timed and the better one is the ceiling, so the pipeline is never compared with a weaker
onnxruntime than the machine can give: one run at a time with onnxruntime's default threads (how a click runs),
and the grid's layout, several runs at once sharing the cores (``core.session.parallel_layout``).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from benchmarks.common import median_rate, model_variants, print_table
from planet_terrain_plugin.core.session import clear_cache, load_model

BATCHES = (1, 8, 32)


def measure(images_per_point: int = 512, repeats: int = 3) -> list[dict]:
    rows = []
    for precision, path in model_variants().items():
        clear_cache()
        model = load_model(str(path))
        many = load_model(str(path), grid=True)
        layout = many.layout
        s = model.contract.input_size
        rng = np.random.default_rng(0)
        for batch in BATCHES:
            x = rng.standard_normal((batch, 3, s, s)).astype(np.float32)
            runs = max(layout.workers, images_per_point // batch)

            def serial() -> int:
                for _ in range(runs):
                    model.logits(x)
                return runs * batch

            def concurrent() -> int:
                with ThreadPoolExecutor(layout.workers) as pool:
                    list(pool.map(lambda _: many.logits(x), range(runs)))
                return runs * batch

            one, one_all = median_rate(serial, repeats)
            par, par_all = median_rate(concurrent, repeats) if layout.workers > 1 else (one, one_all)
            rows.append({"bench": "onnxruntime", "precision": precision, "batch": batch, "images_per_s": max(one, par),
                         "serial_images_per_s": one, "concurrent_images_per_s": par, "layout": layout.describe(),
                         "repeats": one_all + par_all, "provider": model.provider})
    return rows


def print_rows(rows: list[dict]) -> None:
    print_table("Bare onnxruntime (preprocessed batches): the ceiling is the better of one run at a time and the "
                f"grid's layout ({rows[0]['layout']})" if rows else "Bare onnxruntime: nothing measured",
                ["precision", "batch", "one run (img/s)", "concurrent (img/s)", "ceiling (img/s)"],
                [[r["precision"], r["batch"], r["serial_images_per_s"], r["concurrent_images_per_s"],
                  r["images_per_s"]] for r in rows])


def main() -> list[dict]:
    rows = measure()
    print_rows(rows)
    return rows


if __name__ == "__main__":
    main()
