"""Bootstrap intervals over models, and rank correlation with a bootstrap interval over samples.

Pure NumPy (no Lightning, no torch; no sibling module): every function takes plain arrays, so the
tests check it against independent loops on synthetic arrays. Re-exported by :mod:`analysis.stats`.

**Resampling unit = the model.** A population of ``M`` models is one draw of ``M`` training runs;
its uncertainty is that of the draw. :func:`bootstrap_indices` resamples the models of one
population with replacement (``B`` rows of ``M`` model indices); any statistic evaluated on every
row gives ``B`` bootstrap values, and :func:`percentile_interval` turns them into a 95% percentile
interval. Statistics of several populations (a difference pruned − dense, SCL's drop − Sup's drop)
combine the rows of *independent* draws of each population, row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


# ---------------------------------------------------------------------------------------------
# intervals
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A point estimate with a ``level`` (e.g. 0.95) interval ``[low, high]``; NaN bounds = undefined."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))

    def excludes(self, value: float = 0.0) -> bool:
        """True when the whole interval lies strictly above or strictly below ``value``."""
        return self.defined and (self.low > value or self.high < value)

    def above(self, value: float = 0.0) -> bool:
        return self.defined and self.low > value

    def below(self, value: float = 0.0) -> bool:
        return self.defined and self.high < value

    def fmt(self, digits: int = 2, *, signed: bool = False) -> str:
        """``-0.42 [-0.80, -0.05]`` (``[–]`` when the interval is undefined)."""
        spec = f"{'+' if signed else ''}.{digits}f"
        est = format(self.estimate, spec) if np.isfinite(self.estimate) else "–"
        if not self.defined:
            return f"{est} [–]"
        return f"{est} [{format(self.low, spec)}, {format(self.high, spec)}]"


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` percentile interval ``(low, high)`` of bootstrap ``samples`` (NaNs ignored).

    ``low`` / ``high`` are the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (NumPy's
    default linear interpolation). Fewer than 2 finite samples give ``(nan, nan)``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must be in (0, 1)")
    values = np.asarray(samples, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def interval(estimate: float, samples: np.ndarray, level: float = 0.95) -> Interval:
    """:class:`Interval` of a point ``estimate`` and its bootstrap ``samples``."""
    low, high = percentile_interval(samples, level)
    return Interval(float(estimate), low, high, level)


# ---------------------------------------------------------------------------------------------
# bootstrap over models
# ---------------------------------------------------------------------------------------------
def _check_count(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


def bootstrap_indices(n_models: int, n_boot: int, seed: int | Sequence[int]) -> np.ndarray:
    """``int [n_boot, n_models]``: each row ``n_models`` model indices drawn with replacement.

    The draw is ``np.random.default_rng(seed).integers(0, n_models, size=(n_boot, n_models))``
    (the tests repeat it independently). ``seed`` may be a sequence of ints (a ``SeedSequence`` entropy).
    """
    _check_count("n_models", n_models, 1)
    _check_count("n_boot", n_boot, 1)
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_models, size=(n_boot, n_models))


def bootstrap_means(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``[B]`` means of ``values [M]`` over each row of model ``indices [B, k]``."""
    values = np.asarray(values, dtype=np.float64)
    return values[np.asarray(indices)].mean(axis=1)


def mean_interval(values: np.ndarray, *, n_boot: int = 1000, seed: int | Sequence[int] = 0, level: float = 0.95) -> Interval:
    """Mean of ``values [M]`` (one per model) with its bootstrap percentile interval."""
    values = np.asarray(values, dtype=np.float64)
    idx = bootstrap_indices(len(values), n_boot, seed)
    return interval(values.mean(), bootstrap_means(values, idx), level)


def difference_interval(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int | Sequence[int] = 0, level: float = 0.95
) -> Interval:
    """``mean(a) - mean(b)`` of two independent populations, each resampled with replacement.

    The draws: ``rng = default_rng(seed)``; ``rng.integers(0, len(a), (n_boot, len(a)))`` for ``a``,
    then ``rng.integers(0, len(b), (n_boot, len(b)))`` for ``b``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _check_count("len(a)", len(a), 1)
    _check_count("len(b)", len(b), 1)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), size=(n_boot, len(a)))
    ib = rng.integers(0, len(b), size=(n_boot, len(b)))
    return interval(a.mean() - b.mean(), bootstrap_means(a, ia) - bootstrap_means(b, ib), level)


def paired_difference_interval(
    child: np.ndarray, parent: np.ndarray, *, n_boot: int = 1000, seed: int | Sequence[int] = 0, level: float = 0.95
) -> Interval:
    """Mean of the paired differences ``child - parent`` (one pair per model), pairs resampled with replacement."""
    child = np.asarray(child, dtype=np.float64)
    parent = np.asarray(parent, dtype=np.float64)
    if child.shape != parent.shape or child.ndim != 1:
        raise ValueError(f"child {child.shape} and parent {parent.shape} must be equal-length 1-d arrays (one pair per entry)")
    return mean_interval(child - parent, n_boot=n_boot, seed=seed, level=level)


def sample_bootstrap_statistic(
    statistic: Callable[[np.ndarray], float], n: int, *, n_boot: int = 1000, seed: int | Sequence[int] = 0
) -> np.ndarray:
    """``[n_boot]`` values of ``statistic(rows)`` over rows ``[n]`` drawn with replacement from ``range(n)``."""
    idx = bootstrap_indices(n, n_boot, seed)
    return np.array([statistic(row) for row in idx], dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# correlation
# ---------------------------------------------------------------------------------------------
def rank_average(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x [n]`` with ties given their average rank (as ``scipy.stats.rankdata``)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two ``[n]`` arrays; NaN when either is constant or ``n < 2``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x {x.shape} and y {y.shape} must be equal-length 1-d arrays")
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (Pearson of average ranks); NaN when either is constant."""
    return pearson(rank_average(x), rank_average(y))


def correlation_interval(
    x: np.ndarray, y: np.ndarray, *, n_boot: int = 1000, seed: int | Sequence[int] = 0, level: float = 0.95
) -> Interval:
    """Spearman correlation of paired samples with a bootstrap interval over the samples (pairs resampled)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    samples = sample_bootstrap_statistic(lambda rows: spearman(x[rows], y[rows]), len(x), n_boot=n_boot, seed=seed)
    return interval(spearman(x, y), samples, level)


def mean_difference_interval(
    values: np.ndarray, mask: np.ndarray, *, n_boot: int = 1000, seed: int | Sequence[int] = 0, level: float = 0.95
) -> Interval:
    """``mean(values[mask]) - mean(values[~mask])`` with a bootstrap interval over samples (resampled
    within each group: the groups keep their sizes)."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    a, b = values[mask], values[~mask]
    if not len(a) or not len(b):
        return Interval(float("nan"), float("nan"), float("nan"), level)
    return difference_interval(a, b, n_boot=n_boot, seed=seed, level=level)


__all__ = [
    "Interval",
    "bootstrap_indices",
    "bootstrap_means",
    "correlation_interval",
    "difference_interval",
    "interval",
    "mean_difference_interval",
    "mean_interval",
    "paired_difference_interval",
    "pearson",
    "percentile_interval",
    "rank_average",
    "sample_bootstrap_statistic",
    "spearman",
]
