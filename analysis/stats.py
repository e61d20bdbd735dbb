"""Population statistics: bootstrap intervals over models, the PIE noise floor, size-matched PIE counts.

Pure NumPy (no Lightning, no torch): every function takes plain arrays, so the tests check it
against independent loops on synthetic arrays. The functions live in two pure modules and are
re-exported here unchanged:

``intervals``   :class:`Interval`, percentile intervals, the bootstrap over models (the resampling
                unit is the model), rank correlation and its interval over samples
``selections``  PIE counts of model selections (:func:`pie_counts`), the PIE noise floor
                (:func:`noise_floor`), size-matched PIE counts (:func:`matched_pie_counts`)

Each module's docstring explains its statistics.
"""

from __future__ import annotations

from analysis.intervals import (
    Interval,
    bootstrap_indices,
    bootstrap_means,
    correlation_interval,
    difference_interval,
    interval,
    mean_difference_interval,
    mean_interval,
    paired_difference_interval,
    pearson,
    percentile_interval,
    rank_average,
    sample_bootstrap_statistic,
    spearman,
)
from analysis.selections import (
    MIN_NOISE_FLOOR_MODELS,
    TIE_RULES,
    MatchedPies,
    NoiseFloor,
    as_preds,
    matched_pie_counts,
    mode_differences,
    noise_floor,
    one_hot_votes,
    pie_counts,
    selection_modes,
    selection_weights,
    split_halves,
)

__all__ = [
    "as_preds",
    "Interval",
    "MIN_NOISE_FLOOR_MODELS",
    "MatchedPies",
    "NoiseFloor",
    "TIE_RULES",
    "bootstrap_indices",
    "bootstrap_means",
    "correlation_interval",
    "difference_interval",
    "interval",
    "matched_pie_counts",
    "mode_differences",
    "mean_difference_interval",
    "mean_interval",
    "noise_floor",
    "one_hot_votes",
    "paired_difference_interval",
    "pearson",
    "percentile_interval",
    "pie_counts",
    "rank_average",
    "sample_bootstrap_statistic",
    "selection_modes",
    "selection_weights",
    "spearman",
    "split_halves",
]
