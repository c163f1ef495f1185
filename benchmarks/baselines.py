"""Baselines: PyTorch eager on the training tree's network, and a web-service-style classifier.

The web-service style is what an upload-per-request API does: one image per call, PNG-encoded by the client,
decoded by the server, preprocessed and run at batch 1. PyTorch eager uses ``training.model`` (same
architecture as the shipped ONNX; weights do not change the speed, so fresh weights are used when no training
checkpoint is at hand).
"""
from __future__ import annotations

import io

import numpy as np

from benchmarks.common import median_rate, model_variants, print_table
from planet_terrain_plugin.core.preprocess import preprocess
from planet_terrain_plugin.core.session import clear_cache, load_model


def sample_cells(n: int, size: int = 64) -> list[np.ndarray]:
    """Real pixels: ``n`` cells cut from the middle of the Apollo 15 frame."""
    from osgeo import gdal

    from benchmarks.common import RASTER

    ds = gdal.Open(str(RASTER))
    arr = ds.GetRasterBand(1).ReadAsArray()
    h, w = arr.shape
    y0, x0 = h // 4, w // 4
    cells = []
    for i in range(n):
        r, c = divmod(i, 8)
        cells.append(arr[y0 + (r % 8) * size: y0 + (r % 8 + 1) * size, x0 + c * size: x0 + (c + 1) * size].copy())
    return cells


def web_service_rate(precision: str = "fp32", n: int = 32, repeats: int = 3) -> float:
    from PIL import Image

    clear_cache()
    model = load_model(str(model_variants()[precision]))
    cells = sample_cells(n)

    def work() -> int:
        for cell in cells:
            buf = io.BytesIO()
            Image.fromarray(cell).save(buf, format="PNG")  # client encodes
            decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())))  # server decodes
            model.logits(preprocess(decoded, model.contract).tensor[None])
        return len(cells)

    return median_rate(work, repeats)[0]


def torch_eager_rate(batch: int = 32, n_batches: int = 2, repeats: int = 3) -> float | None:
    try:
        import torch

        from training.model import build_model
    except ImportError:
        return None
    from planet_terrain_plugin.core.contract import read_contract

    contract = read_contract(str(next(iter(model_variants().values()))))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    net = build_model(contract.num_classes).eval()
    x = torch.randn(batch, 3, contract.input_size, contract.input_size)

    def work() -> int:
        with torch.inference_mode():
            for _ in range(n_batches):
                net(x)
        return batch * n_batches

    return median_rate(work, repeats)[0]


def main() -> list[dict]:
    rows = [{"bench": "web_service", "precision": "fp32", "batch": 1, "images_per_s": web_service_rate()}]
    eager = torch_eager_rate()
    if eager is not None:
        rows.append({"bench": "torch_eager", "precision": "fp32", "batch": 32, "images_per_s": eager})
    print_table("Baselines", ["bench", "precision", "batch", "images/s"],
                [[r["bench"], r["precision"], r["batch"], r["images_per_s"]] for r in rows])
    return rows


if __name__ == "__main__":
    main()
