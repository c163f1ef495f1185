"""Train the terrain classifier: ``python -m training.train --config training/configs/default.json``.

Plain PyTorch over a :class:`TrainConfig`. One stage from scratch, or two (frozen-backbone linear probe, then
full fine-tune) when ``--init`` names a local state dict (torchvision ImageNet weights, a self-supervised
backbone from :mod:`training.pretrain`, or an earlier run). Known classes learn with cross-entropy (class
balance by a weighted sampler, inverse-frequency or class-balanced loss weights, optional focal term and
mixup/CutMix: :mod:`training.losses`, :mod:`training.mixing`); the train split's "other" pool is pushed towards
a uniform softmax (outlier exposure) or onto an extra output, so that abstaining on low top probability
rejects it. Every lever is a config switch; :mod:`training.ablation` compares them. Every epoch writes ``last.pt`` (``--resume`` continues from it) and, when validation macro-F1
improves, ``best.pt``; the config, split and history are written beside them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from planet_terrain_plugin.core.contract import ModelContract

from . import checkpoint
from .augment import augment
from .config import TrainConfig, config_from_args, run_parser
from .inference import logits_for
from .losses import class_balanced_weights, inverse_frequency_weights, mixed_known_loss, outlier_loss
from .metrics import auroc, macro_f1
from .mixing import mix_batch
from .model import build_model, class_probs, load_init, output_count, set_backbone_trainable
from .precision import Precision, precision_for
from .rundata import RunData, load_run_data

#: At most this many "other" validation images are scored each epoch (all of them at calibration).
VAL_OTHER_CAP = 400


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_counts(data: RunData, n: int) -> np.ndarray:
    labels = np.array([r.label - 1 for r in data.known("train")])
    return np.bincount(labels, minlength=n).astype(float)


def epoch_plan(data: RunData, cfg: TrainConfig, rng: np.random.Generator, n_classes: int) -> list[tuple[int, bool]]:
    """Indices into known/other train records for one epoch, shuffled: (index, is_other)."""
    known = data.known("train")
    labels = np.array([r.label - 1 for r in known])
    n_known = cfg.samples_per_epoch or len(known)
    if cfg.balance == "sampler":
        counts = np.bincount(labels, minlength=n_classes).astype(float)
        w = counts[labels] ** -cfg.sampler_power
        idx = rng.choice(len(known), size=n_known, replace=True, p=w / w.sum())
    else:
        idx = rng.permutation(len(known))[:n_known] if n_known <= len(known) else rng.choice(len(known), n_known)
    plan = [(int(i), False) for i in idx]
    other = data.other("train")
    if cfg.outlier_weight > 0 and other:
        n_other = int(round(cfg.outlier_ratio * n_known))
        plan += [(int(i), True) for i in rng.choice(len(other), size=min(n_other, len(other)), replace=False)]
    order = rng.permutation(len(plan))
    return [plan[i] for i in order]


class _PlanDataset(torch.utils.data.Dataset):
    """One epoch's plan as a dataset; each item's randomness is seeded by (seed, epoch, position), so the
    augmented images do not depend on how many loader workers run."""

    def __init__(self, data: RunData, cfg: TrainConfig, contract, plan: list[tuple[int, bool]], epoch: int):
        self.known, self.other = data.known("train"), data.other("train")
        self.cache, self.cfg, self.contract, self.plan, self.epoch = data.cache, cfg, contract, plan, epoch

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int):
        idx, is_other = self.plan[i]
        rec = (self.other if is_other else self.known)[idx]
        rng = np.random.default_rng([self.cfg.seed, self.epoch, i])
        x = augment(self.cache.gray(rec), self.contract, self.cfg, rng)
        return torch.from_numpy(x), 0 if is_other else rec.label - 1, is_other


def _loader(data: RunData, cfg: TrainConfig, contract, plan, epoch: int) -> torch.utils.data.DataLoader:
    """Augmentation runs in ``cfg.loader_workers`` processes (numpy work overlapping the network's)."""
    return torch.utils.data.DataLoader(_PlanDataset(data, cfg, contract, plan, epoch), batch_size=cfg.batch_size,
                                       shuffle=False, num_workers=cfg.loader_workers,
                                       persistent_workers=False, drop_last=False)


def lr_at(progress: float, cfg: TrainConfig, base: float) -> float:
    """Linear warm-up then cosine decay over the run's progress (0..1)."""
    warm = cfg.warmup_epochs / max(cfg.epochs, 1)
    if progress < warm:
        return base * (progress + 1e-3) / warm
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warm) / max(1e-9, 1 - warm))))


@torch.no_grad()
def validate(model: torch.nn.Module, data: RunData, n_classes: int) -> dict:
    """Val macro-F1, accuracy, NLL on known classes and max-prob AUROC known-vs-other (capped pool)."""
    known = data.known("val")
    other = data.other("val")[::max(1, len(data.other("val")) // VAL_OTHER_CAP)][:VAL_OTHER_CAP]
    lk = logits_for(model, known, data.cache)
    y = np.array([r.label - 1 for r in known])
    pk = class_probs(lk, 1.0, n_classes)
    out = {"val_macro_f1": macro_f1(y, pk.argmax(1), n_classes), "val_acc": float((pk.argmax(1) == y).mean()),
           "val_nll": float(F.cross_entropy(torch.from_numpy(lk), torch.from_numpy(y)).item())}
    if other:
        po = class_probs(logits_for(model, other, data.cache), 1.0, n_classes)
        out["val_auroc_known_vs_other"] = auroc(pk.max(1), po.max(1))
    return out


@dataclass(frozen=True)
class RunStart:
    """What a training or a pretraining run sets up alike before its first step."""

    out: Path
    device: torch.device
    precision: Precision
    contract: ModelContract
    data: RunData


def start_run(cfg: TrainConfig, out_dir: str | Path, cache_dir: str | None) -> RunStart:
    """Output folder, threads, seeds, device and precision; the config and split written beside the run, so
    every run folder says how it was made; the data loaded."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    device = pick_device()
    precision = precision_for(device, cfg.precision)
    contract = cfg.base_contract()
    cfg.save(out / "config.json")
    data = load_run_data(cfg, contract, cache_dir=cache_dir, write_split_to=out / "split.json")
    return RunStart(out, device, precision, contract, data)


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, cache_dir: str | None = "runs/cache",
          progress: bool = True) -> Path:
    """Run (or continue) training; returns the path of the best checkpoint."""
    run = start_run(cfg, out_dir, cache_dir)
    out, device, precision, contract, data = run.out, run.device, run.precision, run.contract, run.data
    print(f"device {device}, {precision.describe()}")
    n = contract.num_classes
    model = build_model(output_count(cfg, n), cfg.arch)
    two_stage = bool(cfg.init)
    if two_stage:
        left = load_init(model, cfg.init)
        print(f"init from {cfg.init}; left at random init: {left}")
    model = precision.place(model, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = precision.make_scaler(device)
    counts = class_counts(data, n)
    loss_w = None
    if cfg.balance in ("loss_weights", "class_balanced"):
        w = inverse_frequency_weights(counts) if cfg.balance == "loss_weights" else class_balanced_weights(
            counts, cfg.cb_beta)
        w = np.append(w, [1.0] * (output_count(cfg, n) - n))  # an extra "other" output keeps weight 1
        loss_w = torch.tensor(w, dtype=torch.float32, device=device)
    start_epoch, best, history, elapsed_before = 0, -1.0, [], 0.0
    last = out / "last.pt"
    if resume and last.is_file():
        ck = checkpoint.load(last)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, best, history = ck["epoch"] + 1, ck["best"], ck["history"]
        elapsed_before = ck.get("elapsed_s", 0.0)
        print(f"resumed from {last} at epoch {start_epoch}")
    total_epochs = cfg.epochs + (cfg.probe_epochs if two_stage else 0)
    t0 = time.time() - elapsed_before
    budget_s = cfg.time_budget_min * 60
    for epoch in range(start_epoch, total_epochs):
        probing = two_stage and epoch < cfg.probe_epochs
        set_backbone_trainable(model, not probing)
        stage_epoch = epoch - (cfg.probe_epochs if two_stage and not probing else 0)
        stage_len = cfg.probe_epochs if probing else cfg.epochs
        base_lr = cfg.probe_lr if probing else cfg.lr
        rng = np.random.default_rng([cfg.seed, epoch])
        plan = epoch_plan(data, cfg, rng, n)
        steps = max(1, math.ceil(len(plan) / cfg.batch_size))
        model.train()
        if probing:  # a linear probe keeps the backbone's BatchNorm statistics too
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eval()
        run_loss, seen = 0.0, 0
        it = range(steps)
        if progress:
            from tqdm import tqdm
            it = tqdm(it, desc=f"epoch {epoch + 1}/{total_epochs}{' (probe)' if probing else ''}", leave=False)
        batches = iter(_loader(data, cfg, contract, plan, epoch))
        for step in it:
            frac = (stage_epoch + step / steps) / max(stage_len, 1)
            if budget_s and not probing:  # a time budget compresses the schedule rather than truncating it
                frac = max(frac, (time.time() - t0) / budget_s)
            for g in opt.param_groups:
                g["lr"] = lr_at(min(frac, 1.0), cfg, base_lr)
            xb, y, is_other = (t.to(device) for t in next(batches))
            known = ~is_other
            mix_rng = np.random.default_rng([cfg.seed, epoch, step, 7])
            x_known, partner, lam = mix_batch(xb[known], mix_rng, cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mix_p)
            if partner is not None:
                xb = xb.clone()
                xb[known] = x_known
            if precision.channels_last:
                xb = xb.to(memory_format=torch.channels_last)
            with precision.autocast(device):
                logits = model(xb).float()
            loss = logits.new_zeros(())
            if known.any():
                yk = y[known]
                loss = loss + mixed_known_loss(logits[known], yk, None if partner is None else yk[partner], lam,
                                               weight=loss_w, label_smoothing=cfg.label_smoothing,
                                               focal_gamma=cfg.focal_gamma)
            if is_other.any():
                loss = loss + cfg.outlier_weight * outlier_loss(logits[is_other], cfg.outlier_mode, n)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            run_loss += float(loss.detach()) * len(y)
            seen += len(y)
            if progress:
                it.set_postfix(loss=f"{run_loss / seen:.3f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
        val = validate(model, data, n)
        elapsed = time.time() - t0
        row = {"epoch": epoch + 1, "probe": probing, "train_loss": run_loss / max(seen, 1), "elapsed_s": elapsed,
               "lr": opt.param_groups[0]["lr"], **val}
        history.append(row)
        print(json.dumps(row), flush=True)
        state = dict(model=model.state_dict(), config=json.loads(cfg.to_json()), contract=contract.to_metadata(),
                     epoch=epoch, best=best, history=history, elapsed_s=elapsed, optimizer=opt.state_dict())
        if val["val_macro_f1"] > best:
            best = state["best"] = val["val_macro_f1"]
            checkpoint.save(out / "best.pt", **{k: v for k, v in state.items() if k != "optimizer"})
        checkpoint.save(last, **state)
        (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        if budget_s and elapsed >= budget_s and not probing:
            print(f"time budget of {cfg.time_budget_min} min reached after epoch {epoch + 1}; stopping")
            break
    return out / "best.pt"


def build_parser() -> argparse.ArgumentParser:
    p = run_parser(__doc__.splitlines()[0], "training/configs/default.json", "last.pt")
    p.add_argument("--init", help="local torchvision ResNet-50 state dict: two-stage fine-tuning")
    p.add_argument("--epochs", type=int)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args, init=args.init, epochs=args.epochs)
    best = train(cfg, cfg.out_dir, resume=args.resume, progress=not args.no_progress and os.isatty(2))
    print(f"best checkpoint: {best}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
