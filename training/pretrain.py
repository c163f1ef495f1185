"""Self-supervised pretraining of the ResNet-50 backbone: ``python -m training.pretrain --config ... --out DIR``.

Why: without ImageNet weights a network trained on a few hundred landmarks per class memorises its training
scenes. Unlabeled planetary imagery is plentiful by comparison: every HiRISE crop of the train and validation
splits (landforms and "other" alike, labels unused; the test split stays out) plus crops cut from the shared
rasters of every body. Two methods, switchable (``ssl_method``) and compared by measurement:

- SimCLR (Chen et al. 2020): two views of an image attract, every other image in the batch repels (NT-Xent).
- BYOL (Grill et al. 2020): an online network predicts a momentum (EMA) target's projection of the other view;
  no negatives, so small CPU batches hurt it less.

Views are orbital-imagery aware through the supervised augmentation (:func:`training.augment.augment`): any of
the 8 rotations/flips, random crop scale and position (wider: ``ssl_crop_scale``), brightness, contrast,
noise and blur, ending in the plugin's own stretch, resize and normalisation.

Writes ``backbone.pt`` (a torchvision ResNet state dict without ``fc``: the ``--init`` of
:mod:`training.train`'s probe-then-fine-tune schedule), ``ssl_last.pt`` (``--resume``), ``config.json`` and
``pretrain.json`` with a k-nearest-neighbour probe of the backbone before and after (validation macro-F1 and
known-vs-other AUROC from frozen features), the measurement that picks the method.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from planet_terrain_plugin.core.images import read_image
from planet_terrain_plugin.core.preprocess import stretched_gray

from .augment import augment
from .config import TrainConfig, config_from_args, run_parser
from .inference import logits_for
from .loop import EpochResult, RunStart, Stage, Task, fit, start_run
from .metrics import auroc, macro_f1
from .model import build_model, load_init
from .rundata import RunData

#: Raster files the pool reads from ``ssl_raster_dir``.
RASTER_SUFFIXES = (".tif", ".tiff", ".cub", ".img", ".jp2")
#: A raster crop joins the pool only with at least this share of valid (not nodata) pixels.
MIN_VALID = 0.95


# -- the unlabeled pool ----------------------------------------------------------------------------------------
def raster_crops(folder: str | Path, per_raster: int, side_range: tuple[int, int], contract,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Random square crops (8-bit, stretched like the plugin stretches a user's extent) from every raster."""
    out: list[np.ndarray] = []
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in RASTER_SUFFIXES) if folder else []
    for path in files:
        block, mask = read_image(str(path))
        h, w = block.shape[-2:]
        got = 0
        for _ in range(per_raster * 5):
            if got == per_raster:
                break
            side = int(rng.integers(side_range[0], side_range[1] + 1))
            side = min(side, h, w)
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = block[..., top:top + side, left:left + side]
            m = None if mask is None else mask[top:top + side, left:left + side]
            gray8, valid = stretched_gray(crop, contract, m)
            if valid >= MIN_VALID and gray8.std() > 2:  # skip collars and flat fill
                out.append(gray8)
                got += 1
    return out


def unlabeled_pool(cfg: TrainConfig, data: RunData, rng: np.random.Generator) -> list[np.ndarray]:
    """HiRISE crops of ``cfg.ssl_splits`` plus raster crops, as cached 8-bit images."""
    pool = [data.cache.gray(r) for s in cfg.ssl_splits for r in data.splits[s]]
    if cfg.ssl_raster_dir and Path(cfg.ssl_raster_dir).is_dir():
        pool += raster_crops(cfg.ssl_raster_dir, cfg.ssl_crops_per_raster, tuple(cfg.ssl_crop_pixels),
                             data.contract, rng)
    return pool


class _TwoViews(torch.utils.data.Dataset):
    """Two independent random views of each pool image; randomness seeded by (seed, epoch, index)."""

    def __init__(self, pool: list[np.ndarray], cfg: TrainConfig, contract, epoch: int):
        self.pool, self.contract, self.epoch = pool, contract, epoch
        self.cfg = dataclasses.replace(cfg, crop_scale=tuple(cfg.ssl_crop_scale))
        self.order = np.random.default_rng([cfg.seed, epoch, 99]).permutation(len(pool))

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.cfg.seed, self.epoch, i])
        g = self.pool[self.order[i]]
        return (torch.from_numpy(augment(g, self.contract, self.cfg, rng)),
                torch.from_numpy(augment(g, self.contract, self.cfg, rng)))


# -- networks and losses ---------------------------------------------------------------------------------------
def mlp(d_in: int, d_hidden: int, d_out: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(d_in, d_hidden), torch.nn.BatchNorm1d(d_hidden),
                               torch.nn.ReLU(inplace=True), torch.nn.Linear(d_hidden, d_out))


class SSLNet(torch.nn.Module):
    """Backbone (``fc`` removed) + projector (+ predictor for BYOL)."""

    def __init__(self, arch: str, proj_dim: int, predictor: bool):
        super().__init__()
        self.backbone = build_model(1, arch)
        feat = self.backbone.fc.in_features
        self.backbone.fc = torch.nn.Identity()
        self.projector = mlp(feat, 512, proj_dim)
        self.predictor = mlp(proj_dim, 512, proj_dim) if predictor else torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.projector(self.backbone(x)))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner out of the 2N - 1 other views of the batch."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(prediction, target projection), averaged."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


# -- the measurement that picks the method ---------------------------------------------------------------------
def features(backbone: torch.nn.Module, records, data: RunData) -> np.ndarray:
    """L2-normalised pooled backbone features (its ``fc`` is an identity) of the deterministic (plugin) inputs."""
    return F.normalize(torch.from_numpy(logits_for(backbone, records, data.cache)), dim=1).numpy()


def knn_probe(backbone: torch.nn.Module, data: RunData, k: int = 20, tau: float = 0.07) -> dict:
    """Weighted k-NN on frozen features (train -> val): macro-F1 of the known classes, and AUROC of
    known-vs-"other" by the similarity to the nearest train landform. No training, so it scores the features."""
    n = data.contract.num_classes
    train, val_k, val_o = data.known("train"), data.known("val"), data.other("val")
    ft, fk, fo = (features(backbone, r, data) for r in (train, val_k, val_o))
    yt = np.array([r.label - 1 for r in train])
    yk = np.array([r.label - 1 for r in val_k])

    def vote(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sim = f @ ft.T
        idx = np.argsort(-sim, 1)[:, :k]
        s = np.take_along_axis(sim, idx, 1)
        w = np.exp(s / tau)
        scores = np.zeros((len(f), n))
        np.add.at(scores, (np.repeat(np.arange(len(f)), k), yt[idx].ravel()), w.ravel())
        return scores.argmax(1), s[:, 0]

    pk, nearest_k = vote(fk)
    _, nearest_o = vote(fo) if len(fo) else (None, np.zeros(0))
    return {"knn_val_macro_f1": macro_f1(yk, pk, n), "knn_val_accuracy": float((pk == yk).mean()),
            "knn_val_auroc_known_vs_other": auroc(nearest_k, nearest_o)}


# -- the run ---------------------------------------------------------------------------------------------------
def backbone_state(net: SSLNet) -> dict[str, torch.Tensor]:
    """torchvision ResNet keys (no ``fc``), loadable by :func:`training.model.load_init`."""
    return {k: v.detach().cpu().clone() for k, v in net.backbone.state_dict().items()}


class Contrastive(Task):
    """Two views of each pool image through SimCLR's or BYOL's loss; BYOL's momentum target follows each step."""

    checkpoint_name = "ssl_last.pt"

    def __init__(self, cfg: TrainConfig, run: RunStart, net: SSLNet, pool: list[np.ndarray], report: dict):
        super().__init__(net)
        self.cfg, self.run, self.pool, self.report = cfg, run, pool, report
        self.label = f"{cfg.ssl_method} "
        self.target = copy.deepcopy(net) if cfg.ssl_method == "byol" else None
        if self.target is not None:
            self.target.requires_grad_(False)

    def loader(self, epoch: int, stage: Stage) -> torch.utils.data.DataLoader:
        self.net.train()
        return torch.utils.data.DataLoader(_TwoViews(self.pool, self.cfg, self.run.contract, epoch),
                                           batch_size=self.cfg.ssl_batch_size, shuffle=False,
                                           num_workers=self.cfg.loader_workers, drop_last=True)

    def loss(self, batch, epoch: int, step: int) -> tuple[torch.Tensor, int]:
        device, precision = self.run.device, self.run.precision
        v1, v2 = (v.to(device) for v in batch)
        o1, o2 = precision.forward(self.net, [v1, v2], device)
        if self.target is None:
            return nt_xent(o1, o2, self.cfg.ssl_temperature), len(v1)
        with torch.no_grad():
            t1, t2 = precision.forward(self.target.project, [v1, v2], device)
        return byol_loss(o1, t2) + byol_loss(o2, t1), len(v1)

    def after_step(self) -> None:
        if self.target is not None:
            ema_update(self.target, self.net, self.cfg.ssl_momentum)

    def row(self, r: EpochResult) -> dict:
        return {"epoch": r.epoch + 1, "loss": r.loss, "images": r.images, "elapsed_s": r.elapsed_s}

    def state(self) -> dict:
        state = dict(net=self.net.state_dict(), report=self.report, config=json.loads(self.cfg.to_json()))
        if self.target is not None:
            state["target"] = self.target.state_dict()
        return state

    def load_state(self, ck: dict) -> None:
        self.net.load_state_dict(ck["net"])
        if self.target is not None:
            self.target.load_state_dict(ck["target"])
        self.report = ck["report"]

    def save(self, out: Path, state: dict) -> None:
        torch.save(backbone_state(self.net), out / "backbone.pt")


def pretrain(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, cache_dir: str | None = "runs/cache",
             progress: bool = True, probe: bool = True) -> Path:
    """Run (or continue) pretraining; returns the path of ``backbone.pt``."""
    run = start_run(cfg, out_dir, cache_dir)
    data = run.data
    pool = unlabeled_pool(cfg, data, np.random.default_rng([cfg.seed, 1]))
    net = SSLNet(cfg.arch, cfg.ssl_proj_dim, predictor=cfg.ssl_method == "byol")
    if cfg.ssl_init:
        load_init(net.backbone, cfg.ssl_init)
    net = run.precision.place(net, run.device)
    report: dict = {"method": cfg.ssl_method, "pool_images": len(pool),
                    "pool_hirise": sum(len(data.splits[s]) for s in cfg.ssl_splits), "init": cfg.ssl_init}
    if probe and not resume:
        report["probe_before"] = knn_probe(net.backbone, data)
        print(json.dumps({"probe_before": report["probe_before"]}), flush=True)
    task = Contrastive(cfg, run, net, pool, report)
    stage = Stage(cfg.ssl_epochs, cfg.ssl_lr, budget_min=cfg.ssl_time_budget_min, stop_mid_epoch=True)
    history = fit(task, [stage], run.out, run.device, run.precision, cfg.weight_decay, resume, progress)
    report = task.report
    report["history"] = history
    if probe:
        report["probe_after"] = knn_probe(net.backbone, data)
    (run.out / "pretrain.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "history"}), flush=True)
    return run.out / "backbone.pt"


def main(argv: list[str] | None = None) -> int:
    p = run_parser(__doc__.splitlines()[0], "training/configs/pretrain.json", Contrastive.checkpoint_name)
    p.add_argument("--method", choices=("simclr", "byol"), help="overrides the config's ssl_method")
    a = p.parse_args(argv)
    cfg = config_from_args(a, ssl_method=a.method)
    path = pretrain(cfg, cfg.out_dir, resume=a.resume, progress=not a.no_progress and os.isatty(2))
    print(f"backbone: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
