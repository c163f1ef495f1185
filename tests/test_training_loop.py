"""The epoch loop training and pretraining share (training/loop.py), on a small real network and real tensors:
a run interrupted and resumed ends where an uninterrupted one does (weights, optimiser, loss scaler, history),
checkpoints written before the scaler was saved still resume, and the time budget stops a run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training import checkpoint
from training.loop import EpochResult, Stage, Task, fit, lr_at, stage_at
from training.precision import Precision

CPU = torch.device("cpu")
#: float32 with loss scaling switched on, so that the scaler has a state to lose.
SCALED = Precision(None, channels_last=False, grad_scaler=True)
STAGES = [Stage(1, 1e-2, 0.5, name="probe"), Stage(2, 5e-3, 0.5)]


class Interrupted(Exception):
    """Stands for a run killed between epochs."""


class Toy(Task):
    """Logistic regression on 32 fixed points, batches reshuffled each epoch by (seed, epoch)."""

    checkpoint_name = "toy_last.pt"

    def __init__(self, stop_at: int | None = None):
        torch.manual_seed(0)
        super().__init__(torch.nn.Linear(4, 2))
        rng = np.random.default_rng(0)
        self.x = torch.from_numpy(rng.normal(size=(32, 4)).astype(np.float32))
        self.y = torch.from_numpy((rng.random(32) > 0.5).astype(np.int64))
        self.stop_at = stop_at

    def loader(self, epoch: int, stage: Stage) -> torch.utils.data.DataLoader:
        if epoch == self.stop_at:
            raise Interrupted
        order = torch.from_numpy(np.random.default_rng([0, epoch]).permutation(32))
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.x[order], self.y[order]),
                                           batch_size=8)

    def loss(self, batch, epoch: int, step: int) -> tuple[torch.Tensor, int]:
        x, y = batch
        (logits,) = SCALED.forward(self.net, [x], CPU)
        return torch.nn.functional.cross_entropy(logits, y), len(y)

    def row(self, r: EpochResult) -> dict:
        return {"epoch": r.epoch + 1, "stage": r.stage.name, "loss": r.loss, "images": r.images, "lr": r.lr}

    def state(self) -> dict:
        return {"net": self.net.state_dict()}

    def load_state(self, ck: dict) -> None:
        self.net.load_state_dict(ck["net"])


def _fit(task: Toy, out: Path, stages=STAGES, resume: bool = False) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    return fit(task, stages, out, CPU, SCALED, weight_decay=0.01, resume=resume, progress=False)


def _same_run(a: Path, b: Path) -> None:
    ca, cb = checkpoint.load(a / Toy.checkpoint_name), checkpoint.load(b / Toy.checkpoint_name)
    for key in ("net", "optimizer"):
        flat_a, flat_b = _flatten(ca[key]), _flatten(cb[key])
        assert flat_a.keys() == flat_b.keys()
        for k, va in flat_a.items():
            vb = flat_b[k]
            assert torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb, (key, k)
    assert ca["scaler"] == cb["scaler"] and ca["epoch"] == cb["epoch"] and ca["history"] == cb["history"]


def _flatten(d, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out.update(_flatten(dict(enumerate(v)), f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    history = _fit(Toy(), whole)
    assert [(r["epoch"], r["stage"], r["images"]) for r in history] == [(1, "probe", 32), (2, "", 32), (3, "", 32)]
    with pytest.raises(Interrupted):
        _fit(Toy(stop_at=2), cut)  # killed after the first fine-tune epoch
    assert checkpoint.load(cut / Toy.checkpoint_name)["epoch"] == 1
    assert _fit(Toy(), cut, resume=True) == history
    _same_run(whole, cut)
    assert checkpoint.load(whole / Toy.checkpoint_name)["scaler"]["_growth_tracker"] == 12  # every step counted


def test_a_checkpoint_without_scaler_state_still_resumes(tmp_path):
    """Checkpoints written before the loop saved the loss scaler carry no "scaler" entry."""
    with pytest.raises(Interrupted):
        _fit(Toy(stop_at=1), tmp_path)
    path = tmp_path / Toy.checkpoint_name
    checkpoint.save(path, **{k: v for k, v in checkpoint.load(path).items() if k != "scaler"})
    history = _fit(Toy(), tmp_path, resume=True)
    assert [r["epoch"] for r in history] == [1, 2, 3]


def test_time_budget_stops_after_the_epoch_or_the_step(tmp_path, capsys):
    spent = 1e-9  # minutes: spent by the first step
    history = _fit(Toy(), tmp_path / "epoch", [Stage(3, 1e-2, budget_min=spent)])
    assert [r["images"] for r in history] == [32]
    assert history[0]["lr"] == 0.0  # the schedule is compressed to its end, not cut off
    history = _fit(Toy(), tmp_path / "step", [Stage(3, 1e-2, budget_min=spent, stop_mid_epoch=True)])
    assert [r["images"] for r in history] == [8]
    out = capsys.readouterr().out
    assert "reached after epoch 1; stopping" in out and "reached in epoch 1; stopping" in out


def test_schedule_warms_up_then_decays_within_each_stage():
    assert stage_at(STAGES, 0) == (STAGES[0], 0) and stage_at(STAGES, 2) == (STAGES[1], 1)
    with pytest.raises(IndexError):
        stage_at(STAGES, 3)
    assert lr_at(0.0, 0.5, 1.0) == pytest.approx(2e-3) and lr_at(0.5, 0.5, 1.0) == pytest.approx(1.0)
    assert lr_at(1.0, 0.5, 1.0) == pytest.approx(0.0, abs=1e-12) and lr_at(0.5, 0.0, 1.0) == pytest.approx(0.5)


def test_a_checkpoint_that_does_not_fit_says_so_and_leaves_no_partial_file(tmp_path):
    """A full disk makes torch.save fail with "unexpected pos"; the run must name the file and the room left, and
    not leave a partial .tmp behind. The child process's file-size limit is a real short write (EFBIG)."""
    import subprocess
    import sys

    child = f"""
import resource, signal, torch
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
from training import checkpoint
try:
    checkpoint.save({str(tmp_path / "best.pt")!r}, model={{"w": torch.zeros(1_000_000)}})
except OSError as e:
    print("OSError:", e)
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=120)
    assert "OSError:" in out.stdout and "best.pt" in out.stdout and "free" in out.stdout, out.stdout + out.stderr
    assert list(tmp_path.iterdir()) == []
