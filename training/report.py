"""Turn ``metrics.json`` (and the training history) into Markdown tables and small PNG plots.

Used for the run directory (``report.md``) and for the model card's figures; the PNGs are kept small
(low dpi, few colours) because they ship inside the plugin next to ``MODEL_CARD.md``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

PLOTS = ("confusion.png", "reliability.png", "risk_coverage.png", "scores.png", "training_curves.png")


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def headline_table(m: dict) -> str:
    """Main figures for each view of the test split."""
    cols = ["macro_f1", "accuracy", "ece_before", "ece_after", "other_rejected", "known_coverage",
            "accuracy_on_accepted", "auroc_known_vs_other", "aurc", "n_known", "n_other"]
    rows = ["| view | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for unit in ("per_image", "per_landmark"):
        for view, s in m[unit].items():
            rows.append(f"| {unit} / {view} | " + " | ".join(_fmt(s.get(c)) for c in cols) + " |")
    return "\n".join(rows)


def per_class_table(s: dict) -> str:
    rows = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, v in s["per_class"].items():
        rows.append(f"| {name} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | {v['support']} |")
    return "\n".join(rows)


def confusion_table(s: dict) -> str:
    labels = s["confusion_labels"]
    rows = ["| truth \\ decision | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for lab, row in zip(labels, s["confusion"]):
        rows.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(rows)


def extras_table(m: dict) -> str:
    cols = ["macro_f1", "accuracy", "ece_after", "other_rejected", "known_coverage", "auroc_known_vs_other"]
    rows = ["| condition | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    base = m["per_image"]["all"]
    rows.append("| as is | " + " | ".join(_fmt(base[c]) for c in cols) + " |")
    if "tta" in m:
        rows.append("| dihedral TTA (8 views) | " + " | ".join(_fmt(m["tta"][c]) for c in cols) + " |")
    for name, s in m.get("robustness", {}).items():
        rows.append(f"| {name} | " + " | ".join(_fmt(s[c]) for c in cols) + " |")
    return "\n".join(rows)


def plots(m: dict, history: list[dict] | None, out_dir: str | Path) -> list[Path]:
    """Write the PNGs; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    figures = [(_confusion, "confusion.png"), (_reliability, "reliability.png"), (_risk_coverage, "risk_coverage.png"),
               (_scores, "scores.png")] + ([(_training, "training_curves.png")] if history else [])
    for draw, name in figures:
        fig, ax = plt.subplots(figsize=(6, 5) if name == "confusion.png" else (5, 4))
        draw(ax, m, history)
        fig.tight_layout()
        fig.savefig(out / name, dpi=72)
        plt.close(fig)
        paths.append(out / name)
    return paths


def _confusion(ax, m: dict, _history) -> None:
    s = m["per_image"]["all"]
    cm = np.asarray(s["confusion"], float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    labels = s["confusion_labels"]
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("decision (with abstention)")
    ax.set_ylabel("truth")
    ax.set_title("Test confusion (per image), row-normalised colour")


def _reliability(ax, m: dict, _history) -> None:
    s = m["per_image"]["all"]
    for key, lab, ece in (("reliability_before", "T = 1", s["ece_before"]),
                          ("reliability_after", f"T = {m['temperature']:.2f}", s["ece_after"])):
        r = s["curves"][key]
        keep = np.asarray(r["count"]) > 0
        ax.plot(np.asarray(r["confidence"])[keep], np.asarray(r["accuracy"])[keep], "o-",
                label=f"{lab} (ECE {ece:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability, known-class test images")
    ax.legend(fontsize=8)


def _risk_coverage(ax, m: dict, _history) -> None:
    s = m["per_image"]["all"]
    rc = s["curves"]["risk_coverage"]
    ax.plot(rc["coverage"], rc["risk"])
    ax.axvline(s["known_coverage"], color="r", ls="--", lw=1, label=f"threshold {m['threshold']:.2f}")
    ax.set_xlabel("coverage (share of known images accepted)")
    ax.set_ylabel("risk (error rate among accepted)")
    ax.set_title(f"Risk-coverage (AURC {s['aurc']:.3f})")
    ax.legend(fontsize=8)


def _scores(ax, m: dict, _history) -> None:
    s = m["per_image"]["all"]
    bins = np.linspace(0, 1, 26)
    ax.hist(s["curves"]["known_top"], bins, alpha=0.6, density=True, label="known landforms")
    ax.hist(s["curves"]["other_top"], bins, alpha=0.6, density=True, label="'other' pool")
    ax.axvline(m["threshold"], color="r", ls="--", lw=1, label="threshold")
    ax.set_xlabel("calibrated top probability")
    ax.set_title(f"Known vs other (AUROC {s['auroc_known_vs_other']:.3f})")
    ax.legend(fontsize=8)


def _training(ax, _m: dict, history: list[dict]) -> None:
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], label="train loss")
    ax.plot(ep, [h["val_nll"] for h in history], label="val NLL (known)")
    ax2 = ax.twinx()
    ax2.plot(ep, [h["val_macro_f1"] for h in history], "g-", label="val macro-F1")
    ax.set_xlabel("epoch")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    ax.set_title("Training")


def markdown(m: dict) -> str:
    s = m["per_image"]["all"]
    parts = [
        f"Checkpoint `{m['checkpoint']}` after {m['epochs_trained']} epochs; temperature {m['temperature']:.3f}, "
        f"abstention threshold {m['threshold']:.3f}.",
        "### Headline (test split)", headline_table(m),
        "### Per class (test, per image, argmax without abstention; support in images)", per_class_table(s),
        "### Per class (test, per landmark; support in landmarks)", per_class_table(m["per_landmark"]["all"]),
        "### Confusion with abstention (test, per image)", confusion_table(s),
        "### TTA and robustness (test, per image)", extras_table(m) if ("tta" in m or "robustness" in m) else "n/a",
    ]
    if "tta" in m:
        parts.append(f"Dihedral TTA {'helps' if m['tta']['helps'] else 'does not help'} "
                     "(macro-F1 and AUROC compared with a single view).")
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/default")
    p.add_argument("--plots-to", help="folder for the PNGs (default: the run directory)")
    a = p.parse_args(argv)
    run = Path(a.run)
    m = json.loads((run / "metrics.json").read_text())
    hist_file = run / "history.json"
    history = json.loads(hist_file.read_text()) if hist_file.is_file() else None
    plots(m, history, a.plots_to or run)
    (run / "report.md").write_text(markdown(m))
    print(run / "report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
