"""Accuracy-vs-epochs curves of dense runs, read from their run folders: what a study's recipe is chosen by.

For every run folder under the given roots (``run.json`` + ``csv/metrics.csv``; validation on the test set every
epoch) it reads, per epoch:

* Sup: ``val/acc`` (the model's own classifier on the test set);
* SCL and the other two-phase methods: ``probe/val_acc`` during the contrastive epochs (the online linear probe on
  detached features, trained alongside: a lower bound of what a linear head reaches on the encoder of that
  epoch), then ``val/acc`` of the linear head during the head epochs;

and the run's final ``test/acc`` (``run.json``), plus the seconds each epoch took (``train/epoch_time_s``).
It writes ``curves.csv`` (one row per run and epoch), ``curves.md`` (per run: the final accuracy, the plateau —
the mean of the last three points of its curve — and the first epoch within 1 point of it, with the seconds
spent up to then) and ``curves.png``.

    python scripts/convergence_curves.py studies/fashion_mnist_mature/recipes --out studies/fashion_mnist_mature/curves
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WITHIN = 1.0  # points of accuracy: "near the plateau"


@dataclass
class Curve:
    """One run's per-epoch accuracies (percent) and epoch times (seconds)."""

    name: str
    method: str
    epochs: list[int] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)
    acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    test_acc: float | None = None
    status: str = ""

    def contrastive(self) -> list[tuple[int, float, float]]:
        """(epoch, accuracy, cumulative seconds) of the curve the recipe is judged by: val/acc for a one-phase
        method, the probe's during the representation-learning epochs of a two-phase one."""
        key = "train" if self.method == "sup" else "contrastive"
        out, total = [], 0.0
        for e, p, a, s in zip(self.epochs, self.phase, self.acc, self.seconds):
            total += s if math.isfinite(s) else 0.0
            if p == key:
                out.append((e, a, total))
        return out

    def plateau(self) -> tuple[float, int, float] | None:
        """(plateau: mean of the last three points, first epoch within WITHIN points of it, seconds up to it)."""
        points = self.contrastive()
        if len(points) < 3:
            return None
        level = sum(a for _, a, _ in points[-3:]) / 3
        epoch, seconds = next((e, s) for e, a, s in points if a >= level - WITHIN)
        return level, epoch, seconds


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_curve(run_dir: Path) -> Curve | None:
    """The curve of one run folder (``None`` if it has no ``run.json`` or no metrics)."""
    try:
        summary = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    metrics = run_dir / "csv" / "metrics.csv"
    if not metrics.is_file():
        return None
    method = str(summary.get("method", "?"))
    head_epochs = int(summary.get("head_epochs") or 0)
    max_epochs = int(summary.get("max_epochs") or 0)
    by_epoch: dict[int, dict[str, float]] = {}
    with metrics.open(newline="") as fh:
        for row in csv.DictReader(fh):
            epoch = _float(row.get("epoch"))
            if not math.isfinite(epoch):
                continue
            slot = by_epoch.setdefault(int(epoch), {})
            for key in ("val/acc", "probe/val_acc", "train/epoch_time_s"):
                value = _float(row.get(key))
                if math.isfinite(value):
                    slot[key] = value
    curve = Curve(name=run_dir.parent.name, method=method, status=str(summary.get("status", "")))
    test = summary.get("test_acc")
    curve.test_acc = 100.0 * float(test) if test is not None else None
    for epoch in sorted(by_epoch):
        slot = by_epoch[epoch]
        if method == "sup":
            phase, key = "train", "val/acc"
        elif epoch < max_epochs - head_epochs:
            phase, key = "contrastive", "probe/val_acc"
        else:
            phase, key = "head", "val/acc"
        if key not in slot:
            continue
        curve.epochs.append(epoch + 1)  # epochs trained when the value was measured
        curve.phase.append(phase)
        curve.acc.append(100.0 * slot[key])
        curve.seconds.append(slot.get("train/epoch_time_s", math.nan))
    return curve


def find_runs(roots: list[Path]) -> list[Path]:
    return sorted({p.parent for root in roots for p in Path(root).rglob("run.json")})


def write_outputs(curves: list[Curve], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "curves.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["run", "method", "epoch", "phase", "accuracy_pct", "epoch_seconds"])
        for c in curves:
            for row in zip(c.epochs, c.phase, c.acc, c.seconds):
                writer.writerow([c.name, c.method, row[0], row[1], f"{row[2]:.2f}", f"{row[3]:.1f}"])
    lines = [
        "| run | method | status | final test acc (%) | plateau (%) | first epoch within 1 point | its training time (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in curves:
        p = c.plateau()
        test = f"{c.test_acc:.2f}" if c.test_acc is not None else "–"
        cells = (f"{p[0]:.2f}", str(p[1]), f"{p[2] / 60:.1f}") if p else ("–", "–", "–")
        lines.append(f"| {c.name} | {c.method} | {c.status} | {test} | " + " | ".join(cells) + " |")
    lines += ["", "Curve: Sup's val/acc; SCL's online linear probe (probe/val_acc) during the contrastive epochs, a lower",
              "bound of the linear head's accuracy; plateau = mean of the last three points of that curve."]  # fmt: skip
    (out / "curves.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for c in curves:
        xs = [e for e, p in zip(c.epochs, c.phase) if p != "head"]
        ys = [a for a, p in zip(c.acc, c.phase) if p != "head"]
        (line,) = ax.plot(xs, ys, marker="o", ms=3, label=f"{c.name}" + (" (probe)" if c.method != "sup" else ""))
        hx = [e for e, p in zip(c.epochs, c.phase) if p == "head"]
        hy = [a for a, p in zip(c.acc, c.phase) if p == "head"]
        if hx:
            ax.plot(hx, hy, marker="s", ms=4, ls="--", color=line.get_color())
        if c.test_acc is not None:
            ax.plot([max(c.epochs)], [c.test_acc], marker="*", ms=11, color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("test-set accuracy (%)")
    ax.set_title("Dense recipes: accuracy vs epochs (squares: linear head; star: final test acc)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, help="folders holding run folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for curves.csv, curves.md, curves.png")
    args = parser.parse_args(argv)
    curves = [c for c in (read_curve(p) for p in find_runs(args.roots)) if c is not None and c.epochs]
    if not curves:
        print(f"error: no run folder with per-epoch accuracies under {', '.join(map(str, args.roots))}", file=sys.stderr)
        return 2
    write_outputs(curves, args.out)
    print((args.out / "curves.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
