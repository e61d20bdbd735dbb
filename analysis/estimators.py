"""The statistics ``analyze`` reports, each with its interval over models (:func:`analysis.intervals.over_models`).

Pure NumPy (no Lightning, no torch): the same functions serve the study (:mod:`analysis.uncertainty`,
the findings) and the simulation with known truth that measures their coverage
(:mod:`analysis.simulation`), so what is measured is what is printed. Every statistic is written
as a function of the *kept* models of each population it depends on, and the interval leaves each
model out once (the jackknife over models); nothing resamples test images.

* :func:`relative_change` — ``mean(pruned) / mean(dense) - 1`` of per-model values (e.g. mean Q-Score).
* :func:`spearman_of_means` / :func:`rho_difference` — the paper's Figure 3 statistic, Spearman's ρ
  between the per-sample PD averaged over the dense models and over the pruned models; the
  difference of two methods' ρ, over the models of all four populations.
* :func:`pd_gap` — mean PD of the PIEs − of the non-PIEs (pruned models' PD, Table 6), the PIE
  flags recomputed from the kept models.
* :func:`pie_comparison` — PIEs of ``h`` pruned vs ``h`` dense models, the noise floor ``h`` vs ``h``
  dense models from the same dense subsets, and the excess (pruned − floor) with its interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.intervals import Interval, Keep, over_models, spearman, undefined
from analysis.pies import pie_flags
from analysis.selections import MatchedSplits


def relative_change(dense: np.ndarray, pruned: np.ndarray, *, level: float = 0.95) -> Interval:
    """``mean(pruned) / mean(dense) - 1`` of per-model values of two independent populations."""
    d = np.asarray(dense, dtype=np.float64).ravel()
    p = np.asarray(pruned, dtype=np.float64).ravel()

    def statistic(keep: Keep) -> float:
        base = d[keep[0]].mean()
        return float(p[keep[1]].mean() / base - 1.0) if base != 0 else float("nan")

    return over_models(statistic, [len(d), len(p)], level=level)


def spearman_of_means(dense: np.ndarray, pruned: np.ndarray, keep_dense: np.ndarray, keep_pruned: np.ndarray) -> float:
    """Spearman ρ between the per-sample means of ``dense [k_d, N]`` and ``pruned [k_p, N]`` over the kept rows."""
    return spearman(dense[keep_dense].mean(axis=0), pruned[keep_pruned].mean(axis=0))


def rho_difference(
    a_dense: np.ndarray, a_pruned: np.ndarray, b_dense: np.ndarray, b_pruned: np.ndarray, *, level: float = 0.95
) -> tuple[Interval, float, float]:
    """``(ρ_a − ρ_b over models, ρ_a, ρ_b)``: two methods' :func:`spearman_of_means` (per-sample PD
    ``[models, N]`` of each method's dense and pruned population), every model left out once."""
    arrays = [np.asarray(x, dtype=np.float64) for x in (a_dense, a_pruned, b_dense, b_pruned)]

    def statistic(keep: Keep) -> float:
        return spearman_of_means(arrays[0], arrays[1], keep[0], keep[1]) - spearman_of_means(arrays[2], arrays[3], keep[2], keep[3])

    full = [np.arange(len(x)) for x in arrays]
    rho_a = spearman_of_means(arrays[0], arrays[1], full[0], full[1])
    rho_b = spearman_of_means(arrays[2], arrays[3], full[2], full[3])
    return over_models(statistic, [len(x) for x in arrays], level=level), rho_a, rho_b


def pd_gap(
    dense_preds: np.ndarray, pruned_preds: np.ndarray, pruned_pd: np.ndarray, *, pd_rows: np.ndarray | None = None,
    tie: str = "lowest", num_classes: int | None = None, level: float = 0.95,
) -> Interval:  # fmt: skip
    """Mean PD of the PIEs − mean PD of the non-PIEs (Table 6's gap, with the paper's PD: the pruned
    models'), PD averaged per sample over the PD models ``pruned_pd [k, N]`` (rows of the pruned
    models ``pd_rows``, default the first ``k``), PIE flags of all kept dense vs all kept pruned models.
    Leaving a model out changes the flags and, if it is a PD model, the PD mean."""
    dense = np.asarray(dense_preds)
    pruned = np.asarray(pruned_preds)
    pd = np.asarray(pruned_pd, dtype=np.float64)
    rows_of = np.arange(pd.shape[0]) if pd_rows is None else np.asarray(pd_rows)

    def statistic(keep: Keep) -> float:
        flags = pie_flags(dense[keep[0]], pruned[keep[1]], tie=tie, num_classes=num_classes)
        use = np.isin(rows_of, keep[1])
        if not flags.any() or flags.all() or not use.any():
            return float("nan")
        values = pd[use].mean(axis=0)
        return float(values[flags].mean() - values[~flags].mean())

    return over_models(statistic, [dense.shape[0], pruned.shape[0]], level=level)


@dataclass(frozen=True)
class PieComparison:
    """PIEs at one population size ``h``: ``h`` pruned vs ``h`` dense models and the noise floor ``h``
    vs ``h`` other dense models from the same dense subsets, and the excess with its interval."""

    h: int
    pruned: np.ndarray  # PIE counts of the (dense subset, pruned subset) pairs or splits
    floor: np.ndarray  # PIE counts of the disjoint dense pairs or splits
    excess: Interval  # mean(pruned) - mean(floor), over models
    exact: bool  # every subset enumerated (else random splits)

    @property
    def pruned_mean(self) -> float:
        return float(self.pruned.mean())

    @property
    def floor_mean(self) -> float:
        return float(self.floor.mean())

    @property
    def above_floor(self) -> bool:
        """The excess's interval lies above 0: more PIEs than ``h`` other dense models give."""
        return self.excess.above(0.0)

    @property
    def ratio(self) -> float:
        """Pruned / floor means (``inf`` for a floor of 0 under a non-zero count)."""
        if self.floor_mean == 0:
            return float("inf") if self.pruned_mean > 0 else float("nan")
        return self.pruned_mean / self.floor_mean


def pie_comparison(splits: MatchedSplits, *, level: float = 0.95) -> PieComparison:
    """The counts of ``splits`` on every model and the excess's interval over models."""
    pruned, floor = splits.counts()
    estimate = float(pruned.mean() - floor.mean())
    if splits.n < 2 or splits.dense.n < 2:
        excess = undefined(estimate, level)
    else:
        excess = over_models(lambda keep: splits.excess(keep[0], keep[1]), [splits.dense.n, splits.n], level=level)
    return PieComparison(splits.h, pruned, floor, excess, splits.exact)


__all__ = ["PieComparison", "pd_gap", "pie_comparison", "relative_change", "rho_difference", "spearman_of_means"]
