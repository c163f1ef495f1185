"""Semi-supervised training (training/semi.py) on real data at toy size: confident weak views teach strong ones,
unsure crops teach nothing, and the pool holds no validation or test image."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from paths import HIRISE_V1, HIRISE_V3, RASTERS

from training.config import TrainConfig
from training.semi import fixmatch_loss, strong_view, weak_view

REPO = Path(__file__).resolve().parent.parent
needs_data = pytest.mark.skipif(not (HIRISE_V3.is_dir() and HIRISE_V1.is_dir()), reason="shared HiRISE data absent")


def test_only_confident_weak_views_teach():
    weak = torch.tensor([[6.0, 0.0, 0.0], [0.5, 0.4, 0.3]])
    strong = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 5.0]], requires_grad=True)
    loss, mask = fixmatch_loss(strong, weak, threshold=0.9)
    assert mask.tolist() == [True, False]
    expected = torch.nn.functional.cross_entropy(strong[:1], torch.tensor([0])) / 2
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert strong.grad[1].abs().sum() == 0, "an unsure crop sends no gradient"


def test_the_strong_view_is_harder_than_the_weak_one():
    cfg = TrainConfig(input_size=32)
    contract = cfg.base_contract()
    g = np.random.default_rng(1).integers(0, 256, (64, 64)).astype(np.uint8)
    weak = weak_view(g, contract, cfg, np.random.default_rng(0))
    strong = strong_view(g, contract, cfg, np.random.default_rng(0))
    assert weak.shape == strong.shape == (3, 32, 32)
    assert (strong == 0.0).all(axis=0).sum() >= 1, "a square is cut out"
    np.testing.assert_array_equal(strong_view(g, contract, cfg, np.random.default_rng(0)), strong)


@pytest.mark.slow
@needs_data
def test_pseudo_labels_teach_only_above_the_threshold(tmp_path):
    from training.rundata import load_run_data
    from training.semi import semi_pool
    from training.train import train

    base = dict(json.loads((REPO / "training" / "configs" / "smoke.json").read_text()), arch="resnet18",
                probe_epochs=0, data_root=str(HIRISE_V3), v1_root=str(HIRISE_V1), ssl_raster_dir=str(RASTERS))
    runs = {}
    for name, extra in (("plain", {}), ("never", {"semi_weight": 1.0, "semi_threshold": 1.01}),
                        ("always", {"semi_weight": 1.0, "semi_threshold": 0.0})):
        cfg = TrainConfig.from_dict({**base, **extra, "out_dir": str(tmp_path / name)})
        train(cfg, tmp_path / name, cache_dir=None, progress=False)
        runs[name] = json.loads((tmp_path / name / "history.json").read_text())[-1]
    assert runs["never"]["semi_taught"] == 0 and runs["always"]["semi_taught"] == 1
    assert runs["never"]["train_loss"] == pytest.approx(runs["plain"]["train_loss"], rel=1e-5), "unsure crops teach nothing"
    assert runs["always"]["train_loss"] != pytest.approx(runs["plain"]["train_loss"], rel=1e-3)
    cfg = TrainConfig.from_dict({**base, "semi_weight": 1.0})
    data = load_run_data(cfg, cfg.base_contract(), split_file=str(tmp_path / "plain" / "split.json"), cache_dir=None)
    pool = semi_pool(cfg, data, np.random.default_rng(0))
    held = {data.cache.gray(r).tobytes() for s in ("val", "test") for r in data.splits[s]}
    assert len(pool) > len(data.other("train")) and not held & {g.tobytes() for g in pool}
