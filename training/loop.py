"""The epoch loop that training (:mod:`training.train`) and self-supervised pretraining (:mod:`training.pretrain`)
share: set-up, learning-rate schedule under a time budget, gradient scaling, per-epoch log, checkpoint and resume.

Why one loop: a fix to resuming, to the schedule or to mixed precision must reach both runs. A run supplies a
:class:`Task` (its batches, its loss, its evaluation, its log row and what its checkpoint holds besides the loop's
own state) and its :class:`Stage` list; :func:`fit` does the rest. The schedule is a function of the epoch, the
step and the elapsed time, so the checkpoint's ``epoch`` and ``elapsed_s`` are its whole state; each epoch's data
order and augmentation are seeded by (seed, epoch), so a resumed run draws what an uninterrupted one would have.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from planet_terrain_plugin.core.contract import ModelContract

from . import checkpoint
from .config import TrainConfig
from .precision import Precision, precision_for
from .rundata import RunData, load_run_data


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
    print(f"device {device}, {precision.describe()}")
    contract = cfg.base_contract()
    cfg.save(out / "config.json")
    data = load_run_data(cfg, contract, cache_dir=cache_dir, write_split_to=out / "split.json")
    return RunStart(out, device, precision, contract, data)


@dataclass(frozen=True)
class Stage:
    """Consecutive epochs under one learning-rate schedule: linear warm-up over the share ``warmup`` of the
    stage, then cosine decay to 0 at its end."""

    epochs: int
    lr: float
    warmup: float = 0.0
    #: Shown in the progress bar; the training log marks the "probe" stage.
    name: str = ""
    #: Minutes from the run's start (0 = none): past them the stage's schedule is compressed to end now
    #: rather than truncated, and the run stops after the epoch (``stop_mid_epoch``: after the step).
    budget_min: float = 0.0
    stop_mid_epoch: bool = False

    def budget_spent(self, elapsed_s: float) -> bool:
        return bool(self.budget_min) and elapsed_s >= self.budget_min * 60


def lr_at(progress: float, warmup: float, base: float) -> float:
    """Linear warm-up then cosine decay over a stage's progress (0..1)."""
    if progress < warmup:
        return base * (progress + 1e-3) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / max(1e-9, 1 - warmup))))


def stage_at(stages: list[Stage], epoch: int) -> tuple[Stage, int]:
    """The stage a run's epoch (0-based, counted over all stages) falls in, and the epoch within it."""
    for stage in stages:
        if epoch < stage.epochs:
            return stage, epoch
        epoch -= stage.epochs
    raise IndexError(f"epoch beyond the {sum(s.epochs for s in stages)} epochs of the stages")


@dataclass(frozen=True)
class EpochResult:
    """What the loop measured over one epoch, for the task's log row."""

    epoch: int
    stage: Stage
    loss: float
    images: int
    lr: float
    elapsed_s: float
    metrics: dict[str, Any] = field(default_factory=dict)


class Task:
    """What one kind of run supplies to :func:`fit`. ``net`` is the network the optimiser trains."""

    #: The run folder's file that ``--resume`` continues from.
    checkpoint_name = "last.pt"
    #: Progress-bar prefix.
    label = ""

    def __init__(self, net: torch.nn.Module):
        self.net = net

    def loader(self, epoch: int, stage: Stage) -> torch.utils.data.DataLoader:
        """The epoch's batches; also puts the networks in their training mode for the stage."""
        raise NotImplementedError

    def loss(self, batch: Any, epoch: int, step: int) -> tuple[torch.Tensor, int]:
        """The batch's float32 loss and its number of images."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Anything updated after each optimiser step (a momentum target)."""

    def evaluate(self) -> dict[str, Any]:
        """Measurements after each epoch, timed as part of it."""
        return {}

    def row(self, result: EpochResult) -> dict[str, Any]:
        """The epoch's line in the log and in the history."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """The checkpoint's entries besides the loop's own (optimizer, scaler, epoch, history, elapsed_s)."""
        raise NotImplementedError

    def load_state(self, ck: dict[str, Any]) -> None:
        """Restore what :meth:`state` saved."""
        raise NotImplementedError

    def save(self, out: Path, state: dict[str, Any]) -> None:
        """Files written each epoch before the checkpoint (may update ``state``)."""


@dataclass
class _Loop:
    """The optimiser, scaler and clock a :func:`fit` call threads through its epochs."""

    task: Task
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    t0: float
    progress: bool

    def set_lr(self, stage: Stage, stage_epoch: int, step: int, steps: int) -> None:
        frac = (stage_epoch + step / steps) / max(stage.epochs, 1)
        if stage.budget_min:  # a time budget compresses the schedule rather than truncating it
            frac = max(frac, (time.time() - self.t0) / (stage.budget_min * 60))
        for g in self.opt.param_groups:
            g["lr"] = lr_at(min(frac, 1.0), stage.warmup, stage.lr)


def train_one_epoch(loop: _Loop, epoch: int, stage: Stage, stage_epoch: int, desc: str) -> tuple[float, int, bool]:
    """One pass over the task's batches; returns (summed loss, images, stopped by the time budget)."""
    task, opt, scaler = loop.task, loop.opt, loop.scaler
    loader = task.loader(epoch, stage)
    steps = max(1, len(loader))
    it = enumerate(loader)
    if loop.progress:
        from tqdm import tqdm
        it = tqdm(it, total=len(loader), desc=desc, leave=False)
    run_loss, seen = 0.0, 0
    for step, batch in it:
        loop.set_lr(stage, stage_epoch, step, steps)
        loss, n = task.loss(batch, epoch, step)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        task.after_step()
        run_loss += float(loss.detach()) * n
        seen += n
        if loop.progress:
            it.set_postfix(loss=f"{run_loss / seen:.3f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
        if stage.stop_mid_epoch and stage.budget_spent(time.time() - loop.t0):
            return run_loss, seen, True
    return run_loss, seen, False


def _resume(loop: _Loop, last: Path) -> tuple[int, list[dict]]:
    """Restore the task, optimiser, scaler and clock from ``last``; returns (next epoch, history)."""
    ck = checkpoint.load(last)
    loop.task.load_state(ck)
    loop.opt.load_state_dict(ck["optimizer"])
    if ck.get("scaler"):  # absent from older checkpoints; empty where the scaler was disabled
        loop.scaler.load_state_dict(ck["scaler"])
    loop.t0 = time.time() - ck.get("elapsed_s", 0.0)
    print(f"resumed from {last} at epoch {ck['epoch'] + 1}")
    return ck["epoch"] + 1, ck["history"]


def fit(task: Task, stages: list[Stage], out: Path, device: torch.device, precision: Precision,
        weight_decay: float, resume: bool = False, progress: bool = True) -> list[dict]:
    """Train ``task.net`` through ``stages`` with AdamW (or continue from the task's checkpoint in ``out`` when
    ``resume``); each epoch logs a row, lets the task save its files and writes the checkpoint. Returns the
    history."""
    opt = torch.optim.AdamW(task.net.parameters(), lr=stages[-1].lr, weight_decay=weight_decay)
    loop = _Loop(task, opt, precision.make_scaler(device), time.time(), progress)
    last = out / task.checkpoint_name
    start, history = _resume(loop, last) if resume and last.is_file() else (0, [])
    total = sum(s.epochs for s in stages)
    for epoch in range(start, total):
        stage, stage_epoch = stage_at(stages, epoch)
        desc = f"{task.label}epoch {epoch + 1}/{total}{f' ({stage.name})' if stage.name else ''}"
        run_loss, seen, stopped = train_one_epoch(loop, epoch, stage, stage_epoch, desc)
        metrics = task.evaluate()
        elapsed = time.time() - loop.t0
        row = task.row(EpochResult(epoch, stage, run_loss / max(seen, 1), seen, opt.param_groups[0]["lr"], elapsed,
                                   metrics))
        history.append(row)
        print(json.dumps(row), flush=True)
        state = dict(task.state(), epoch=epoch, history=history, elapsed_s=elapsed, optimizer=opt.state_dict(),
                     scaler=loop.scaler.state_dict())
        task.save(out, state)
        checkpoint.save(last, **state)
        if stopped or stage.budget_spent(elapsed):
            print(f"time budget of {stage.budget_min} min reached {'in' if stopped else 'after'} epoch {epoch + 1}; "
                  "stopping")
            break
    return history
