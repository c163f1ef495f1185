"""Self-supervised pretraining once per CV fold: ``make cv-pretrain ARM=ssl`` (issue 20, lever 4).

A backbone pretrained on the HiRISE crops must not have seen a fold's test images, or the arm fine-tuned from it
would be scored on images it learned from. So it is pretrained per fold, on that fold's split (its training and
validation sources, ``ssl_splits``, plus the raster crops), with the folds every arm shares (same data, k, seed
and pinned split). Each fold is resumable (``ssl_last.pt``) and bounded by ``ssl_time_budget_min``; a finished
fold (``backbone.pt``) is skipped. The fine-tuning arm names the backbone with ``{fold}`` in ``init``
(``training/configs/cv_ssl.json``: ``runs/cv/ssl/fold{fold}/backbone.pt``), which :func:`training.cv.fold_config`
fills in, so fold k's student starts from fold k's backbone.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .config import TrainConfig, config_from_args
from .cv import ArmMismatch, fold_parser, prepare_arm, prepare_fold
from .cv_splits import PINNED_SPLIT, pinned_split
from .rundata import CACHE_DIR

BACKBONE = "backbone.pt"


def pretrain_folds(cfg: TrainConfig, out: Path, k: int = 5, only: int | None = None, seed: int = 0,
                   pin: str = str(PINNED_SPLIT), cache_dir: str | None = CACHE_DIR,
                   progress: bool = False) -> list[Path]:
    """Pretrain every fold (or fold ``only``) into ``out/fold<i>``; returns the backbones written so far."""
    from .pretrain import pretrain

    if only is not None and not 0 <= only < k:
        raise ValueError(f"--fold {only} is not one of the {k} folds (0..{k - 1})")
    records, folds = prepare_arm(cfg, out, k, seed, pin, BACKBONE)
    for fold in range(k) if only is None else [only]:
        fold_dir = out / f"fold{fold}"
        if (fold_dir / BACKBONE).is_file():
            print(f"fold {fold}: pretrained, skipped", flush=True)
            continue
        print(f"== pretraining fold {fold}/{k - 1} of '{out.name}'", flush=True)
        fcfg = prepare_fold(cfg, records, folds, fold, out, k, pinned_split(pin))
        pretrain(fcfg, fold_dir, resume=(fold_dir / "ssl_last.pt").is_file(), cache_dir=cache_dir,
                 progress=progress)
    return [p for p in (out / f"fold{i}" / BACKBONE for i in range(k)) if p.is_file()]


def main(argv: list[str] | None = None) -> int:
    p = fold_parser(__doc__.splitlines()[0], "training/configs/pretrain.json",
                    "the pretraining arm's folder, e.g. runs/cv/ssl")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    cfg = config_from_args(a, split_file="", **dict(a.set))
    try:
        done = pretrain_folds(cfg, Path(a.out), a.folds, a.fold, a.seed, a.pin, progress=a.progress)
    except (ArmMismatch, FileNotFoundError) as exc:
        print(f"training.cv_pretrain: {exc}", file=sys.stderr)
        return 2
    print(f"{len(done)} of {a.folds} folds pretrained: {', '.join(str(d) for d in done)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
