"""The statistics of :mod:`analysis.stats` applied to a study: one coherent bootstrap over models.

* Every population gets **one** set of ``B`` bootstrap rows (its models resampled with
  replacement), drawn from a seed derived from ``--stats-seed`` and the population's own name, so a
  population's draws do not depend on which other runs were loaded. Every statistic of that
  population (mean accuracy, PIE count against its dense population, mean Q-Score) is evaluated on
  the same rows, and a statistic of several populations combines their rows one by one — so the
  interval of (SCL's drop − Sup's drop) is as coherent as that of one drop.
* Per pruned cell: the accuracy difference pruned − dense (percentage points) and the PIE count,
  each with its 95% percentile interval; when the two populations differ in size, the PIE count
  with both at the smaller size (the larger subsampled, mean over draws); and the PIE count of
  ``h`` pruned vs ``h`` dense models, ``h`` = half the dense population, beside the **noise floor**
  (``h`` dense vs the other ``h`` dense models, over ``--noise-splits`` random splits) — the only
  like-for-like comparison, since the mode of fewer models flips more often.

A note on the PIE interval: a bootstrap row repeats some models and misses others (about 63% of
them are distinct), so its modal predictions are noisier than the population's and the interval of
a PIE count typically lies above the count itself. It shows how much the count moves with the draw
of models; whether a count is more than noise is read against the noise floor.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from analysis.pies import SettingPies
from analysis.runs import Population, Setting, Study
from analysis.stats import (
    MIN_NOISE_FLOOR_MODELS,
    Interval,
    MatchedPies,
    NoiseFloor,
    bootstrap_indices,
    bootstrap_means,
    interval,
    mode_differences,
    pie_counts,
    selection_modes,
    split_halves,
)

LEVEL = 0.95


def seed_for(seed: int, *parts: str) -> list[int]:
    """A ``SeedSequence`` entropy ``[seed, crc32(parts)]``: stable per population and purpose."""
    return [int(seed), zlib.crc32("|".join(parts).encode("utf-8"))]


@dataclass
class PopulationDraws:
    """One population's bootstrap rows and what is evaluated on them."""

    setting: Setting
    indices: np.ndarray  # int [B, M]
    accuracies: np.ndarray  # [M] per-model test accuracy (%)
    acc_boot: np.ndarray  # [B] mean accuracy of each row

    def values_boot(self, values: np.ndarray) -> np.ndarray:
        """``[B]`` means of per-model ``values [M]`` over this population's rows."""
        return bootstrap_means(values, self.indices)


@dataclass
class CellStats:
    """Uncertainty of one pruned cell against its dense population."""

    setting: Setting
    n_dense: int
    n_pruned: int
    acc_diff: Interval  # pruned - dense, percentage points
    acc_diff_boot: np.ndarray
    pies: Interval  # the PIE count with its bootstrap interval
    pies_boot: np.ndarray
    matched: MatchedPies | None  # both populations at min(n_dense, n_pruned), when they differ
    half: MatchedPies | None  # h pruned vs h dense (h = the noise floor's half), same dense halves as the floor
    floor: NoiseFloor | None  # of the dense population, at the size of ``half`` (None below 4 dense models)

    @property
    def above_floor(self) -> bool | None:
        """Whether the PIEs of ``h`` pruned vs ``h`` dense models (mean over splits) exceed the whole
        range of the noise floor; None without a floor."""
        if self.floor is None or self.half is None:
            return None
        return self.half.mean > self.floor.high

    @property
    def floor_ratio(self) -> float | None:
        """Half-size PIEs / mean noise floor (``inf`` for a floor of 0 under a non-zero count)."""
        if self.floor is None or self.half is None:
            return None
        if self.floor.mean == 0:
            return float("inf") if self.half.mean > 0 else float("nan")
        return self.half.mean / self.floor.mean


@dataclass
class StudyStats:
    """Bootstrap rows per population, noise floors per dense population, statistics per pruned cell."""

    n_boot: int
    n_splits: int
    seed: int
    tie: str
    populations: dict[Setting, PopulationDraws] = field(default_factory=dict)
    floors: dict[Setting, NoiseFloor] = field(default_factory=dict)
    cells: dict[Setting, CellStats] = field(default_factory=dict)
    level: float = LEVEL

    def model_values_boot(self, pop: Population, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(per-model means of per-sample array name [M'], bootstrap means [B])`` over the models
        that have it; rows are this population's when all models have it, else fresh rows."""
        have = [r for r in pop.runs if r.has(name)]
        if not have:
            return None
        values = np.array([float(np.mean(r.arrays[name])) for r in have])
        if len(have) == pop.n:
            return values, self.populations[pop.setting].values_boot(values)
        idx = bootstrap_indices(len(have), self.n_boot, seed_for(self.seed, pop.setting.slug(), name))
        return values, bootstrap_means(values, idx)


def compute_stats(
    study: Study, pies: dict[Setting, SettingPies], *, n_boot: int = 1000, n_splits: int = 20, seed: int = 0, tie: str = "lowest"
) -> StudyStats:
    """Everything the tables, the report and the findings need, from the study and its PIEs."""
    out = StudyStats(n_boot=n_boot, n_splits=n_splits, seed=seed, tie=tie)
    for setting, pop in study.populations.items():
        idx = bootstrap_indices(pop.n, n_boot, seed_for(seed, setting.slug(), "models"))
        acc = pop.accuracies()
        out.populations[setting] = PopulationDraws(setting, idx, acc, bootstrap_means(acc, idx))
    dense_modes: dict[Setting, np.ndarray] = {}  # modal labels of each dense population's bootstrap rows, shared by its cells

    def boot_pies(dense: Population, pruned: Population, c: int) -> np.ndarray:
        dd, pd = out.populations[dense.setting], out.populations[pruned.setting]
        if tie != "lowest":
            return pie_counts(dense.preds(), pruned.preds(), dd.indices, pd.indices, tie=tie, num_classes=c)
        # the modes do not depend on c beyond the largest predicted class, so one set per dense population
        if dense.setting not in dense_modes:
            dense_modes[dense.setting] = selection_modes(dense.preds(), dd.indices, c)
        return mode_differences(dense_modes[dense.setting], selection_modes(pruned.preds(), pd.indices, c))

    halves: dict[Setting, tuple[np.ndarray, np.ndarray]] = {}
    for setting, pop in study.populations.items():
        if setting.is_dense and pop.n >= MIN_NOISE_FLOOR_MODELS:
            first, second = split_halves(pop.n, n_splits, seed_for(seed, setting.slug(), "halves"))
            halves[setting] = (first, second)
            counts = pie_counts(pop.preds(), pop.preds(), first, second, tie=tie, num_classes=pop.num_classes)
            out.floors[setting] = NoiseFloor(counts=counts, half=first.shape[1], n_models=pop.n)
    for setting, result in pies.items():
        pop, dense = study.populations[setting], study.populations[setting.dense]
        c = result.num_classes
        dense_preds, pruned_preds = dense.preds(), pop.preds()
        dd, pd = out.populations[setting.dense], out.populations[setting]
        acc_boot = pd.acc_boot - dd.acc_boot
        pies_boot = boot_pies(dense, pop, c)
        matched = None
        if dense.n != pop.n:
            k = min(dense.n, pop.n)
            rng = np.random.default_rng(seed_for(seed, setting.slug(), "matched"))
            ds = np.stack([rng.permutation(dense.n)[:k] for _ in range(n_splits)])
            ps = np.stack([rng.permutation(pop.n)[:k] for _ in range(n_splits)])
            matched = MatchedPies(pie_counts(dense_preds, pruned_preds, ds, ps, tie=tie, num_classes=c), k)
        half, floor = None, None
        if setting.dense in halves:
            # h pruned vs the first dense half of every split (h = the floor's half size; fewer when the
            # pruned population is smaller, and then a floor of that size from the same splits)
            first, second = halves[setting.dense]
            h = first.shape[1]
            k = min(h, pop.n)
            rng = np.random.default_rng(seed_for(seed, setting.slug(), "half"))
            ps = np.stack([rng.permutation(pop.n)[:k] for _ in range(n_splits)])
            half = MatchedPies(pie_counts(dense_preds, pruned_preds, first[:, :k], ps, tie=tie, num_classes=c), k)
            floor = out.floors[setting.dense]
            if k < h:
                counts = pie_counts(dense_preds, dense_preds, first[:, :k], second[:, :k], tie=tie, num_classes=c)
                floor = NoiseFloor(counts=counts, half=k, n_models=dense.n)
        out.cells[setting] = CellStats(
            setting=setting, n_dense=dense.n, n_pruned=pop.n,
            acc_diff=interval(pd.accuracies.mean() - dd.accuracies.mean(), acc_boot, LEVEL), acc_diff_boot=acc_boot,
            pies=interval(result.count, pies_boot, LEVEL), pies_boot=pies_boot,
            matched=matched, half=half, floor=floor,
        )  # fmt: skip
    return out


__all__ = ["CellStats", "LEVEL", "PopulationDraws", "StudyStats", "compute_stats", "seed_for"]
