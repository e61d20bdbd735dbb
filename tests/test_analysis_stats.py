"""analysis.stats: intervals over models (the jackknife with a Student-t quantile, the percentile
bootstrap kept for comparison), PIE counts of model selections, PIEs of h pruned vs h dense models
beside the noise floor of h vs h, and rank correlation — each against an independent NumPy/SciPy
computation on synthetic arrays (loops over rows and subsets, scipy.stats.mode / t, np.quantile),
plus the degenerate cases whose answer is known exactly."""

from __future__ import annotations

import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis import stats
from analysis.estimators import pie_comparison, relative_change
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
    splits = stats.MatchedSplits(stats.DenseSplits(agree, 3, num_classes=10), agree[:5])
    pruned, floor = splits.counts()
    assert splits.exact and set(pruned.tolist()) == {0} and set(floor.tolist()) == {0}
    comparison = pie_comparison(splits)
    assert (comparison.excess.estimate, comparison.excess.low, comparison.excess.high) == (0.0, 0.0, 0.0)
    boot = stats.pie_counts(agree, agree, stats.bootstrap_indices(8, 100, 0), stats.bootstrap_indices(8, 100, 1))
    assert boot.tolist() == [0] * 100


def _subsets(n: int, h: int) -> list[tuple[int, ...]]:
    return list(combinations(range(n), h))


@pytest.mark.parametrize("tie", ["lowest", "disjoint"])
def test_matched_splits_enumerate_every_subset_at_one_size(tie: str) -> None:
    """h pruned vs h dense: every (dense h-subset, pruned h-subset) pair; the floor: every ordered pair of
    disjoint dense h-subsets — and with a model left out, only the subsets without it."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, size=250)
    dense, pruned = _population(rng, 7, 250, labels, 0.5), _population(rng, 5, 250, labels, 0.7)
    h = stats.comparison_size(7, 5)
    assert h == 3 and stats.comparison_size(5, 5) == 2 and stats.comparison_size(2, 9) == 0 and stats.comparison_size(9, 2) == 1
    splits = stats.MatchedSplits(stats.DenseSplits(dense, h, tie=tie, num_classes=10), pruned)
    assert splits.exact
    for keep_d, keep_p in ((np.arange(7), np.arange(5)), (np.delete(np.arange(7), 2), np.arange(5)), (np.arange(7), np.arange(1, 5))):
        got_pruned, got_floor = splits.counts(keep_d, keep_p)
        sd = [s for s in _subsets(7, h) if set(s) <= set(keep_d.tolist())]
        sp = [s for s in _subsets(5, h) if set(s) <= set(keep_p.tolist())]
        expected = _loop_pies(dense, pruned, np.array([a for a in sd for _ in sp]), np.array([b for _ in sd for b in sp]), tie, 10)
        np.testing.assert_array_equal(np.sort(got_pruned), np.sort(expected))
        pairs = [(a, b) for a in sd for b in sd if not set(a) & set(b)]
        floor = _loop_pies(dense, dense, np.array([a for a, _ in pairs]), np.array([b for _, b in pairs]), tie, 10)
        np.testing.assert_array_equal(np.sort(got_floor), np.sort(floor))
        assert splits.excess(keep_d, keep_p) == pytest.approx(expected.mean() - floor.mean())


@pytest.mark.parametrize("tie", ["lowest", "disjoint"])
def test_matched_splits_of_large_populations_follow_the_documented_permutations(tie: str) -> None:
    """Too many subsets to enumerate: split s takes the kept models in the order of permutation s —
    D1 = the first h dense, D2 the next h, P the first h pruned — and leaving a model out keeps every
    permutation (its incremental vote update equals a recount)."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 10, size=200)
    dense, pruned = _population(rng, 15, 200, labels, 0.5), _population(rng, 12, 200, labels, 0.7)
    h = stats.comparison_size(15, 12)  # 7: C(15, 7) = 6435 subsets, random splits
    splits = stats.MatchedSplits(stats.DenseSplits(dense, h, tie=tie, num_classes=10, n_splits=9, seed=[5, 1]), pruned, seed=[5, 2])
    assert h == 7 and not splits.exact
    perm_d = np.stack([p for p in (lambda r: [r.permutation(15) for _ in range(9)])(np.random.default_rng([5, 1]))])
    perm_p = np.stack([p for p in (lambda r: [r.permutation(12) for _ in range(9)])(np.random.default_rng([5, 2]))])
    for keep_d, keep_p in ((np.arange(15), np.arange(12)), (np.delete(np.arange(15), 4), np.arange(12)),
                           (np.arange(15), np.delete(np.arange(12), 0)), (np.arange(13), np.arange(10))):  # fmt: skip
        od = np.stack([p[np.isin(p, keep_d)] for p in perm_d])
        op = np.stack([p[np.isin(p, keep_p)] for p in perm_p])
        got_pruned, got_floor = splits.counts(keep_d, keep_p)
        np.testing.assert_array_equal(got_pruned, _loop_pies(dense, pruned, od[:, :h], op[:, :h], tie, 10))
        np.testing.assert_array_equal(got_floor, _loop_pies(dense, dense, od[:, :h], od[:, h : 2 * h], tie, 10))


def test_pie_comparison_interval_is_the_jackknife_over_both_populations() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 10, size=300)
    dense, pruned = _population(rng, 5, 300, labels, 0.4), _population(rng, 5, 300, labels, 0.6)
    splits = stats.MatchedSplits(stats.DenseSplits(dense, 2, num_classes=10), pruned)
    got = pie_comparison(splits)
    full = splits.excess()
    reps_d = np.array([splits.excess(np.delete(np.arange(5), i), np.arange(5)) for i in range(5)])
    reps_p = np.array([splits.excess(np.arange(5), np.delete(np.arange(5), i)) for i in range(5)])
    v = [4 / 5 * ((r - r.mean()) ** 2).sum() for r in (reps_d, reps_p)]
    df = sum(v) ** 2 / (v[0] ** 2 / 4 + v[1] ** 2 / 4)
    half = scipy_stats.t.ppf(0.975, df) * np.sqrt(sum(v))
    assert got.h == 2 and got.excess.estimate == pytest.approx(full)
    assert (got.excess.low, got.excess.high) == pytest.approx((full - half, full + half))
    assert got.excess.method == "jackknife-t" and got.excess.resamples == "models"
    assert got.pruned_mean > got.floor_mean and got.above_floor == (full - half > 0)


# -- intervals over models (the method analyze uses) ----------------------------------------------
def test_over_models_is_the_t_interval_of_a_mean_and_welch_of_a_difference() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(90, 0.4, size=5), rng.normal(88, 1.5, size=7)
    got = stats.mean_over_models(a)
    low, high = scipy_stats.t.interval(0.95, 4, loc=a.mean(), scale=scipy_stats.sem(a))
    assert (got.estimate, got.low, got.high) == pytest.approx((a.mean(), low, high))
    va, vb = a.var(ddof=1) / 5, b.var(ddof=1) / 7
    df = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 6)  # Welch–Satterthwaite
    half = scipy_stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    diff = stats.difference_over_models(a, b)
    assert (diff.low, diff.high) == pytest.approx((a.mean() - b.mean() - half, a.mean() - b.mean() + half))
    paired = stats.paired_over_models(a, a - 1.0 + rng.normal(0, 0.1, 5))
    assert paired.estimate == pytest.approx(1.0, abs=0.2) and paired.contains(paired.estimate)
    assert (diff.method, diff.resamples) == ("jackknife-t", "models")


def test_jackknife_of_a_nonlinear_statistic_matches_a_loop() -> None:
    rng = np.random.default_rng(9)
    d, p = rng.normal(0.7, 0.03, 6), rng.normal(0.6, 0.05, 4)
    got = stats.jackknife(lambda keep: p[keep[1]].mean() / d[keep[0]].mean() - 1, [6, 4])
    reps_d = np.array([p.mean() / np.delete(d, i).mean() - 1 for i in range(6)])
    reps_p = np.array([np.delete(p, i).mean() / d.mean() - 1 for i in range(4)])
    v = np.array([5 / 6 * ((reps_d - reps_d.mean()) ** 2).sum(), 3 / 4 * ((reps_p - reps_p.mean()) ** 2).sum()])
    assert got.estimate == pytest.approx(p.mean() / d.mean() - 1)
    np.testing.assert_allclose(got.variances, v)
    assert got.df == pytest.approx(v.sum() ** 2 / (v[0] ** 2 / 5 + v[1] ** 2 / 3))
    ci = got.interval()
    assert ci.high - ci.estimate == pytest.approx(scipy_stats.t.ppf(0.975, got.df) * np.sqrt(v.sum()))
    assert not stats.over_models(lambda keep: float(d[keep[0]].mean()), [1]).defined  # one model: no spread
    assert stats.over_models(lambda keep: 2.0, [3, 3]).fmt() == "2.00 [2.00, 2.00]"  # no spread at all: a point


def test_every_interval_over_models_contains_its_estimate() -> None:
    """Symmetric about the estimate by construction — unlike a bootstrap of a PIE count, whose
    resamples repeat models and inflate the modal vote."""
    rng = np.random.default_rng(10)
    for _ in range(50):
        n, m = rng.integers(2, 9, size=2)
        a, b = rng.lognormal(0, 1, n), rng.lognormal(0.5, 2, m)
        for ci in (stats.mean_over_models(a), stats.difference_over_models(a, b), relative_change(a, b)):
            assert ci.contains(ci.estimate)


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
    with pytest.raises(ValueError, match=r"h=3 needs >= 7 dense models \(two disjoint halves with any one left out\), got 6"):
        stats.DenseSplits(np.zeros((6, 4), int), 3)
    with pytest.raises(ValueError, match=r"h=2 needs >= 3 pruned models \(any one left out\), got 2"):
        stats.MatchedSplits(stats.DenseSplits(np.zeros((5, 4), int), 2), np.zeros((2, 4), int))


def test_the_statistics_and_tables_import_neither_torch_nor_lightning() -> None:
    """Tables need only run folders: the statistics and table modules import no torch/Lightning."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning', 'torchvision'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import analysis.stats, analysis.uncertainty, analysis.pairs, analysis.findings, analysis.tables, analysis.report, analysis.simulation\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
