"""One-Shot children paired with their dense parents (REFERENCE §2: the One-Shot models *are* the
dense population's models, pruned and fine-tuned).

A child's ``run.json`` carries ``oneshot_mode: "child"`` and ``parent_run`` = ``{"path": <absolute
parent run folder>, "seed", "test_acc", ...}`` (``callbacks/pruning/oneshot.py``). :func:`pair_children`
finds each parent among the loaded dense runs of the same dataset and method — by its recorded
folder, else (run folders copied or downloaded elsewhere) by its run id and seed — and warns about
every child whose parent is missing, of another dataset/method, pruned, or of another seed. The paired
accuracy change child − parent (per pair, from both per-sample files) is summarised per One-Shot
cell by its mean and the paired t-interval over the pairs (:func:`analysis.stats.paired_over_models`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.runs import Run, Setting, Study, method_name
from analysis.stats import Interval, paired_over_models


@dataclass
class CellPairs:
    """The child/parent pairs of one One-Shot cell (setting)."""

    setting: Setting
    children: list[Run] = field(default_factory=list)  # every child of the cell (with a parent_run)
    pairs: list[tuple[Run, Run]] = field(default_factory=list)  # (child, parent) with the parent loaded
    moved: int = 0  # pairs found by the parent's run id + seed because its recorded path is not loaded (copied runs)
    unpaired: list[tuple[Run, str]] = field(default_factory=list)  # (child, why no pair)
    delta: Interval | None = None  # mean child - parent accuracy (points) with its interval

    @property
    def deltas(self) -> np.ndarray:
        return np.array([c.accuracy - p.accuracy for c, p in self.pairs], dtype=np.float64)


def _resolved(path: Any) -> Path | None:
    try:
        return Path(str(path)).resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def _by_run_id(dense_runs: list[Run], setting: Setting, info: dict[str, Any]) -> Run | None:
    """The loaded dense run of the child's dataset/method with the parent's run id (W&B id or folder
    name) and seed, when exactly one matches: run folders copied or downloaded elsewhere keep their
    ids but not the absolute path the child recorded."""
    run_id = info.get("run_id")
    if not run_id:
        return None
    matches = [
        r for r in dense_runs
        if (r.setting.dataset, r.setting.method) == (setting.dataset, setting.method)
        and run_id in (r.summary.get("wandb_run_id"), r.path.name)
        and (info.get("seed") is None or r.seed == info.get("seed"))
    ]  # fmt: skip
    return matches[0] if len(matches) == 1 else None


def pair_children(study: Study, *, show: Any = str) -> tuple[dict[Setting, CellPairs], list[str]]:
    """``({One-Shot setting: CellPairs}, warnings)`` for every population that holds runs with ``parent_run``."""
    by_path = {r.path.resolve(): r for r in study.runs}
    dense_runs = [r for r in study.runs if r.setting.is_dense]
    cells: dict[Setting, CellPairs] = {}
    warnings: list[str] = []
    for setting, pop in study.populations.items():
        for child in pop.runs:
            parent_info = child.parent
            if parent_info is None:
                continue
            cell = cells.setdefault(setting, CellPairs(setting))
            cell.children.append(child)
            path = _resolved(parent_info.get("path"))
            parent = by_path.get(path) if path is not None else None
            if parent is None:
                parent = _by_run_id(dense_runs, setting, parent_info)
                cell.moved += parent is not None
            want = f"{setting.dataset} · {method_name(setting.method)} · dense"
            if parent is None:
                why = f"its parent {parent_info.get('path')} is not among the loaded runs (add it to --runs)"
            elif not parent.setting.is_dense:
                why = f"its parent {show(parent.path)} is a pruned run ({parent.setting.label()}), not one of the dense runs"
            elif (parent.setting.dataset, parent.setting.method) != (setting.dataset, setting.method):
                why = f"its parent {show(parent.path)} is {parent.setting.label()}, not {want}"
            elif parent.seed != child.seed:
                why = f"its parent {show(parent.path)} has seed {parent.seed}, the child {child.seed}"
            else:
                cell.pairs.append((child, parent))
                continue
            cell.unpaired.append((child, why))
            warnings.append(f"{setting.label()}: One-Shot child {show(child.path)} is not paired: {why}")
    for cell in cells.values():
        if cell.pairs:
            c = np.array([ch.accuracy for ch, _ in cell.pairs])
            p = np.array([pa.accuracy for _, pa in cell.pairs])
            cell.delta = paired_over_models(c, p)
    return dict(sorted(cells.items())), warnings


__all__ = ["CellPairs", "pair_children"]
