"""The ablation of the accuracy levers: one lever per arm, same start, same budget: ``python -m training.ablation``.

A spec (``training/configs/ablation.json``) names a base config and the arms. Each arm is one of:

- ``overrides``: a training run of the base config with these keys changed;
- ``pretrain``: self-supervised pretraining (:mod:`training.pretrain`) with these keys changed, whose backbone
  becomes the arm's ``init`` (probe, then fine-tune);
- ``members``: a deep ensemble (:mod:`training.ensemble`) of other arms;
- ``existing``: a run trained elsewhere (the previous default), scored the same way.

Every arm is calibrated on the validation split and scored on the grouped test split by the same code
(:mod:`training.calibrate`, :mod:`training.evaluate`); arms listed in ``tta`` are also scored with dihedral
test-time augmentation. Steps already done are skipped, so an interrupted ablation continues where it stopped.
Writes ``ablation.json`` and ``ablation.md`` (the model card's table) into the spec's ``runs_dir``, and
``significance.md`` (:mod:`training.significance`): each arm's figures with bootstrap intervals over the test
source images, and its paired difference from the reference arm, which says which differences are noise.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from . import significance
from .config import TrainConfig

#: Columns of the table: (heading, key in an arm's result row).
COLUMNS = (("macro-F1", "macro_f1"), ("ECE", "ece_after"), ("AUROC known/other", "auroc_known_vs_other"),
           ("known kept @90% other rejected", "known_coverage_at_90_other_rejected"),
           ("other rejected @val thr.", "other_rejected"), ("known kept @val thr.", "known_coverage"))
#: Passes of one ResNet-50 per image, for the inference-cost column.
TTA_VIEWS = 8


def arm_config(spec: dict, arm: dict, out: Path, key: str = "overrides") -> TrainConfig:
    """The base config with the arm's changes and its own output directory."""
    return TrainConfig.load(spec["base"], **{**arm.get(key, {}), "out_dir": str(out)})


def _done(path: Path) -> bool:
    return path.is_file()


def run_arm(spec: dict, arm: dict, runs_dir: Path, cache_dir: str | None, progress: bool) -> Path:
    """Train (or assemble) and score one arm; every step is skipped when its output exists."""
    from .calibrate import calibrate
    from .ensemble import combine, spread_report
    from .evaluate import evaluate
    from .pretrain import pretrain
    from .train import train

    run = runs_dir / arm["name"]
    if "existing" in arm:
        src = Path(arm["existing"])
        run.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "split.json"):
            shutil.copy2(src / name, run / name)
        if not (run / "last.pt").exists():
            os.symlink((src / "last.pt").resolve(), run / "last.pt")
    elif "members" in arm:
        if not _done(run / "last.pt"):
            combine([runs_dir / m for m in arm["members"]], run)
    else:
        if "pretrain" in arm:
            ssl_dir = runs_dir / (arm["name"] + "_pretrain")
            if not _done(ssl_dir / "pretrain.json"):
                pretrain(arm_config(spec, arm, ssl_dir, "pretrain"), ssl_dir, resume=(ssl_dir / "ssl_last.pt").is_file(),
                         cache_dir=cache_dir, progress=progress)
            arm = {**arm, "overrides": {**arm.get("overrides", {}), "init": str(ssl_dir / "backbone.pt")}}
        if not _done(run / "trained.json"):
            t0 = time.time()
            train(arm_config(spec, arm, run), run, resume=(run / "last.pt").is_file(), cache_dir=cache_dir,
                  progress=progress)
            (run / "trained.json").write_text(json.dumps({"wall_s": round(time.time() - t0, 1)}) + "\n")
    if not _done(run / "calibration.json"):
        calibrate(run, cache_dir=cache_dir)
    extras = arm["name"] in spec.get("tta", [])
    metrics = run / "metrics.json"
    if not _done(metrics) or (extras and "tta" not in json.loads(metrics.read_text())):
        evaluate(run, cache_dir=cache_dir, extras=extras)
    if "members" in arm and not _done(run / "spread.json"):
        spread_report(run, cache_dir=cache_dir)
    return run


def arm_rows(arm: dict, run: Path) -> list[dict]:
    """Table rows of an arm: as is, and with TTA when it was scored."""
    m = json.loads((run / "metrics.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    members = cfg.get("ensemble_size", 1)
    base = m["per_image"]["all"]
    rows = [{"arm": arm["name"], "lever": arm.get("lever", ""), "cost": members, **_figures(base)}]
    if "tta" in m:
        rows.append({"arm": arm["name"] + "+tta", "lever": arm.get("lever", "") + " + dihedral TTA",
                     "cost": members * TTA_VIEWS, **_figures(m["tta"])})
    spread = run / "spread.json"
    if spread.is_file():
        rows[0]["spread"] = json.loads(spread.read_text())
    pre = run.parent / (arm["name"] + "_pretrain") / "pretrain.json"
    if pre.is_file():
        rows[0]["pretrain"] = {k: v for k, v in json.loads(pre.read_text()).items() if k != "history"}
    return rows


def _figures(s: dict) -> dict:
    return {**{k: s.get(k) for _, k in COLUMNS},
            "recall": {name: v["recall"] for name, v in s["per_class"].items()}}


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown(rows: list[dict]) -> str:
    """The ablation table (with per-class recall) and the notes on pretraining and the ensemble's spread."""
    classes = list(rows[0]["recall"])
    head = ["arm", "lever"] + [h for h, _ in COLUMNS] + [f"recall {c}" for c in classes] + ["cost (ResNet-50 passes)"]
    out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        cells = [r["arm"], r["lever"]] + [_f(r[k]) for _, k in COLUMNS] + [_f(r["recall"][c]) for c in classes]
        out.append("| " + " | ".join(cells + [f"{r['cost']}x"]) + " |")
    notes = []
    for r in rows:
        if "pretrain" in r:
            p = r["pretrain"]
            before, after = p.get("probe_before", {}), p.get("probe_after", {})
            notes.append(f"- `{r['arm']}`: {p['method']} on {p['pool_images']} unlabeled images "
                         f"({p['pool_hirise']} HiRISE crops of the train/val splits, the rest raster crops); "
                         f"k-NN probe val macro-F1 {_f(before.get('knn_val_macro_f1'))} -> "
                         f"{_f(after.get('knn_val_macro_f1'))}, known/other AUROC "
                         f"{_f(before.get('knn_val_auroc_known_vs_other'))} -> "
                         f"{_f(after.get('knn_val_auroc_known_vs_other'))}.")
        if "spread" in r:
            a = r["spread"]["auroc_known_vs_other"]
            notes.append(f"- `{r['arm']}`: AUROC known/other by " + ", ".join(f"{k} {_f(v)}" for k, v in a.items())
                         + (": the spread would help abstention." if r["spread"]["spread_helps"]
                            else ": the members' spread does not separate \"other\" better than the top probability."))
    return "\n".join(out) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


def run_ablation(spec_path: str | Path, only: list[str] | None = None, cache_dir: str | None = "runs/cache",
                 progress: bool = False) -> list[dict]:
    spec = json.loads(Path(spec_path).read_text())
    runs_dir = Path(spec.get("runs_dir", "runs/ablation"))
    base = json.loads(Path(spec["base"]).read_text())
    starts = [base.get("init", "")] + [a["existing"] + "/last.pt" for a in spec["arms"] if "existing" in a]
    missing = [s for s in starts if s and not Path(s).is_file()]
    if missing:
        hint = spec.get("starts_hint", "run `make train` first")
        raise FileNotFoundError(f"the ablation starts from {', '.join(missing)}, which does not exist: {hint} "
                                "(or point the spec's base config 'init' at another run)")
    rows = []
    for arm in spec["arms"]:
        if only and arm["name"] not in only:
            continue
        print(f"== arm {arm['name']}: {arm.get('lever', '')}", flush=True)
        run = run_arm(spec, arm, runs_dir, cache_dir, progress)
        rows += arm_rows(arm, run)
    if not only:
        (runs_dir / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
        (runs_dir / "ablation.md").write_text(markdown(rows))
        write_significance(spec, runs_dir, cache_dir)
    return rows


def write_significance(spec: dict, runs_dir: Path, cache_dir: str | None) -> list[dict]:
    """``significance.md`` / ``.json``: every arm's figures with bootstrap intervals over the test source images,
    and its paired difference from the spec's ``reference`` arm (default: the first)."""
    names = [arm["name"] for arm in spec["arms"]]
    reference = spec.get("reference", names[0])
    preds = {name: significance.predictions_on_test(runs_dir / name, cache_dir) for name in names}
    rows = significance.compare(preds, reference, spec.get("bootstrap_draws", 2000))
    (runs_dir / "significance.json").write_text(json.dumps(rows, indent=1) + "\n")
    (runs_dir / "significance.md").write_text(significance.markdown(rows, reference))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="training/configs/ablation.json")
    p.add_argument("--only", nargs="*", help="run just these arms (the table is written only for a full run)")
    p.add_argument("--progress", action="store_true")
    a = p.parse_args(argv)
    rows = run_ablation(a.spec, a.only, progress=a.progress)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
