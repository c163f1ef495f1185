"""Grouped k-fold cross-validation of one training config (an arm), and paired comparison of two arms.

    python -m training.cv --config training/configs/default.json --folds 5 [--fold i] --out runs/cv/ARM
    python -m training.cv compare runs/cv/A runs/cv/B [--finished-only]
    python -m training.cv summary runs/cv/A [--finished-only]

Why: an arm chosen on the test split it is then scored on looks better than it is. Here every source image is
a test image exactly once (:mod:`training.cv_splits`: folds by source image across v3 and v1, stratified, fold 0
the shipped test split), each fold trains one model through the single training loop (:func:`training.train.
train`), takes its checkpoint (``last.pt`` as the shipped path exports, or ``best.pt``: early stopping) and its
calibration from a validation split carved from its own training sources, and is scored on its fold only.
Choices are made on the pooled figures and their paired differences, with 95 % intervals over source images
(:mod:`training.cv_report`).

Resumable: a fold with ``predictions.csv`` is done and skipped; a fold with ``last.pt`` continues training from
it. The arm folder records its folds and its config (``folds.json``, ``arm.json``) and refuses another. ``--fold
i`` runs one fold (machines can share the folds of an arm); the summary is written once every fold is done
(``summary --finished-only``: the folds done so far, for a look at a running arm).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from .config import TrainConfig, config_from_args
from .cv_report import PREDICTIONS, compare_arms, markdown, summarise, write_predictions
from .cv_splits import (PINNED_SPLIT, assign_folds, check_folds, fold_assignment, fold_splits, pinned_split,
                        pinned_test_sources, read_folds, write_folds)
from .dataset import Record, load_all
from .rundata import CACHE_DIR
from .splits import write_split

#: Config keys that change how fast a fold trains, not what it learns: a rerun may set them differently.
RUNTIME_KEYS = ("out_dir", "loader_workers", "num_threads", "data_root", "v1_root")
#: The checkpoint scored (the shipped path scores and exports ``last.pt``; ``best.pt`` is early stopping on
#: validation macro-F1).
CHECKPOINTS = ("last.pt", "best.pt")


class ArmMismatch(ValueError):
    """An arm folder was made with other folds or another config than the command now asks for."""


def val_share(cfg: TrainConfig) -> float:
    """The validation share inside the training folds, from the config's train/val fractions."""
    train, val, _ = cfg.split_fractions
    return val / (train + val)


def _manifest(cfg: TrainConfig, checkpoint: str) -> dict[str, Any]:
    """What makes two runs of an arm the same arm: the config (less its runtime keys) and the checkpoint scored."""
    doc = json.loads(cfg.to_json())
    return {"config": {k: v for k, v in doc.items() if k not in RUNTIME_KEYS}, "checkpoint": checkpoint}


def prepare_arm(cfg: TrainConfig, arm: Path, k: int, seed: int, pin: str, checkpoint: str
                ) -> tuple[list[Record], dict[str, int]]:
    """The arm's records and folds; writes ``folds.json`` and ``arm.json`` the first time, refuses a change."""
    records = load_all(cfg.data_root, cfg.v1_root, cfg.use_v1, cfg.max_images)
    folds = assign_folds(records, k, seed, pinned_test_sources(pin))
    check_folds(records, folds, k)
    arm.mkdir(parents=True, exist_ok=True)
    folds_file, arm_file = arm / "folds.json", arm / "arm.json"
    if folds_file.is_file() and read_folds(folds_file) != folds:
        raise ArmMismatch(f"'{arm}' holds folds made from other data or another --folds/--seed/--pin: use another "
                          "--out, or the options it was made with (see its folds.json)")
    want = _manifest(cfg, checkpoint)
    if arm_file.is_file():
        doc = json.loads(arm_file.read_text())
        have = _manifest(TrainConfig.from_dict(doc["config"]), doc["checkpoint"])
        changed = sorted(key for key in set(want["config"]) | set(have["config"])
                         if want["config"].get(key) != have["config"].get(key))
        changed += ["checkpoint"] if want["checkpoint"] != have["checkpoint"] else []
        if changed:
            raise ArmMismatch(f"'{arm}' was made with another config or checkpoint (differs in {changed}): use "
                              "another --out for another arm")
    else:
        write_folds(folds_file, records, folds, k, seed, str(pin or ""))
        arm_file.write_text(json.dumps({"checkpoint": checkpoint, "config": json.loads(cfg.to_json())}, indent=1)
                            + "\n")
    return records, folds


#: In an arm's ``init`` and ``distill_teacher``, replaced by the fold number (:func:`fold_config`).
FOLD_FIELD = "{fold}"


def fold_config(cfg: TrainConfig, fold_dir: Path, k: int, fold: int) -> TrainConfig:
    """The arm's config for one fold: its split file, its nominal fractions, its folder, and the fold's own
    ``init`` backbone and distillation teacher (``{fold}`` in their paths: weights from another fold have seen
    this one's test sources)."""
    if cfg.distill_teacher and FOLD_FIELD not in cfg.distill_teacher:
        raise ValueError(f"distill_teacher '{cfg.distill_teacher}' is one file for every fold, so it has seen each "
                         "fold's test sources; name the teacher arm's folds, e.g. "
                         f"runs/cv/v110/fold{FOLD_FIELD}/last.pt")
    v = val_share(cfg)
    fractions = ((1 - 1 / k) * (1 - v), (1 - 1 / k) * v, 1 / k)
    return dataclasses.replace(cfg, split_file=str(fold_dir / "split.json"), split_fractions=fractions,
                               out_dir=str(fold_dir), init=cfg.init.replace(FOLD_FIELD, str(fold)),
                               distill_teacher=cfg.distill_teacher.replace(FOLD_FIELD, str(fold)))


def prepare_fold(cfg: TrainConfig, records: list[Record], folds: dict[str, int], fold: int, arm: Path, k: int,
                 pinned: dict[str, str] | None = None) -> TrainConfig:
    """The fold's folder and ``split.json`` (written once), and its config."""
    fold_dir = arm / f"fold{fold}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    fcfg = fold_config(cfg, fold_dir, k, fold)
    if not (fold_dir / "split.json").is_file():
        assignment = fold_assignment(records, folds, fold, val_share(cfg), pinned)
        write_split(fold_dir / "split.json", assignment, fold_splits(records, assignment), fcfg.split_fractions)
    return fcfg


def run_fold(cfg: TrainConfig, records: list[Record], folds: dict[str, int], fold: int, arm: Path, k: int,
             checkpoint: str = "last.pt", cache_dir: str | None = CACHE_DIR, progress: bool = False,
             pinned: dict[str, str] | None = None) -> Path:
    """Train, calibrate and score one fold (each step skipped when its output exists); returns its folder."""
    from .calibrate import calibrate
    from .train import train

    fold_dir = arm / f"fold{fold}"
    if (fold_dir / PREDICTIONS).is_file():
        print(f"fold {fold}: done, skipped", flush=True)
        return fold_dir
    fcfg = prepare_fold(cfg, records, folds, fold, arm, k, pinned)
    if not (fold_dir / "trained.json").is_file():
        t0 = time.time()
        train(fcfg, fold_dir, resume=(fold_dir / "last.pt").is_file(), cache_dir=cache_dir, progress=progress)
        (fold_dir / "trained.json").write_text(json.dumps({"wall_s": round(time.time() - t0, 1)}) + "\n")
    cal = fold_dir / "calibration.json"
    if not cal.is_file() or json.loads(cal.read_text())["checkpoint"] != checkpoint:
        calibrate(fold_dir, checkpoint, cache_dir=cache_dir)
    score_fold(fold_dir, checkpoint, cache_dir)
    print(f"fold {fold}: done", flush=True)
    return fold_dir


def score_fold(fold_dir: Path, checkpoint: str, cache_dir: str | None) -> None:
    """The fold's test images through its calibrated checkpoint -> ``predictions.csv``."""
    from . import checkpoint as ckpt
    from .inference import logits_for
    from .model import class_probs
    from .rundata import load_run_data

    model, cfg, contract, _ = ckpt.load_model(fold_dir / checkpoint)
    data = load_run_data(cfg, contract, split_file=str(fold_dir / "split.json"), cache_dir=cache_dir)
    test = data.splits["test"]
    temperature = json.loads((fold_dir / "calibration.json").read_text())["temperature"]
    probs = class_probs(logits_for(model, test, data.cache), temperature, contract.num_classes)
    write_predictions(fold_dir / PREDICTIONS, test, probs)


def run_arm(cfg: TrainConfig, arm: Path, k: int = 5, only: int | None = None, seed: int = 0,
            pin: str = str(PINNED_SPLIT), checkpoint: str = "last.pt", cache_dir: str | None = CACHE_DIR,
            draws: int = 2000, progress: bool = False) -> dict | None:
    """Every fold (or fold ``only``), then the summary once all folds are done (returned; None before)."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
    if only is not None and not 0 <= only < k:
        raise ValueError(f"--fold {only} is not one of the {k} folds (0..{k - 1})")
    records, folds = prepare_arm(cfg, arm, k, seed, pin, checkpoint)
    for fold in range(k) if only is None else [only]:
        print(f"== fold {fold}/{k - 1} of '{arm.name}'", flush=True)
        run_fold(cfg, records, folds, fold, arm, k, checkpoint, cache_dir, progress, pinned_split(pin))
    if not all((arm / f"fold{i}" / PREDICTIONS).is_file() for i in range(k)):
        print("summary waits for the other folds", flush=True)
        return None
    return summarise(arm, draws)


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with a JSON value (a bare word is a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def fold_parser(description: str, config: str, out_help: str) -> argparse.ArgumentParser:
    """The options every per-fold command shares (config, folder, folds, data roots, overrides, progress)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", default=config)
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold", type=int, help="run this fold only (0-based)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    p.add_argument("--pin", default=str(PINNED_SPLIT), help="split file whose test sources are fold 0 ('' = none)")
    p.add_argument("--data-root", help="HiRISE map-proj-v3 root (overrides the config)")
    p.add_argument("--v1-root", help="HiRISE map-proj v1 root (overrides the config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                   help="override a config key (JSON value), e.g. --set loader_workers=8")
    p.add_argument("--progress", action="store_true")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = fold_parser(__doc__.splitlines()[0], "training/configs/default.json", "the arm's folder, e.g. runs/cv/default")
    p.add_argument("--checkpoint", default="last.pt", choices=CHECKPOINTS)
    p.add_argument("--draws", type=int, default=2000, help="bootstrap draws of the summary")
    return p


def compare_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m training.cv compare",
                                description="Paired difference B - A of two finished arms on the same folds")
    p.add_argument("reference", help="arm A, e.g. runs/cv/v110")
    p.add_argument("other", help="arm B")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--out", help="write the table (markdown) here and the figures beside it (.json)")
    p.add_argument("--finished-only", action="store_true",
                   help="pool only the folds both arms have finished (a first look, said in the table)")
    a = p.parse_args(argv)
    rows, table = compare_arms(Path(a.reference), Path(a.other), a.draws, a.finished_only)
    print(table)
    if a.out:
        Path(a.out).write_text(table)
        Path(a.out).with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def summary_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m training.cv summary",
                                description="Summary of an arm's folds, written beside them (summary.md)")
    p.add_argument("arm", help="the arm's folder, e.g. runs/cv/v110")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--finished-only", action="store_true",
                   help="the folds finished so far, as summary_partial.md (a look at a running arm)")
    a = p.parse_args(argv)
    print(markdown(summarise(Path(a.arm), a.draws, a.finished_only)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when done, 2 with one line naming the problem (another arm's folder, an unfinished arm)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["compare"]:
            return compare_main(argv[1:])
        if argv[:1] == ["summary"]:
            return summary_main(argv[1:])
        a = build_parser().parse_args(argv)
        cfg = config_from_args(a, **dict(a.set))
        result = run_arm(cfg, Path(a.out), a.folds, a.fold, a.seed, a.pin, a.checkpoint, draws=a.draws,
                         progress=a.progress)
    except (ArmMismatch, FileNotFoundError) as exc:
        print(f"training.cv: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
