"""The uncertainty tables beside Table 1: ``pies_uncertainty`` (per pruned cell: the PIEs of ``h``
pruned vs ``h`` dense models beside the noise floor of ``h`` vs ``h`` dense models, the excess with
its interval over models, the verdict) and ``oneshot_pairs`` (One-Shot children vs their dense
parents: the paired accuracy change)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis.pairs import CellPairs
from analysis.runs import Setting, Study
from analysis.stats import METHOD_TEXT
from analysis.tables_render import DASH, Record, Table, _key, _render, _setting_key, fmt, model_mean_std
from analysis.uncertainty import CellStats, StudyStats


def _range(counts: np.ndarray) -> str:
    return f"{counts.mean():.1f} ({int(counts.min())}–{int(counts.max())})"


def pies_uncertainty(study: Study, stats: StudyStats) -> Table:
    """Per pruned cell: are its PIEs more than the noise of a finite population of models, at one size?"""
    records: list[Record] = []
    for setting in sorted(stats.cells, key=_setting_key):
        cell = stats.cells[setting]
        p = cell.pies
        records.append(
            {
                **_key(setting), "n_dense": cell.n_dense, "n_pruned": cell.n_pruned, "h": None if p is None else p.h,
                "pies_h_mean": None if p is None else p.pruned_mean,
                "pies_h_min": None if p is None else int(p.pruned.min()),
                "pies_h_max": None if p is None else int(p.pruned.max()),
                "noise_floor_mean": None if p is None else p.floor_mean,
                "noise_floor_min": None if p is None else int(p.floor.min()),
                "noise_floor_max": None if p is None else int(p.floor.max()),
                "excess": None if p is None else p.excess.estimate,
                "excess_low": None if p is None else p.excess.low,
                "excess_high": None if p is None else p.excess.high,
                "subsets": None if p is None else ("every subset" if p.exact else f"{stats.n_splits} random splits"),
                "above_floor": None if cell.above_floor is None else bool(cell.above_floor),
                "pies_all": cell.count,
                "_setting": setting, "_cell": cell,
            }
        )  # fmt: skip

    def row(r: Record) -> list[str]:
        cell: CellStats = r["_cell"]
        every = f"{cell.count} (all {cell.n_dense} vs {cell.n_pruned})"
        if cell.pies is None:
            return [r["_setting"].label(dataset=False), f"{cell.n_dense} / {cell.n_pruned}", DASH, DASH, DASH, DASH, DASH,
                    "no floor (needs ≥ 3 dense and ≥ 2 pruned models)", every]  # fmt: skip
        p = cell.pies
        q = p.ratio
        ratio = "∞ (floor 0)" if q == float("inf") else DASH if not math.isfinite(q) else f"×{q:.2f}"
        if not p.excess.defined:
            verdict = "cannot tell (no interval)"
        elif p.above_floor:
            verdict = "above the floor"
        elif p.excess.below(0.0):
            verdict = "below the floor"
        else:
            verdict = "within the noise floor"
        return [
            r["_setting"].label(dataset=False), f"{cell.n_dense} / {cell.n_pruned}", str(p.h), _range(p.pruned), _range(p.floor),
            p.excess.fmt(1, signed=True), ratio, verdict, every,
        ]  # fmt: skip

    return _render(
        "pies_uncertainty",
        "PIE counts against the noise floor, at one population size",
        (
            "h = min((dense − 1) // 2, pruned − 1); h vs h = PIEs of h pruned models against h dense models, noise floor = "
            "PIEs of h dense models against h other dense models, from the same dense subsets (drawn without replacement: "
            f"every subset when there are few, else {stats.n_splits} random matched splits), mean (min–max) over the subsets; "
            f"excess = h vs h − floor, [ ] = {METHOD_TEXT}. 'above the floor' = the excess's interval lies above 0. "
            "The last column is the PIE set of all models (the paper's count): it has no floor of its own size."
        ),
        [
            "dataset", "method", "pruning", "sparsity", "n_dense", "n_pruned", "h", "pies_h_mean", "pies_h_min", "pies_h_max",
            "noise_floor_mean", "noise_floor_min", "noise_floor_max", "excess", "excess_low", "excess_high", "subsets",
            "above_floor", "pies_all",
        ],  # fmt: skip
        records,
        header=lambda dataset, _: [
            "setting", "n dense / pruned", "h", "PIEs h vs h", "noise floor h vs h", "excess [95% CI over models]",
            "h vs h / floor", "verdict", "PIE set (all models; no floor of this size)",
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
            "parent test accuracy in points (both from their per-sample files), mean over the pairs, [ ] = the paired "
            "t-interval over the pairs (the jackknife over pairs); child and parent accuracy mean ± std over the pairs."
        ),
        ["dataset", "method", "pruning", "sparsity", "n_pairs", "n_children", "seeds", "deltas",
         "child_acc_mean", "parent_acc_mean", "delta_mean", "delta_low", "delta_high", "parents", "unpaired"],  # fmt: skip
        records,
        header=lambda dataset, _: ["setting", "pairs", "child acc (%)", "parent acc (%)", "Δ child − parent [95% CI]", "unpaired children"],
        row=row,
        notes=lambda dataset, _: [moved_note] if moved else [],
    )
