"""Population statistics: intervals over models, PIE counts of model selections, the PIE noise floor.

Pure NumPy (no Lightning, no torch): every function takes plain arrays, so the tests check it
against closed forms and independent loops on synthetic arrays. The functions live in pure modules
and are re-exported here unchanged:

``intervals``   :class:`Interval`; **the** interval over models (:func:`over_models`: a jackknife
                over models with a Student-t quantile) and its closed forms (mean, difference,
                paired); the percentile bootstrap analyze used before (kept for the coverage
                comparison); rank correlation
``selections``  PIE counts of model selections (:func:`pie_counts`), PIEs of ``h`` pruned vs ``h``
                dense models beside the noise floor of ``h`` vs ``h`` dense models, for any kept
                models (:class:`DenseSplits`, :class:`MatchedSplits`)

Each module's docstring explains its statistics; :mod:`analysis.estimators` builds the statistics
the report prints from them.
"""

from __future__ import annotations

from analysis.intervals import (
    METHOD,
    METHOD_TEXT,
    RESAMPLES,
    Interval,
    Jackknife,
    bootstrap_indices,
    bootstrap_means,
    correlation_interval,
    difference_interval,
    difference_over_models,
    interval,
    jackknife,
    mean_difference_interval,
    mean_interval,
    mean_over_models,
    over_models,
    paired_difference_interval,
    paired_over_models,
    pearson,
    percentile_interval,
    rank_average,
    sample_bootstrap_statistic,
    spearman,
    t_quantile,
    undefined,
)
from analysis.selections import (
    EXACT_SUBSETS,
    MIN_NOISE_FLOOR_MODELS,
    TIE_RULES,
    DenseSplits,
    MatchedSplits,
    as_preds,
    comparison_size,
    mode_differences,
    one_hot_votes,
    pie_counts,
    selection_modes,
    selection_weights,
)

__all__ = [
    "EXACT_SUBSETS", "METHOD", "METHOD_TEXT", "MIN_NOISE_FLOOR_MODELS", "RESAMPLES", "TIE_RULES",
    "DenseSplits", "Interval", "Jackknife", "MatchedSplits",
    "as_preds", "bootstrap_indices", "bootstrap_means", "comparison_size", "correlation_interval",
    "difference_interval", "difference_over_models", "interval", "jackknife", "mean_difference_interval",
    "mean_interval", "mean_over_models", "mode_differences", "one_hot_votes", "over_models",
    "paired_difference_interval", "paired_over_models", "pearson", "percentile_interval", "pie_counts",
    "rank_average", "sample_bootstrap_statistic", "selection_modes", "selection_weights", "spearman",
    "t_quantile", "undefined",
]  # fmt: skip
