"""Populations of models drawn from a known process: how often the intervals cover the truth.

Pure NumPy (no Lightning, no torch). A *process* says how a model of one population predicts and
scores a fixed test set; drawing ``n`` models from it is what training ``n`` seeds does. Because the
process is known, so is the truth each reported statistic estimates, and the coverage of a 95%
interval (how often it contains the truth) can be counted over many draws — the check a referee
asks for, at the population sizes a study uses (5, 10, 30 models).

**The test set** (:class:`Samples`): ``N`` images of ``C`` classes, each with a difficulty ``b_i``
(logit scale), a class it is confused with, a "fragile" flag (the images pruning hurts, 10%), a
Q-Score factor and a base prediction depth that grows with difficulty.

**A model** of process ``P`` (:class:`Process`) has an ability ``a ~ Normal(P.ability, P.ability_sd)``
(seed-to-seed spread: a model is better or worse on *every* image, which is what makes models, not
images, the unit of resampling). On image ``i`` it is right with probability
``sigmoid(a - b_i - P.fragile_shift * fragile_i)``; when wrong it predicts the confusable class with
probability ``P.confuse``, else any other wrong class. Its Q-Score on image ``i`` is
``P.q * (1 + u) * q_factor_i`` with a model factor ``u ~ Normal(0, P.q_sd)``; its PD is
``pd_base_i + P.pd_shift * fragile_i + v + Normal(0, P.pd_noise)`` with ``v ~ Normal(0, 0.5)``.

**The truths**: accuracy differences are integrals over the ability (Gauss–Hermite, exact); the
relative Q-Score change is ``P_pruned.q / P_dense.q - 1`` exactly; the Spearman-ρ difference, the PD
gap of PIEs − non-PIEs and the PIE counts depend on the population size and are Monte-Carlo
expectations over ``truth_draws`` independent populations (their own Monte-Carlo error is reported).

:func:`coverage` measures, per statistic, population size and method, the share of draws whose
interval contains the truth: ``before`` = what ``analyze`` printed before (percentile bootstrap over
models; over test images for ρ and the PD gap; the PIE count of all models with its bootstrap
interval) and ``after`` = the jackknife over models with a Student-t quantile
(:func:`analysis.intervals.over_models`, via :mod:`analysis.estimators`). ``scripts/coverage.py``
prints the whole table; ``tests/test_analysis_coverage.py`` keeps a small version of it.

:func:`calibrate` runs the statistics and findings of ``analyze`` on simulated studies
(:func:`simulated_study`) and counts the verdicts: on populations where pruning changes nothing
(:meth:`Scenario.null`) every "above the floor" and "supported" is a false positive;
``scripts/calibrate_null.py`` prints the rates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from analysis.estimators import pd_gap, pie_comparison, relative_change, rho_difference, spearman_of_means
from analysis.intervals import (
    Interval,
    bootstrap_indices,
    bootstrap_means,
    difference_over_models,
    interval,
    mean_difference_interval,
    spearman,
)
from analysis.pies import pie_flags
from analysis.selections import DenseSplits, MatchedSplits, comparison_size, pie_counts

LEVEL = 0.95
FRAGILE = 0.10


@dataclass(frozen=True)
class Process:
    """How one population's models behave on the test set (module docstring)."""

    ability: float = 3.0
    ability_sd: float = 0.15
    fragile_shift: float = 0.0
    confuse: float = 0.7
    q: float = 0.70
    q_sd: float = 0.03
    pd_noise: float = 1.5
    pd_shift: float = 0.0


@dataclass(frozen=True)
class Samples:
    """The fixed test set of a simulation."""

    labels: np.ndarray  # int [N]
    difficulty: np.ndarray  # [N], logit scale
    confusable: np.ndarray  # int [N], the wrong class most wrong predictions go to
    fragile: np.ndarray  # bool [N]
    q_factor: np.ndarray  # [N]
    pd_base: np.ndarray  # [N]
    num_classes: int

    @property
    def n(self) -> int:
        return len(self.labels)


def make_samples(n: int, num_classes: int = 10, *, seed: int = 0) -> Samples:
    """``n`` test images (module docstring); fragile = the hardest 10% that are not the very hardest."""
    rng = np.random.default_rng([seed, 1])
    labels = rng.integers(0, num_classes, size=n)
    difficulty = rng.normal(0.0, 1.6, size=n)
    confusable = (labels + rng.integers(1, num_classes, size=n)) % num_classes
    rank = np.argsort(np.argsort(difficulty)) / max(1, n - 1)
    fragile = (rank > 0.85) & (rank <= 0.85 + FRAGILE)
    q_factor = 1.0 + 0.3 * rng.normal(size=n)
    pd_base = np.clip(8.0 + 2.5 * difficulty, 1.0, 16.0)
    return Samples(labels, difficulty, confusable, fragile, q_factor, pd_base, num_classes)


@dataclass(frozen=True)
class Models:
    """``m`` models drawn from one process: predictions, per-sample Q-Score and PD, ``[m, N]`` each."""

    preds: np.ndarray
    q: np.ndarray
    pd: np.ndarray


def draw_models(process: Process, samples: Samples, m: int, rng: np.random.Generator) -> Models:
    """``m`` models of ``process`` on ``samples`` (module docstring)."""
    n, c = samples.n, samples.num_classes
    ability = rng.normal(process.ability, process.ability_sd, size=(m, 1))
    logit = ability - samples.difficulty[None, :] - process.fragile_shift * samples.fragile[None, :]
    right = rng.random((m, n)) < 1.0 / (1.0 + np.exp(-logit))
    to_confusable = rng.random((m, n)) < process.confuse
    other = (samples.labels[None, :] + rng.integers(1, c, size=(m, n))) % c
    wrong = np.where(to_confusable, samples.confusable[None, :], other)
    preds = np.where(right, samples.labels[None, :], wrong).astype(np.int64)
    q = process.q * (1.0 + rng.normal(0.0, process.q_sd, size=(m, 1))) * samples.q_factor[None, :]
    pd = (samples.pd_base + process.pd_shift * samples.fragile)[None, :] + rng.normal(0.0, 0.5, size=(m, 1))
    pd = pd + rng.normal(0.0, process.pd_noise, size=(m, n))
    return Models(preds, q, pd)


def accuracy(models: Models, samples: Samples) -> np.ndarray:
    """Per-model test accuracy in percent, ``[m]``."""
    return 100.0 * (models.preds == samples.labels[None, :]).mean(axis=1)


def expected_accuracy(process: Process, samples: Samples, nodes: int = 40) -> float:
    """The process's expected test accuracy (%), integrating the model ability (Gauss–Hermite)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    ability = process.ability + process.ability_sd * x
    logit = ability[:, None] - samples.difficulty[None, :] - process.fragile_shift * samples.fragile[None, :]
    return float(100.0 * (w[:, None] / (1.0 + np.exp(-logit))).sum(axis=0).mean())


# ---------------------------------------------------------------------------------------------
# the scenario the coverage is measured on: Sup and SCL, each dense and pruned
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """Four processes: Sup dense / pruned (barely changed), SCL dense / pruned (PIEs on the fragile
    images, lower Q-Score, noisier PD) — effects of the size the study sees."""

    sup_dense: Process = Process(ability=3.2, q=1.40, pd_noise=1.0)
    sup_pruned: Process = Process(ability=3.0, q=1.37, pd_noise=1.2, fragile_shift=0.4)
    scl_dense: Process = Process(ability=2.2, ability_sd=0.25, q=0.72, pd_noise=1.5)
    scl_pruned: Process = Process(ability=1.7, ability_sd=0.35, q=0.60, pd_noise=2.5, fragile_shift=1.5, pd_shift=1.0)

    def null(self) -> Scenario:
        """Pruning changes nothing: each method's pruned models come from its dense process."""
        return replace(self, sup_pruned=self.sup_dense, scl_pruned=self.scl_dense)


STATISTICS = (
    "accuracy difference pruned − dense (points)",
    "relative Q-Score change pruned / dense − 1",
    "Spearman ρ difference Sup − SCL (PD, dense vs pruned)",
    "PD gap PIEs − non-PIEs (pruned models)",
    "PIEs: count of all models (before) / above the floor at h vs h (after)",
)


@dataclass
class CoverageRow:
    """Coverage of one statistic by one method at one population size."""

    statistic: str
    method: str
    resamples: str
    n_models: int
    covered: int = 0
    defined: int = 0
    widths: list[float] = field(default_factory=list)
    truth: float = float("nan")
    truth_se: float = 0.0  # Monte-Carlo error of the truth (0 when exact)

    @property
    def coverage(self) -> float:
        return self.covered / self.defined if self.defined else float("nan")

    def add(self, ci: Interval) -> None:
        if not ci.defined:
            return
        self.defined += 1
        self.covered += bool(ci.low <= self.truth <= ci.high)
        self.widths.append(ci.high - ci.low)


def _truths(
    scenario: Scenario, samples: Samples, n: int, draws: int, rng: np.random.Generator, statistics: Sequence[str] = STATISTICS
) -> dict[str, tuple[float, float]]:
    """Monte-Carlo truths (mean, standard error) of the size-dependent statistics at ``n`` models
    (only those ``statistics`` need)."""
    h = comparison_size(n, n)
    values: dict[str, list[float]] = {"rho": [], "gap": [], "count": [], "excess": []}
    for _ in range(draws):
        cd, cp = draw_models(scenario.scl_dense, samples, n, rng), draw_models(scenario.scl_pruned, samples, n, rng)
        full = np.arange(n)
        if STATISTICS[2] in statistics:
            sd, sp = draw_models(scenario.sup_dense, samples, n, rng), draw_models(scenario.sup_pruned, samples, n, rng)
            values["rho"].append(spearman_of_means(sd.pd, sp.pd, full, full) - spearman_of_means(cd.pd, cp.pd, full, full))
        flags = pie_flags(cd.preds, cp.preds, num_classes=samples.num_classes)
        if STATISTICS[3] in statistics:
            pd = cp.pd.mean(axis=0)
            values["gap"].append(pd[flags].mean() - pd[~flags].mean() if flags.any() and not flags.all() else np.nan)
        values["count"].append(int(flags.sum()))
        if STATISTICS[4] in statistics:
            # h vs h: one dense group against one pruned group and against another, independent dense group
            extra = draw_models(scenario.scl_dense, samples, h, rng)
            c = samples.num_classes
            values["excess"].append(
                int(pie_flags(cd.preds[:h], cp.preds[:h], num_classes=c).sum()) - int(pie_flags(cd.preds[:h], extra.preds, num_classes=c).sum())
            )
    out = {}
    for key, got in values.items():
        v = np.asarray(got, dtype=np.float64)
        v = v[np.isfinite(v)]
        out[key] = (float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))) if len(v) > 1 else (float("nan"), float("nan"))
    return out


def coverage(
    sizes: Sequence[int] = (5, 10, 30), *, reps: int = 400, samples: int = 1000, n_boot: int = 1000, truth_draws: int = 2000,
    seed: int = 0, statistics: Sequence[str] = STATISTICS, scenario: Scenario | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[CoverageRow]:  # fmt: skip
    """Coverage of the nominal 95% intervals, ``before`` and ``after``, per statistic and size.

    Each of ``reps`` draws makes the four populations of the :class:`Scenario` with ``n`` models
    each (the PD of all ``n``), computes each statistic's interval by both methods and counts
    whether it contains the truth. The PIE statistic differs by method: ``before`` is the count of
    all ``n`` vs ``n`` models with its bootstrap interval (truth: the expected count at ``n`` vs
    ``n``), ``after`` the excess over the floor at ``h`` vs ``h`` (truth: the expected excess).
    """
    scenario = scenario or Scenario()
    test = make_samples(samples)
    rows: list[CoverageRow] = []
    for n in sizes:
        rng = np.random.default_rng([seed, n, 7])
        truths = _truths(scenario, test, n, truth_draws, np.random.default_rng([seed, n, 11]), statistics)
        exact = {
            STATISTICS[0]: (expected_accuracy(scenario.scl_pruned, test) - expected_accuracy(scenario.scl_dense, test), 0.0),
            STATISTICS[1]: (scenario.scl_pruned.q / scenario.scl_dense.q - 1.0, 0.0),
            STATISTICS[2]: truths["rho"],
            STATISTICS[3]: truths["gap"],
        }
        mine: dict[tuple[str, str], CoverageRow] = {}
        for stat in statistics:
            for method, resamples in (("percentile bootstrap", "models"), ("jackknife-t", "models")):
                if stat in (STATISTICS[2], STATISTICS[3]) and method == "percentile bootstrap":
                    resamples = "test images"
                if stat == STATISTICS[4]:
                    truth = truths["count"] if method == "percentile bootstrap" else truths["excess"]
                    if method == "jackknife-t":
                        resamples = "models (h-subsets)"
                else:
                    truth = exact[stat]
                row = CoverageRow(stat, method, resamples, n, truth=truth[0], truth_se=truth[1])
                mine[(stat, method)] = row
                rows.append(row)
        for rep in range(reps):
            sd, sp = draw_models(scenario.sup_dense, test, n, rng), draw_models(scenario.sup_pruned, test, n, rng)
            cd, cp = draw_models(scenario.scl_dense, test, n, rng), draw_models(scenario.scl_pruned, test, n, rng)
            bseed = [seed, n, rep]
            for stat in statistics:
                before, after = _intervals(stat, sd, sp, cd, cp, test, n_boot, bseed)
                mine[(stat, "percentile bootstrap")].add(before)
                mine[(stat, "jackknife-t")].add(after)
            if progress is not None and (rep + 1) % max(1, reps // 10) == 0:
                progress(f"n={n}: {rep + 1}/{reps} draws")
    return rows


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row pair of ``x, y [B, N]`` (average ranks for ties): :func:`spearman`, vectorised."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    return np.asarray((rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1)))


def _intervals(
    stat: str, sd: Models, sp: Models, cd: Models, cp: Models, test: Samples, n_boot: int, bseed: list[int]
) -> tuple[Interval, Interval]:
    """``(before, after)`` intervals of one statistic on one draw (SCL's cells where one is needed)."""
    c = test.num_classes
    if stat == STATISTICS[0]:
        a_d, a_p = accuracy(cd, test), accuracy(cp, test)
        rng = np.random.default_rng(bseed)
        ia = rng.integers(0, len(a_p), size=(n_boot, len(a_p)))
        ib = rng.integers(0, len(a_d), size=(n_boot, len(a_d)))
        before = interval(a_p.mean() - a_d.mean(), bootstrap_means(a_p, ia) - bootstrap_means(a_d, ib), LEVEL)
        return before, difference_over_models(a_p, a_d, level=LEVEL)
    if stat == STATISTICS[1]:
        qd, qp = cd.q.mean(axis=1), cp.q.mean(axis=1)
        bd = bootstrap_means(qd, bootstrap_indices(len(qd), n_boot, [*bseed, 1]))
        bp = bootstrap_means(qp, bootstrap_indices(len(qp), n_boot, [*bseed, 2]))
        before = interval(qp.mean() / qd.mean() - 1.0, bp / bd - 1.0, LEVEL)
        return before, relative_change(qd, qp, level=LEVEL)
    if stat == STATISTICS[2]:
        xs, ys, xc, yc = sd.pd.mean(0), sp.pd.mean(0), cd.pd.mean(0), cp.pd.mean(0)
        rows = bootstrap_indices(len(xs), n_boot, [*bseed, 3])  # test images resampled, as analyze did
        boot = _spearman_rows(xs[rows], ys[rows]) - _spearman_rows(xc[rows], yc[rows])
        before = interval(spearman(xs, ys) - spearman(xc, yc), boot, LEVEL)
        return before, rho_difference(sd.pd, sp.pd, cd.pd, cp.pd, level=LEVEL)[0]
    if stat == STATISTICS[3]:
        flags = pie_flags(cd.preds, cp.preds, num_classes=c)
        values = cp.pd.mean(axis=0)
        before = mean_difference_interval(values, flags, n_boot=n_boot, seed=[*bseed, 4], level=LEVEL)
        return before, pd_gap(cd.preds, cp.preds, cp.pd, num_classes=c, level=LEVEL)
    # PIEs
    n = cd.preds.shape[0]
    idx_d = bootstrap_indices(n, n_boot, [*bseed, 5])
    idx_p = bootstrap_indices(n, n_boot, [*bseed, 6])
    count = int(pie_flags(cd.preds, cp.preds, num_classes=c).sum())
    before = interval(count, pie_counts(cd.preds, cp.preds, idx_d, idx_p, num_classes=c), LEVEL)
    h = comparison_size(n, n)
    splits = MatchedSplits(DenseSplits(cd.preds, h, num_classes=c, seed=[*bseed, 7]), cp.preds, seed=[*bseed, 8])
    return before, pie_comparison(splits, level=LEVEL).excess


# ---------------------------------------------------------------------------------------------
# null calibration: what analyze says about populations where pruning changes nothing
# ---------------------------------------------------------------------------------------------
def simulated_study(scenario: Scenario, samples: Samples, n: int, rng: np.random.Generator, *, later: Process | None = None) -> Any:
    """A :class:`analysis.runs.Study` of ``n`` models per cell drawn from ``scenario``: Sup dense and
    GMP 90 %, SCL dense, GMP 90 % and ΔGMP 90 % (``later``, default the SCL dense process) — the
    populations ``analyze`` reads, in memory (predictions, Q-Score and PD per model)."""
    from analysis.runs import DENSE, Run, Setting, Study, group_runs

    processes = {
        ("sup", DENSE): scenario.sup_dense, ("sup", "gmp"): scenario.sup_pruned,
        ("supcon", DENSE): scenario.scl_dense, ("supcon", "gmp"): scenario.scl_pruned,
        ("supcon", "delta_gmp"): later or scenario.scl_dense,
    }  # fmt: skip
    runs = []
    for (method, pruning), process in processes.items():
        models = draw_models(process, samples, n, rng)
        sparsity = 0.0 if pruning == DENSE else 0.9
        for seed in range(n):
            arrays = {"index": np.arange(samples.n), "label": samples.labels, "pred": models.preds[seed],
                      "q_score": models.q[seed], "pd_score": models.pd[seed]}  # fmt: skip
            summary: dict[str, Any] = {"dataset": "simulated", "method": method, "seed": seed, "status": "complete",
                                       "num_classes": samples.num_classes}  # fmt: skip
            if pruning != DENSE:
                summary.update(pruning=pruning, target_sparsity=sparsity, achieved_sparsity=sparsity)
            setting = Setting("simulated", method, pruning, sparsity)
            runs.append(Run(Path(f"/simulated/{method}_{pruning}/s{seed}"), summary, arrays, setting))
    return Study(runs=runs, populations=group_runs(runs), warnings=[])


@dataclass
class Calibration:
    """How often ``analyze``'s verdicts came out over ``reps`` simulated studies of ``n`` models per cell."""

    n_models: int
    reps: int
    above_floor: dict[str, int] = field(default_factory=dict)  # cell label -> studies where its PIEs are above the floor
    claims: dict[str, dict[str, int]] = field(default_factory=dict)  # sub-claim -> verdict -> count
    findings: dict[str, dict[str, int]] = field(default_factory=dict)  # F1..F4 -> verdict -> count

    def rate(self, count: int) -> float:
        return count / self.reps if self.reps else float("nan")


def calibrate(
    scenario: Scenario, n_models: int, *, reps: int = 200, samples: int = 1000, seed: int = 0, later: Process | None = None,
    progress: Callable[[str], None] | None = None,
) -> Calibration:  # fmt: skip
    """Run the statistics and findings of ``analyze`` (:func:`analysis.uncertainty.compute_stats`,
    :func:`analysis.findings.all_findings`) on ``reps`` simulated studies and count the verdicts.

    With ``scenario.null()`` pruning changes nothing: every "above the floor" and every "supported"
    is a false positive, whose rate a 95% interval should keep at or below 5% (2.5% one-sided).
    """
    from analysis.findings import all_findings
    from analysis.pies import pies_per_setting
    from analysis.uncertainty import compute_stats

    test = make_samples(samples, seed=seed)
    rng = np.random.default_rng([seed, n_models, 13])
    out = Calibration(n_models, reps)
    for rep in range(reps):
        study = simulated_study(scenario, test, n_models, rng, later=later)
        pies = pies_per_setting(study.populations)
        stats = compute_stats(study, pies, seed=seed)
        for setting, cell in stats.cells.items():
            key = setting.label(dataset=False)
            out.above_floor[key] = out.above_floor.get(key, 0) + bool(cell.above_floor)
        for finding in all_findings(study, pies, stats)["simulated"]:
            verdict = finding.verdict.split(" (")[0]
            tally = out.findings.setdefault(finding.key, {})
            tally[verdict] = tally.get(verdict, 0) + 1
            for claim in finding.claims:
                counts = out.claims.setdefault(f"{finding.key}: {claim.text}", {})
                counts[claim.verdict] = counts.get(claim.verdict, 0) + 1
        if progress is not None and (rep + 1) % max(1, reps // 10) == 0:
            progress(f"n={n_models}: {rep + 1}/{reps} studies")
    return out


__all__ = [
    "Calibration", "CoverageRow", "LEVEL", "Models", "Process", "STATISTICS", "Samples", "Scenario", "accuracy", "calibrate",
    "coverage", "draw_models", "expected_accuracy", "make_samples", "simulated_study",
]  # fmt: skip
