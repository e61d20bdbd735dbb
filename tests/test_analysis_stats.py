"""analysis.stats: bootstrap intervals over models, PIE counts of model selections, the PIE noise
floor, size-matched PIE counts and rank correlation — each against an independent NumPy/SciPy
computation on synthetic arrays (loops over rows, scipy.stats.mode, np.quantile), plus the
degenerate cases whose answer is known exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis import stats
from analysis.pies import pie_flags

REPO = Path(__file__).resolve().parents[1]


def _population(rng: np.random.Generator, models: int, n: int, labels: np.ndarray, noise: float, c: int = 10) -> np.ndarray:
    """``[models, n]`` predictions: the label, replaced by a random class with probability ``noise``."""
    preds = np.tile(labels, (models, 1))
    flip = rng.random(preds.shape) < noise
    preds[flip] = rng.integers(0, c, size=int(flip.sum()))
    return preds


def _mode_lowest(preds: np.ndarray) -> np.ndarray:
    return scipy_stats.mode(preds, axis=0, keepdims=False).mode  # the smallest of tied values


def _mode_sets(preds: np.ndarray, c: int) -> list[set[int]]:
    out = []
    for col in preds.T:
        votes = np.bincount(col, minlength=c)
        out.append(set(np.flatnonzero(votes == votes.max()).tolist()))
    return out


def _loop_pies(dense: np.ndarray, pruned: np.ndarray, ds: np.ndarray, ps: np.ndarray, tie: str, c: int) -> np.ndarray:
    counts = []
    for d_rows, p_rows in zip(ds, ps):
        d, p = dense[d_rows], pruned[p_rows]
        if tie == "lowest":
            counts.append(int((_mode_lowest(d) != _mode_lowest(p)).sum()))
        else:
            counts.append(sum(1 for a, b in zip(_mode_sets(d, c), _mode_sets(p, c)) if not a & b))
    return np.array(counts)


# -- PIE counts of selections ----------------------------------------------------------------------
@pytest.mark.parametrize("tie", ["lowest", "disjoint"])
def test_pie_counts_match_a_loop_over_selections(tie: str) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, size=300)
    dense = _population(rng, 6, 300, labels, 0.4)
    pruned = _population(rng, 5, 300, labels, 0.6)
    ds = rng.integers(0, 6, size=(40, 6))  # bootstrap rows: repeated models count twice
    ps = rng.integers(0, 5, size=(40, 5))
    got = stats.pie_counts(dense, pruned, ds, ps, tie=tie, num_classes=10)
    np.testing.assert_array_equal(got, _loop_pies(dense, pruned, ds, ps, tie, 10))
    # one selection of every model once = analysis.pies.pie_flags on the whole populations
    whole = stats.pie_counts(dense, pruned, np.arange(6)[None], np.arange(5)[None], tie=tie, num_classes=10)
    assert whole.tolist() == [int(pie_flags(dense, pruned, tie=tie, num_classes=10).sum())]


def test_identical_populations_have_no_pies_and_all_agreeing_models_no_noise_floor() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, size=200)
    preds = _population(rng, 8, 200, labels, 0.5)
    same = np.tile(np.arange(8), (5, 1))
    assert stats.pie_counts(preds, preds.copy(), same, same).tolist() == [0] * 5
    agree = np.tile(labels, (8, 1))  # all models predict the same class everywhere
    floor = stats.noise_floor(agree, n_splits=20, seed=0)
    assert floor.counts.tolist() == [0] * 20 and (floor.mean, floor.low, floor.high, floor.half) == (0.0, 0, 0, 4)
    boot = stats.pie_counts(agree, agree, stats.bootstrap_indices(8, 100, 0), stats.bootstrap_indices(8, 100, 1))
    assert boot.tolist() == [0] * 100
    matched = stats.matched_pie_counts(agree, agree[:3], n_draws=7, seed=0)
    assert matched.size == 3 and matched.counts.tolist() == [0] * 7


def test_noise_floor_is_half_against_half_of_documented_splits() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, size=250)
    preds = _population(rng, 7, 250, labels, 0.5)  # odd: the 7th model sits out of each split
    floor = stats.noise_floor(preds, n_splits=12, seed=[5, 9])
    draw = np.random.default_rng([5, 9])
    expected = []
    for _ in range(12):
        perm = draw.permutation(7)
        a, b = preds[perm[:3]], preds[perm[3:6]]
        expected.append(int((_mode_lowest(a) != _mode_lowest(b)).sum()))
    assert floor.half == 3 and floor.n_models == 7
    np.testing.assert_array_equal(floor.counts, expected)
    assert floor.fmt() == f"{np.mean(expected):.1f} ({min(expected)}–{max(expected)})"
    first, second = stats.split_halves(7, 12, [5, 9])
    assert all(not set(a) & set(b) for a, b in zip(first, second))
    with pytest.raises(ValueError, match="a noise floor needs >= 4 models"):
        stats.noise_floor(preds[:3])


def test_matched_pie_counts_subsample_the_larger_population() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 10, size=150)
    dense = _population(rng, 9, 150, labels, 0.3)
    pruned = _population(rng, 4, 150, labels, 0.6)
    got = stats.matched_pie_counts(dense, pruned, n_draws=10, seed=11)
    draw = np.random.default_rng(11)
    ds = np.stack([draw.permutation(9)[:4] for _ in range(10)])
    ps = np.stack([draw.permutation(4)[:4] for _ in range(10)])
    assert got.size == 4
    np.testing.assert_array_equal(got.counts, _loop_pies(dense, pruned, ds, ps, "lowest", 10))
    with pytest.raises(ValueError, match=r"size=5 must be in \[1, min\(models\)\] = \[1, 4\]"):
        stats.matched_pie_counts(dense, pruned, size=5)


# -- bootstrap intervals ----------------------------------------------------------------------------
def test_bootstrap_interval_of_a_constant_is_a_point() -> None:
    ci = stats.mean_interval(np.full(7, 3.5), n_boot=500, seed=0)
    assert (ci.estimate, ci.low, ci.high) == (3.5, 3.5, 3.5)
    diff = stats.difference_interval(np.full(5, 2.0), np.full(9, 0.5), n_boot=300, seed=1)
    assert (diff.estimate, diff.low, diff.high) == (1.5, 1.5, 1.5)
    paired = stats.paired_difference_interval(np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0, 3.0]), n_boot=200)
    assert (paired.estimate, paired.low, paired.high) == (2.0, 2.0, 2.0)
    assert not diff.excludes(1.5) and diff.above(1.0) and diff.below(2.0)
    assert stats.mean_interval(np.array([4.0])).fmt() == "4.00 [4.00, 4.00]"


def test_difference_interval_matches_an_explicit_resampling_loop() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(90, 0.4, size=12), rng.normal(89, 0.5, size=8)
    got = stats.difference_interval(a, b, n_boot=2000, seed=42)
    draw = np.random.default_rng(42)
    ia, ib = draw.integers(0, 12, size=(2000, 12)), draw.integers(0, 8, size=(2000, 8))
    samples = np.array([a[ia[k]].mean() - b[ib[k]].mean() for k in range(2000)])
    assert got.estimate == pytest.approx(a.mean() - b.mean())
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(samples, [0.025, 0.975])))
    np.testing.assert_array_equal(stats.bootstrap_indices(12, 3, 7), np.random.default_rng(7).integers(0, 12, size=(3, 12)))


def test_mean_interval_agrees_with_the_normal_approximation_for_many_models() -> None:
    values = np.random.default_rng(6).normal(10.0, 2.0, size=400)
    ci = stats.mean_interval(values, n_boot=4000, seed=0)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert ci.low == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert ci.high == pytest.approx(values.mean() + half, abs=0.15 * half)


def test_percentile_interval_and_its_edge_cases() -> None:
    samples = np.random.default_rng(7).random(999)
    assert stats.percentile_interval(samples, 0.9) == pytest.approx(tuple(np.quantile(samples, [0.05, 0.95])))
    assert all(np.isnan(stats.percentile_interval(np.array([1.0]))))
    assert stats.percentile_interval(np.array([np.nan, 1.0, 3.0]), 0.5) == pytest.approx((1.5, 2.5))
    with pytest.raises(ValueError, match=r"level=1.5 must be in \(0, 1\)"):
        stats.percentile_interval(samples, 1.5)
    assert not stats.Interval(1.0, float("nan"), float("nan")).defined


# -- correlation and group differences --------------------------------------------------------------
def test_spearman_and_pearson_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(8)
    x = rng.integers(1, 9, size=500).astype(float)  # PD-like: few distinct values, many ties
    y = np.clip(x + rng.integers(-2, 3, size=500), 1, 8)
    assert stats.spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)
    assert stats.pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    np.testing.assert_allclose(stats.rank_average(x), scipy_stats.rankdata(x))
    assert np.isnan(stats.spearman(np.ones(5), np.arange(5.0)))
    ci = stats.correlation_interval(x, y, n_boot=200, seed=0)
    assert ci.low < ci.estimate < ci.high


def test_mean_difference_interval_of_two_groups() -> None:
    values = np.r_[np.full(30, 14.0), np.full(70, 10.0)]
    mask = np.r_[np.ones(30, bool), np.zeros(70, bool)]
    ci = stats.mean_difference_interval(values, mask, n_boot=100)
    assert (ci.estimate, ci.low, ci.high) == (4.0, 4.0, 4.0)
    assert not stats.mean_difference_interval(values, np.ones(100, bool)).defined


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="dense_preds covers 3 samples and pruned_preds 4"):
        stats.pie_counts(np.zeros((2, 3), int), np.zeros((2, 4), int), np.zeros((1, 2), int), np.zeros((1, 2), int))
    with pytest.raises(ValueError, match=r"selections hold model indices outside \[0, 2\)"):
        stats.pie_counts(np.zeros((2, 3), int), np.zeros((2, 3), int), np.array([[0, 2]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="dense_selections has 2 rows and pruned_selections 1"):
        stats.pie_counts(np.zeros((2, 3), int), np.zeros((2, 3), int), np.zeros((2, 1), int), np.zeros((1, 1), int))
    with pytest.raises(ValueError, match="tie='first' is not allowed"):
        stats.pie_counts(np.zeros((2, 3), int), np.zeros((2, 3), int), np.zeros((1, 1), int), np.zeros((1, 1), int), tie="first")
    with pytest.raises(ValueError, match="n_boot=0 must be an integer >= 1"):
        stats.bootstrap_indices(3, 0, 0)


def test_the_statistics_and_tables_import_neither_torch_nor_lightning() -> None:
    """Tables need only run folders: the statistics and table modules import no torch/Lightning."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning', 'torchvision'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import analysis.stats, analysis.uncertainty, analysis.pairs, analysis.findings, analysis.tables, analysis.report\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
