"""The statistics of :mod:`analysis.stats` applied to a study: intervals over models, PIEs beside floors of their size.

* **Intervals over models.** Every interval the report prints is
  :func:`analysis.intervals.over_models` — each model of each population the statistic depends on
  left out once, Student-t quantile — so a statistic of several populations (SCL's drop − Sup's
  drop; the PIEs of two cells that share a dense population) is as coherent as one of a single
  population: :meth:`StudyStats.over` takes the statistic as a function of the kept models of each
  population. Its coverage at 5, 10 and 30 models is measured by :mod:`analysis.simulation`.
* **PIEs at one population size.** Per pruned cell, ``h = min((n_dense - 1) // 2, n_pruned - 1)``
  (:func:`analysis.selections.comparison_size`): the PIEs of ``h`` pruned vs ``h`` dense models
  and, from the same dense subsets, the **noise floor** of ``h`` vs ``h`` other dense models
  (subsets drawn without replacement: every one when there are few, else ``--noise-splits``
  random matched splits), and the excess pruned − floor with its interval over models
  (:func:`analysis.estimators.pie_comparison`). The cell's PIEs are *above the floor* when that
  interval lies above 0. The PIE set of all models (the paper's definition: all dense vs all
  pruned) is what Table 6, the shared/per-class tables and the figures split samples by; its count
  has no floor of its own size (that would need twice as many dense models) and is never compared
  with one.
* Each dense population's own floor (Table 1's dense row) is the floor at ``(n_dense - 1) // 2``.

Random draws (only for populations too large to enumerate) come from a seed derived from
``--stats-seed`` and the population's name, so they do not depend on which other runs were loaded.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.estimators import PieComparison, pie_comparison
from analysis.pies import SettingPies
from analysis.runs import Population, Setting, Study
from analysis.stats import DenseSplits, Interval, MatchedSplits, comparison_size, difference_over_models, over_models

LEVEL = 0.95


def seed_for(seed: int, *parts: str) -> list[int]:
    """A ``SeedSequence`` entropy ``[seed, crc32(parts)]``: stable per population and purpose."""
    return [int(seed), zlib.crc32("|".join(parts).encode("utf-8"))]


@dataclass
class CellStats:
    """One pruned cell against its dense population."""

    setting: Setting
    n_dense: int
    n_pruned: int
    count: int  # the PIE set of all dense vs all pruned models
    acc_diff: Interval  # mean accuracy pruned − dense, points, over models
    pies: PieComparison | None  # h vs h beside the floor h vs h (None: too few models, h = 0)

    @property
    def h(self) -> int | None:
        return None if self.pies is None else self.pies.h

    @property
    def above_floor(self) -> bool | None:
        """Whether the excess of PIEs over the floor (same size) has an interval above 0; None without a floor."""
        if self.pies is None or not self.pies.excess.defined:
            return None
        return self.pies.above_floor

    @property
    def floor_ratio(self) -> float | None:
        return None if self.pies is None else self.pies.ratio


@dataclass
class DenseFloor:
    """A dense population's noise floor at ``h = (n - 1) // 2``: PIE counts of disjoint ``h``-subsets."""

    h: int
    counts: np.ndarray
    exact: bool

    @property
    def mean(self) -> float:
        return float(self.counts.mean())

    def fmt(self) -> str:
        return f"{self.mean:.1f} ({int(self.counts.min())}–{int(self.counts.max())})"


@dataclass
class StudyStats:
    """Per dense population its floor, per pruned cell its statistics; :meth:`over` for any other statistic."""

    study: Study
    n_splits: int
    seed: int
    tie: str
    floors: dict[Setting, DenseFloor] = field(default_factory=dict)
    cells: dict[Setting, CellStats] = field(default_factory=dict)
    level: float = LEVEL
    _dense: dict[tuple[Setting, int], DenseSplits] = field(default_factory=dict, repr=False)
    _splits: dict[tuple[Setting, int], MatchedSplits] = field(default_factory=dict, repr=False)

    def over(self, statistic: Callable[[Mapping[Setting, np.ndarray]], float], settings: Sequence[Setting]) -> Interval:
        """``statistic({setting: kept model indices})`` with its interval over the models of ``settings``
        (each population once, however often it is named)."""
        unique = list(dict.fromkeys(settings))
        sizes = [self.study.populations[s].n for s in unique]
        return over_models(lambda keep: statistic(dict(zip(unique, keep))), sizes, level=self.level)

    def dense_splits(self, dense: Setting, h: int) -> DenseSplits:
        key = (dense, h)
        if key not in self._dense:
            pop = self.study.populations[dense]
            self._dense[key] = DenseSplits(
                pop.preds(), h, tie=self.tie, num_classes=_classes(self.study, dense), n_splits=self.n_splits,
                seed=seed_for(self.seed, dense.slug(), "splits"),
            )  # fmt: skip
        return self._dense[key]

    def splits(self, setting: Setting, h: int) -> MatchedSplits:
        """The matched splits of a pruned cell at size ``h`` (cached: F1/F2 reuse them)."""
        key = (setting, h)
        if key not in self._splits:
            pruned = self.study.populations[setting].preds()
            self._splits[key] = MatchedSplits(
                self.dense_splits(setting.dense, h), pruned, seed=seed_for(self.seed, setting.slug(), "splits"),
                n_random=self.n_splits,
            )  # fmt: skip
        return self._splits[key]

    def model_values(self, pop: Population, name: str) -> np.ndarray | None:
        """Per-model means ``[n]`` of a per-sample array; None unless every model has it."""
        if not all(r.has(name) for r in pop.runs):
            return None
        return np.array([float(np.mean(r.arrays[name])) for r in pop.runs])


def _classes(study: Study, dense: Setting) -> int:
    return max(p.num_classes for s, p in study.populations.items() if s.dataset == dense.dataset and s.method == dense.method)


def compute_stats(study: Study, pies: dict[Setting, SettingPies], *, n_splits: int = 20, seed: int = 0, tie: str = "lowest") -> StudyStats:
    """Everything the tables, the report and the findings need, from the study and its PIE sets."""
    out = StudyStats(study=study, n_splits=n_splits, seed=seed, tie=tie)
    for setting, pop in study.populations.items():
        h = comparison_size(pop.n, pop.n) if setting.is_dense else 0
        if h >= 1:
            out.floors[setting] = DenseFloor(h, out.dense_splits(setting, h).floor(), out.dense_splits(setting, h).exact)
    for setting, result in pies.items():
        pop, dense = study.populations[setting], study.populations[setting.dense]
        h = comparison_size(dense.n, pop.n)
        comparison = pie_comparison(out.splits(setting, h), level=out.level) if h >= 1 else None
        out.cells[setting] = CellStats(
            setting=setting, n_dense=dense.n, n_pruned=pop.n, count=result.count,
            acc_diff=difference_over_models(pop.accuracies(), dense.accuracies(), level=out.level),
            pies=comparison,
        )  # fmt: skip
    return out


__all__ = ["CellStats", "DenseFloor", "LEVEL", "StudyStats", "compute_stats", "seed_for"]
