"""The statistics of ``analyze`` tested like code: a simulation with known truth (:mod:`analysis.simulation`).

A small, seeded version of ``scripts/coverage.py`` and ``scripts/calibrate_null.py`` (whose full
tables the docs quote): at 5 models per population the interval ``analyze`` prints (jackknife over
models, Student-t) covers the truth about as often as it claims, where the percentile bootstrap it
printed before did not; on populations where pruning changes nothing, ``analyze`` calls no more than
its nominal share "above the floor" or "supported"; a planted effect is found."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.simulation import STATISTICS, Scenario, calibrate, coverage, draw_models, expected_accuracy, make_samples


def test_known_truths_are_what_the_draws_average_to() -> None:
    """The simulation's own truth: the exact expected accuracy matches the mean of many drawn models."""
    samples = make_samples(600)
    process = Scenario().scl_pruned
    models = draw_models(process, samples, 400, np.random.default_rng(0))
    drawn = 100 * (models.preds == samples.labels).mean()
    assert drawn == pytest.approx(expected_accuracy(process, samples), abs=0.3)
    assert models.q.mean(axis=1).mean() / draw_models(Scenario().scl_dense, samples, 400, np.random.default_rng(1)).q.mean() == pytest.approx(
        process.q / Scenario().scl_dense.q, abs=0.01
    )


@pytest.fixture(scope="module")
def rows():  # type: ignore[no-untyped-def]
    return coverage((5,), reps=100, samples=300, n_boot=200, truth_draws=200, seed=1, statistics=(STATISTICS[0], STATISTICS[1], STATISTICS[4]))


def _coverage(rows, statistic: str, method: str) -> float:  # type: ignore[no-untyped-def]
    (row,) = [r for r in rows if r.statistic == statistic and r.method == method]
    assert row.defined >= 95  # almost every draw gives an interval
    return row.coverage


def test_intervals_over_models_cover_at_five_models_where_the_bootstrap_did_not(rows) -> None:  # type: ignore[no-untyped-def]
    acc_before, acc_after = _coverage(rows, STATISTICS[0], "percentile bootstrap"), _coverage(rows, STATISTICS[0], "jackknife-t")
    assert acc_after >= 0.92 and acc_before <= 0.9 and acc_after - acc_before >= 0.05, (acc_before, acc_after)
    q_before, q_after = _coverage(rows, STATISTICS[1], "percentile bootstrap"), _coverage(rows, STATISTICS[1], "jackknife-t")
    assert q_after >= 0.9 and q_after > q_before, (q_before, q_after)
    # PIEs: the bootstrap interval of the count of all models lies above its own truth (resamples repeat models)
    pie_before, pie_after = _coverage(rows, STATISTICS[4], "percentile bootstrap"), _coverage(rows, STATISTICS[4], "jackknife-t")
    assert pie_before <= 0.2 and pie_after >= 0.93, (pie_before, pie_after)


def test_pruning_that_changes_nothing_is_rarely_called_an_effect_and_a_planted_one_is_found() -> None:
    null = calibrate(Scenario().null(), 5, reps=40, samples=300, seed=2)
    for cell, k in null.above_floor.items():
        assert null.rate(k) <= 0.05, (cell, k)
    for claim, tally in null.claims.items():
        assert null.rate(tally.get("supported", 0)) <= 0.05, (claim, tally)
    planted = calibrate(Scenario(), 5, reps=20, samples=300, seed=3)
    f3 = next(t for c, t in planted.claims.items() if c.startswith("F3") and "SCL's relative Q-Score change" in c)
    f1 = next(t for c, t in planted.claims.items() if c.startswith("F1") and "accuracy drop" in c)
    assert planted.rate(f3.get("supported", 0)) >= 0.9 and planted.rate(f1.get("supported", 0)) >= 0.5, (f1, f3)
    assert planted.rate(planted.above_floor["SCL · GMP 90%"]) > max(null.rate(k) for k in null.above_floor.values())
