"""Train the terrain classifier: ``python -m training.train --config training/configs/default.json``.

Plain PyTorch over a :class:`TrainConfig`. One stage from scratch, or two (frozen-backbone linear probe, then
full fine-tune) when ``--init`` names a local state dict (torchvision ImageNet weights, a self-supervised
backbone from :mod:`training.pretrain`, or an earlier run). Known classes learn with cross-entropy (class
balance by a weighted sampler, inverse-frequency or class-balanced loss weights, optional focal term and
mixup/CutMix: :mod:`training.losses`, :mod:`training.mixing`); the train split's "other" pool is pushed towards
a uniform softmax (outlier exposure) or onto an extra output, so that abstaining on low top probability
rejects it. A frozen teacher's averaged views can be distilled beside the labels (:mod:`training.distill`) and
unlabeled crops can teach through FixMatch (:mod:`training.semi`). Every lever is a config switch;
:mod:`training.ablation` and :mod:`training.cv` compare them. The epoch loop (schedule,
time budget, precision, checkpoints) is :mod:`training.loop`'s: every epoch writes ``last.pt`` (``--resume``
continues from it) and, when validation macro-F1 improves, ``best.pt``; the config, split and history are
written beside them.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint
from .augment import augment
from .config import TrainConfig, config_from_args, run_parser
from .distill import Teacher, distill_loss
from .inference import logits_for
from .loop import EpochResult, RunStart, Stage, Task, fit, start_run
from .losses import class_balanced_weights, inverse_frequency_weights, mixed_known_loss, outlier_loss
from .metrics import auroc, macro_f1
from .mixing import mix_batch
from .model import build_model, class_probs, load_init, output_count, set_backbone_trainable
from .rundata import RunData
from .semi import Paired, WithUnlabeled, fixmatch_loss, semi_pool

#: Name of the frozen-backbone stage that precedes fine-tuning when the run starts from ``init`` weights.
PROBE = "probe"
#: At most this many "other" validation images are scored each epoch (all of them at calibration).
VAL_OTHER_CAP = 400


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


def loss_weights(cfg: TrainConfig, data: RunData, n: int, device: torch.device) -> torch.Tensor | None:
    """Per-output cross-entropy weights when ``cfg.balance`` balances by the loss; None otherwise."""
    if cfg.balance not in ("loss_weights", "class_balanced"):
        return None
    counts = class_counts(data, n)
    w = inverse_frequency_weights(counts) if cfg.balance == "loss_weights" else class_balanced_weights(
        counts, cfg.cb_beta)
    w = np.append(w, [1.0] * (output_count(cfg, n) - n))  # an extra "other" output keeps weight 1
    return torch.tensor(w, dtype=torch.float32, device=device)


def stages(cfg: TrainConfig) -> list[Stage]:
    """From scratch: one stage. With ``init``: a linear probe of the backbone first, outside the time budget."""
    warm = cfg.warmup_epochs / max(cfg.epochs, 1)
    tune = Stage(cfg.epochs, cfg.lr, warm, budget_min=cfg.time_budget_min)
    return [Stage(cfg.probe_epochs, cfg.probe_lr, warm, name=PROBE), tune] if cfg.init else [tune]


class Supervised(Task):
    """Known classes by (mixed, weighted, focal) cross-entropy, the train split's "other" pool by outlier
    exposure; validated each epoch, the best epoch by validation macro-F1 kept in ``best.pt``."""

    def __init__(self, cfg: TrainConfig, run: RunStart, model: torch.nn.Module):
        super().__init__(model)
        self.cfg, self.run, self.n = cfg, run, run.contract.num_classes
        self.loss_w = loss_weights(cfg, run.data, self.n, run.device)
        self.best = -1.0
        self.teacher = Teacher.load(cfg.distill_teacher, output_count(cfg, self.n), cfg.distill_views,
                                    run.precision, run.device) if cfg.distill_teacher else None
        self.pool = semi_pool(cfg, run.data, np.random.default_rng([cfg.seed, 77])) if cfg.semi_weight else []
        self.taught = [0, 0]  # unlabeled images that taught / seen, this epoch

    def loader(self, epoch: int, stage: Stage) -> torch.utils.data.DataLoader | WithUnlabeled:
        probing = stage.name == PROBE
        set_backbone_trainable(self.net, not probing)
        self.net.train()
        if probing:  # a linear probe keeps the backbone's BatchNorm statistics too
            for m in self.net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eval()
        plan = epoch_plan(self.run.data, self.cfg, np.random.default_rng([self.cfg.seed, epoch]), self.n)
        labelled = _loader(self.run.data, self.cfg, self.run.contract, plan, epoch)
        if not self.pool or probing:
            return labelled
        self.taught = [0, 0]
        return WithUnlabeled(labelled, self.pool, self.cfg, self.run.contract, epoch)

    def loss(self, batch, epoch: int, step: int) -> tuple[torch.Tensor, int]:
        if isinstance(batch, Paired):
            loss, n = self._labelled_loss(batch.labelled, epoch, step)
            return loss + self.cfg.semi_weight * self._unlabeled_loss(batch.weak, batch.strong), n
        return self._labelled_loss(batch, epoch, step)

    def _unlabeled_loss(self, weak: torch.Tensor, strong: torch.Tensor) -> torch.Tensor:
        device, precision = self.run.device, self.run.precision
        with torch.no_grad():
            (weak_logits,) = precision.forward(self.net, [weak.to(device)], device)
        (strong_logits,) = precision.forward(self.net, [strong.to(device)], device)
        loss, mask = fixmatch_loss(strong_logits, weak_logits, self.cfg.semi_threshold)
        self.taught[0] += int(mask.sum())
        self.taught[1] += len(mask)
        return loss

    def _labelled_loss(self, batch, epoch: int, step: int) -> tuple[torch.Tensor, int]:
        cfg = self.cfg
        xb, y, is_other = (t.to(self.run.device) for t in batch)
        known = ~is_other
        mix_rng = np.random.default_rng([cfg.seed, epoch, step, 7])
        x_known, partner, lam = mix_batch(xb[known], mix_rng, cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mix_p)
        if partner is not None:
            xb = xb.clone()
            xb[known] = x_known
        (logits,) = self.run.precision.forward(self.net, [xb], self.run.device)
        loss = logits.new_zeros(())
        if known.any():
            yk = y[known]
            loss = loss + mixed_known_loss(logits[known], yk, None if partner is None else yk[partner], lam,
                                           weight=self.loss_w, label_smoothing=cfg.label_smoothing,
                                           focal_gamma=cfg.focal_gamma)
        if is_other.any():
            loss = loss + cfg.outlier_weight * outlier_loss(logits[is_other], cfg.outlier_mode, self.n)
        if self.teacher is not None:
            soft = distill_loss(logits, self.teacher.logits(xb), cfg.distill_temperature)
            loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * soft
        return loss, len(y)

    def evaluate(self) -> dict:
        return validate(self.net, self.run.data, self.n)

    def row(self, r: EpochResult) -> dict:
        semi = {"semi_taught": self.taught[0] / self.taught[1]} if self.taught[1] else {}
        return {"epoch": r.epoch + 1, "probe": r.stage.name == PROBE, "train_loss": r.loss,
                "elapsed_s": r.elapsed_s, "lr": r.lr, **r.metrics, **semi}

    def state(self) -> dict:
        return dict(model=self.net.state_dict(), config=json.loads(self.cfg.to_json()),
                    contract=self.run.contract.to_metadata(), best=self.best)

    def load_state(self, ck: dict) -> None:
        self.net.load_state_dict(ck["model"])
        self.best = ck["best"]

    def save(self, out: Path, state: dict) -> None:
        """``best.pt`` (no optimiser or scaler) when validation macro-F1 improved; ``history.json``."""
        f1 = state["history"][-1]["val_macro_f1"]
        if f1 > self.best:
            self.best = state["best"] = f1
            checkpoint.save(out / "best.pt", **{k: v for k, v in state.items() if k not in ("optimizer", "scaler")})
        (out / "history.json").write_text(json.dumps(state["history"], indent=1) + "\n")


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, cache_dir: str | None = "runs/cache",
          progress: bool = True) -> Path:
    """Run (or continue) training; returns the path of the best checkpoint."""
    run = start_run(cfg, out_dir, cache_dir)
    model = build_model(output_count(cfg, run.contract.num_classes), cfg.arch)
    if cfg.init:
        left = load_init(model, cfg.init)
        print(f"init from {cfg.init}; left at random init: {left}")
    task = Supervised(cfg, run, run.precision.place(model, run.device))
    fit(task, stages(cfg), run.out, run.device, run.precision, cfg.weight_decay, resume, progress)
    return run.out / "best.pt"


def build_parser() -> argparse.ArgumentParser:
    p = run_parser(__doc__.splitlines()[0], "training/configs/default.json", Supervised.checkpoint_name)
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
