"""Intervals over models (the one method ``analyze`` uses), and the percentile bootstrap it used before.

Pure NumPy + SciPy's Student-t quantile (no Lightning, no torch; no sibling module): every function
takes plain arrays or a statistic of kept model indices, so the tests check it against closed forms
and independent loops. Re-exported by :mod:`analysis.stats`.

**The method: a jackknife over models with a Student-t quantile** (:func:`over_models`, the one
place that says how an interval over models is computed; :data:`METHOD` and :data:`RESAMPLES` name
it in every table header). A study's statistic (a difference of mean accuracies, a relative
Q-Score change, a Spearman correlation of population-mean PD, a PIE count above its noise floor) is
a function of one or more populations of models, each one draw of ``n_g`` training runs. The
statistic is recomputed with each model of each population left out once; population ``g``'s
share of the variance is ``v_g = (n_g - 1) / n_g * sum_i (theta_(g,i) - mean_g)^2``, the variance
``V = sum_g v_g``, and the interval ``theta +- t_{df}(0.975) sqrt(V)`` with Satterthwaite's
``df = V^2 / sum_g v_g^2 / (n_g - 1)``. For the mean of one population this *is* the textbook
t-interval (``s / sqrt(n)``, ``n - 1`` df), for a difference of two means Welch's interval; for
anything else it is the delete-one jackknife (conservative in expectation, Efron & Stein 1981).
The interval is symmetric about the estimate, so it always contains it; a population of one model
gives an undefined interval (its spread is unknown).

Why not the percentile bootstrap over models (what ``analyze`` printed before): with 5 models a
bootstrap resample holds ~3.4 distinct ones, its spread is ``(n - 1) / n`` of the sample variance
and its quantiles are normal, not Student-t: it covers the truth less often than it claims (the
coverage table of ``scripts/coverage.py`` measures it). For a PIE count it is worse: a resample that
repeats models has a noisier modal vote than the population, so its PIE counts are biased upward
and the interval can miss its own estimate. The bootstrap functions stay here (section at the end)
because the coverage comparison runs them as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: how every interval over models is computed, and what it resamples (quoted by every table header)
METHOD = "jackknife-t"
RESAMPLES = "models"
METHOD_TEXT = (
    "95% interval over models: each model of each population involved left out once (delete-one jackknife), "
    "estimate ± Student-t quantile (Satterthwaite df) × jackknife standard error"
)


# ---------------------------------------------------------------------------------------------
# intervals
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A point estimate with a ``level`` (e.g. 0.95) interval ``[low, high]``; NaN bounds = undefined.

    ``method`` says how the interval was computed (``"jackknife-t"``, ``"percentile bootstrap"``,
    ``"split range"``) and ``resamples`` what was resampled or left out (``"models"``, ``"test
    images"``, ``"pairs"``, ``"splits"``).
    """

    estimate: float
    low: float
    high: float
    level: float = 0.95
    method: str = ""
    resamples: str = ""

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))

    def contains(self, value: float) -> bool:
        """True when ``low <= value <= high`` (False for an undefined interval)."""
        return self.defined and self.low <= value <= self.high

    def excludes(self, value: float = 0.0) -> bool:
        """True when the whole interval lies strictly above or strictly below ``value``."""
        return self.defined and (self.low > value or self.high < value)

    def above(self, value: float = 0.0) -> bool:
        return self.defined and self.low > value

    def below(self, value: float = 0.0) -> bool:
        return self.defined and self.high < value

    def scaled(self, factor: float) -> Interval:
        """The interval of ``factor * statistic`` (bounds swapped for a negative factor)."""
        lo, hi = factor * self.low, factor * self.high
        return Interval(factor * self.estimate, min(lo, hi), max(lo, hi), self.level, self.method, self.resamples)

    def fmt(self, digits: int = 2, *, signed: bool = False) -> str:
        """``-0.42 [-0.80, -0.05]`` (``[–]`` when the interval is undefined)."""
        spec = f"{'+' if signed else ''}.{digits}f"
        est = format(self.estimate, spec) if np.isfinite(self.estimate) else "–"
        if not self.defined:
            return f"{est} [–]"
        return f"{est} [{format(self.low, spec)}, {format(self.high, spec)}]"


def undefined(estimate: float = float("nan"), level: float = 0.95) -> Interval:
    """An interval whose bounds cannot be computed (too few models); its estimate may still be known."""
    return Interval(float(estimate), float("nan"), float("nan"), level, METHOD, RESAMPLES)


def t_quantile(level: float, df: float) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` (> 0, real) degrees of freedom."""
    from scipy.special import stdtrit

    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must be in (0, 1)")
    if not df > 0:
        raise ValueError(f"df={df!r} must be > 0")
    return float(stdtrit(df, 0.5 + level / 2.0))


# ---------------------------------------------------------------------------------------------
# the method: jackknife over models, Student-t
# ---------------------------------------------------------------------------------------------
Keep = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Jackknife:
    """A statistic's delete-one replicates: ``replicates[g]`` = ``[n_g]`` values with model ``i`` of
    population ``g`` left out, ``estimate`` = the value on every model."""

    estimate: float
    replicates: tuple[np.ndarray, ...]

    @property
    def variances(self) -> np.ndarray:
        """``v_g = (n_g - 1) / n_g * sum_i (theta_(g,i) - mean_g)^2`` per population (NaN for ``n_g < 2``)."""
        out = []
        for reps in self.replicates:
            n = len(reps)
            out.append(float((n - 1) / n * np.sum((reps - reps.mean()) ** 2)) if n >= 2 else float("nan"))
        return np.array(out)

    @property
    def se(self) -> float:
        return float(np.sqrt(self.variances.sum()))

    @property
    def df(self) -> float:
        """Satterthwaite's degrees of freedom of ``sum_g v_g``; ``inf`` when every ``v_g`` is 0."""
        v = self.variances
        n = np.array([len(r) for r in self.replicates], dtype=np.float64)
        total = v.sum()
        if not np.isfinite(total):
            return float("nan")
        denom = float(np.sum(v**2 / (n - 1)))
        return float(total**2 / denom) if denom > 0 else float("inf")

    def interval(self, level: float = 0.95) -> Interval:
        v = self.variances
        if not np.isfinite(self.estimate) or not np.all(np.isfinite(v)):
            return undefined(self.estimate, level)
        se, df = self.se, self.df
        half = 0.0 if se == 0 else t_quantile(level, df) * se
        return Interval(self.estimate, self.estimate - half, self.estimate + half, level, METHOD, RESAMPLES)


def jackknife(statistic: Callable[[Keep], float], sizes: Sequence[int]) -> Jackknife:
    """Evaluate ``statistic(keep)`` on every model and with each model of each population left out.

    Args:
        statistic: ``keep[g]`` = int array of the kept model indices of population ``g`` (sorted);
            returns a float (NaN when undefined).
        sizes: ``n_g``, the number of models of each population the statistic depends on.
    """
    sizes = [_check_count(f"sizes[{g}]", n, 1) for g, n in enumerate(sizes)]
    full = tuple(np.arange(n) for n in sizes)
    estimate = float(statistic(full))
    replicates = []
    for g, n in enumerate(sizes):
        reps = np.empty(n, dtype=np.float64)
        for i in range(n):
            keep = list(full)
            keep[g] = np.delete(full[g], i)
            reps[i] = float(statistic(tuple(keep))) if n >= 2 else float("nan")
        replicates.append(reps)
    return Jackknife(estimate, tuple(replicates))


def over_models(statistic: Callable[[Keep], float], sizes: Sequence[int], *, level: float = 0.95) -> Interval:
    """**The** interval over models: :func:`jackknife` of ``statistic`` with a Student-t quantile
    (module docstring). Undefined when a population has one model or a replicate is NaN."""
    return jackknife(statistic, sizes).interval(level)


def mean_over_models(values: np.ndarray, *, level: float = 0.95) -> Interval:
    """Mean of ``values [M]`` (one per model) with its t-interval (``s / sqrt(M)``, ``M - 1`` df)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return over_models(lambda keep: float(values[keep[0]].mean()), [len(values)], level=level)


def difference_over_models(a: np.ndarray, b: np.ndarray, *, level: float = 0.95) -> Interval:
    """``mean(a) - mean(b)`` of two independent populations (one value per model): Welch's interval."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return over_models(lambda keep: float(a[keep[0]].mean() - b[keep[1]].mean()), [len(a), len(b)], level=level)


def paired_over_models(child: np.ndarray, parent: np.ndarray, *, level: float = 0.95) -> Interval:
    """Mean of the paired differences ``child - parent`` (one pair per model): the paired t-interval."""
    child = np.asarray(child, dtype=np.float64)
    parent = np.asarray(parent, dtype=np.float64)
    if child.shape != parent.shape or child.ndim != 1:
        raise ValueError(f"child {child.shape} and parent {parent.shape} must be equal-length 1-d arrays (one pair per entry)")
    return mean_over_models(child - parent, level=level)


# ---------------------------------------------------------------------------------------------
# the percentile bootstrap (what analyze used before; kept for the coverage comparison)
# ---------------------------------------------------------------------------------------------
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
    return Interval(float(estimate), low, high, level, "percentile bootstrap")


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
    # boundaries of runs of equal values; every member of a run gets the run's average rank
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
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
