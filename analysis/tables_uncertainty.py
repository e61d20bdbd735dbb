"""The uncertainty tables beside Table 1: ``pies_uncertainty`` (per pruned cell: the PIE count with its
bootstrap interval, the count at equal population sizes, ``h`` vs ``h`` models beside the noise floor
of its dense population) and ``oneshot_pairs`` (One-Shot children vs their dense parents: the paired
accuracy change)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis.pairs import CellPairs
from analysis.runs import Setting, Study
from analysis.tables_render import DASH, Record, Table, _key, _render, _setting_key, fmt, model_mean_std
from analysis.uncertainty import CellStats, StudyStats


def pies_uncertainty(study: Study, stats: StudyStats) -> Table:
    """Per pruned cell: is its PIE count more than the noise of a finite population of models?"""
    records: list[Record] = []
    for setting in sorted(stats.cells, key=_setting_key):
        cell = stats.cells[setting]
        records.append(
            {
                **_key(setting), "n_dense": cell.n_dense, "n_pruned": cell.n_pruned, "pies": int(cell.pies.estimate),
                "pies_low": cell.pies.low, "pies_high": cell.pies.high,
                "pies_equal_n": None if cell.matched is None else cell.matched.mean,
                "equal_n": None if cell.matched is None else cell.matched.size,
                "half": None if cell.half is None else cell.half.size,
                "pies_half_mean": None if cell.half is None else cell.half.mean,
                "pies_half_min": None if cell.half is None else cell.half.low,
                "pies_half_max": None if cell.half is None else cell.half.high,
                "noise_floor_mean": None if cell.floor is None else cell.floor.mean,
                "noise_floor_min": None if cell.floor is None else cell.floor.low,
                "noise_floor_max": None if cell.floor is None else cell.floor.high,
                "above_floor": None if cell.above_floor is None else bool(cell.above_floor),
                "_setting": setting, "_cell": cell,
            }
        )  # fmt: skip

    def row(r: Record) -> list[str]:
        cell: CellStats = r["_cell"]
        if cell.floor is None or cell.half is None:
            half = floor = ratio = DASH
            verdict = "no floor (dense < 4 models)"
        else:
            half = f"{cell.half.fmt()} (h={cell.half.size})"
            floor = cell.floor.fmt()
            q = cell.floor_ratio
            ratio = DASH if q is None or not math.isfinite(q) else f"×{q:.1f}"
            if q is not None and q == float("inf"):
                ratio = "∞ (floor 0)"
            verdict = "above the floor" if cell.above_floor else "within the floor's range: noise"
        matched = DASH if cell.matched is None else f"{cell.matched.fmt()} at {cell.matched.size}/{cell.matched.size}"
        return [r["_setting"].label(dataset=False), f"{cell.n_dense} / {cell.n_pruned}", cell.pies.fmt(0), matched, half, floor, ratio, verdict]

    return _render(
        "pies_uncertainty",
        "PIE counts against the noise floor",
        (
            f"PIEs [95% bootstrap interval over models, {stats.n_boot} resamples]; 'at equal size' = both populations "
            f"subsampled to the smaller one (mean (min–max) over {stats.n_splits} draws); 'h vs h' = PIEs of h pruned models "
            f"against one random half (h models) of the dense population, and the noise floor = that half against the other "
            f"half, mean (min–max) over the same {stats.n_splits} splits — the like-for-like comparison. 'above the floor' = "
            "the pruned mean exceeds the floor's maximum; a PIE count means something only well above the floor."
        ),
        [
            "dataset", "method", "pruning", "sparsity", "n_dense", "n_pruned", "pies", "pies_low", "pies_high",
            "pies_equal_n", "equal_n", "half", "pies_half_mean", "pies_half_min", "pies_half_max",
            "noise_floor_mean", "noise_floor_min", "noise_floor_max", "above_floor",
        ],  # fmt: skip
        records,
        header=lambda dataset, _: [
            "setting", "n dense / pruned", "PIEs [95% CI]", "at equal size", "h vs h: pruned", "h vs h: noise floor",
            "pruned / floor", "verdict",
        ],  # fmt: skip
        row=row,
    )


def oneshot_pairs(pairs: dict[Setting, CellPairs], *, show: Any = str) -> Table:
    """One-Shot children vs their dense parents: the paired accuracy change child − parent per cell."""
    records: list[Record] = []
    for setting in sorted(pairs, key=_setting_key):
        cell = pairs[setting]
        child = np.array([c.accuracy for c, _ in cell.pairs]) if cell.pairs else np.zeros(0)
        parent = np.array([p.accuracy for _, p in cell.pairs]) if cell.pairs else np.zeros(0)
        child_mean, child_std = model_mean_std(child) if len(child) else (None, None)
        parent_mean, parent_std = model_mean_std(parent) if len(parent) else (None, None)
        records.append(
            {
                **_key(setting), "n_pairs": len(cell.pairs), "n_children": len(cell.children),
                "seeds": [c.seed for c, _ in cell.pairs],
                "deltas": [f"{d:.4f}" for d in cell.deltas],
                "child_acc_mean": child_mean, "parent_acc_mean": parent_mean,
                "delta_mean": None if cell.delta is None else cell.delta.estimate,
                "delta_low": None if cell.delta is None else cell.delta.low,
                "delta_high": None if cell.delta is None else cell.delta.high,
                "parents": [show(p.path) for _, p in cell.pairs],
                "unpaired": [show(c.path) for c, _ in cell.unpaired],
                "_setting": setting, "_cell": cell, "_child_acc_std": child_std, "_parent_acc_std": parent_std,
            }
        )  # fmt: skip

    def row(r: Record) -> list[str]:
        cell: CellPairs = r["_cell"]
        if cell.pairs:
            assert cell.delta is not None
            cells = [fmt(r["child_acc_mean"], r["_child_acc_std"]), fmt(r["parent_acc_mean"], r["_parent_acc_std"]), cell.delta.fmt(signed=True)]
        else:
            cells = [DASH, DASH, DASH]
        return [r["_setting"].label(dataset=False), f"{r['n_pairs']} of {r['n_children']}", *cells, str(len(r["unpaired"]))]

    moved = sum(c.moved for c in pairs.values())
    moved_note = (
        f"{moved} pair(s) found by the parent's run id and seed: the parent folder the child recorded is not loaded "
        "(run folders copied or downloaded elsewhere)"
    )
    return _render(
        "oneshot_pairs",
        "One-Shot children vs their dense parents",
        (
            "each One-Shot child (run.json parent_run) paired with its dense parent among the loaded runs; Δ = child − "
            "parent test accuracy in points (both from their per-sample files), mean over the pairs with a 95% bootstrap "
            "interval over pairs; child and parent accuracy mean ± std over the pairs."
        ),
        ["dataset", "method", "pruning", "sparsity", "n_pairs", "n_children", "seeds", "deltas",
         "child_acc_mean", "parent_acc_mean", "delta_mean", "delta_low", "delta_high", "parents", "unpaired"],  # fmt: skip
        records,
        header=lambda dataset, _: ["setting", "pairs", "child acc (%)", "parent acc (%)", "Δ child − parent [95% CI]", "unpaired children"],
        row=row,
        notes=lambda dataset, _: [moved_note] if moved else [],
    )
