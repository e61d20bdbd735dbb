"""analysis.findings and analysis.uncertainty on studies built in memory (no training): populations
drawn so that each of the paper's findings F1–F4 clearly holds, its mirror image where it clearly
fails, and too few models to tell — the verdicts must follow, with the numbers beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.findings import Claim, Finding, all_findings, judge
from analysis.pies import pies_per_setting
from analysis.runs import DENSE, Run, Setting, Study, group_runs
from analysis.stats import Interval, difference_over_models
from analysis.uncertainty import compute_stats

N, C = 400, 10


def _runs(rng, labels, hard, method, pruning, sparsity, *, models, noise, hard_noise, q, pd_shift, pd_noise, confuse=0.0) -> list[Run]:
    """``models`` runs: predictions = labels, flipped with prob. ``noise`` (``hard_noise`` on the hard
    samples; a flip of a hard sample goes to the next class with prob. ``confuse``, else to a random
    wrong one); q_score ~ q; pd_score = a per-sample base depth (deeper on hard samples) + shift + noise."""
    base = np.where(hard, 12.0, 8.0) + (np.arange(N) % 5)
    out = []
    for seed in range(models):
        p = np.where(hard, hard_noise, noise)
        pred = labels.copy()
        flip = rng.random(N) < p
        pred[flip] = (labels[flip] + rng.integers(1, C, size=int(flip.sum()))) % C
        to_next = flip & hard & (rng.random(N) < confuse)
        pred[to_next] = (labels[to_next] + 1) % C
        pd = np.clip(np.round(base + pd_shift + rng.normal(0, pd_noise, N)), 1, 16)
        arrays = {
            "index": np.arange(N), "label": labels, "pred": pred,
            "q_score": rng.normal(q, 0.05, N), "z_score": rng.normal(5, 0.1, N), "l1_norm": rng.normal(7, 0.1, N),
            "pd_score": pd.astype(np.int64),
        }  # fmt: skip
        summary = {"dataset": "toy", "method": method, "seed": seed, "status": "complete"}
        if pruning != DENSE:
            summary.update(pruning=pruning, target_sparsity=sparsity, achieved_sparsity=sparsity)
        setting = Setting("toy", method, pruning, sparsity)
        out.append(Run(Path(f"/runs/{method}_{pruning}_{sparsity}/s{seed}"), summary, arrays, setting))
    return out


def _study(*, models: int = 8, mirror: bool = False, scl_pd_noise: float = 6.0) -> Study:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, size=N)
    hard = rng.random(N) < 0.2
    mild = dict(noise=0.03, hard_noise=0.25, q=1.4, pd_shift=0.0, pd_noise=0.5)  # Sup: pruning barely matters
    # SCL pruned early: many errors on the hard samples, Q drops, PD scrambled
    # effects of the paper's order (within 3x of its CIFAR-10 numbers): SCL drops ~6.6 points vs Sup ~1, Q −30 %
    harsh = dict(noise=0.05, hard_noise=0.45, q=0.5, pd_shift=0.0, pd_noise=scl_pd_noise, confuse=0.9)
    later = dict(noise=0.04, hard_noise=0.33, q=0.66, pd_shift=0.0, pd_noise=3.0, confuse=0.9)
    dense_sup = dict(noise=0.03, hard_noise=0.2, q=1.44, pd_shift=0.0, pd_noise=0.5)
    dense_scl = dict(noise=0.03, hard_noise=0.2, q=0.72, pd_shift=0.0, pd_noise=0.5)
    sup_pruned, scl_pruned = (harsh, mild) if mirror else (mild, harsh)
    if mirror:
        sup_pruned = dict(sup_pruned, q=1.44 * 0.5 / 0.72)  # Sup's Q drops, SCL's stays
        scl_pruned = dict(scl_pruned, q=0.8)  # SCL's Q rises a little
    runs = [
        *_runs(rng, labels, hard, "sup", DENSE, 0.0, models=models, **dense_sup),
        *_runs(rng, labels, hard, "sup", "gmp", 0.9, models=models, **sup_pruned),
        *_runs(rng, labels, hard, "supcon", DENSE, 0.0, models=models, **dense_scl),
        *_runs(rng, labels, hard, "supcon", "gmp", 0.9, models=models, **scl_pruned),
        *_runs(rng, labels, hard, "supcon", "delta_gmp", 0.9, models=models, **(harsh if mirror else later)),
    ]
    if mirror:  # F2's mirror: the later schedule is the harsh one, GMP the mild one
        runs = [r for r in runs if r.setting.pruning != "gmp" or r.setting.method != "supcon"]
        runs += _runs(rng, labels, hard, "supcon", "gmp", 0.9, models=models, **scl_pruned)
    return Study(runs=runs, populations=group_runs(runs), warnings=[])


def _verdicts(study: Study) -> dict[str, tuple[str, list[str]]]:
    pies = pies_per_setting(study.populations)
    stats = compute_stats(study, pies, n_splits=10, seed=0)
    return {f.key: (f.verdict, [c.verdict for c in f.claims]) for f in all_findings(study, pies, stats)["toy"]}


def test_findings_supported_when_the_populations_show_them() -> None:
    verdicts = _verdicts(_study())
    assert verdicts["F1"] == ("supports", ["supported", "supported"])
    assert verdicts["F2"] == ("supports", ["supported", "supported"])
    assert verdicts["F3"] == ("supports", ["supported", "supported"])
    # ρ: SCL's PD scrambled (ρ 0.58 < 0.7); the PD gap: SCL GMP of the paper's order, ΔGMP has no paper number
    assert verdicts["F4"] == ("direction only (sizes not all of the paper's order)", ["supported", "direction only"])


def test_a_resolved_direction_of_another_size_than_the_papers_is_direction_only() -> None:
    """The committed Fashion-MNIST study's F4 in miniature: both ρ high (SCL's PD barely noisier), the
    gap resolved — 'PD carries over for both', not the paper's 'not for SCL'."""
    study = _study(scl_pd_noise=1.0)
    pies = pies_per_setting(study.populations)
    f4 = all_findings(study, pies, compute_stats(study, pies, n_splits=10))["toy"][3]
    rho = f4.claims[0]
    assert rho.verdict == "direction only" and "says PD carries over for SCL too" in rho.evidence, rho.evidence
    # the rule itself: sign by the interval, size within 3x of the paper's effect either way
    paper = 5.39
    assert judge(Interval(1.5, 1.0, 2.0), paper)[0] == "direction only"  # 0.28x the paper's
    assert judge(Interval(5.0, 1.0, 9.0), paper)[0] == "supported"
    assert judge(Interval(17.0, 15.0, 19.0), paper)[0] == "direction only"  # 3.15x: larger than the paper's order
    assert judge(Interval(1.5, 1.0, 2.0), None) == ("direction only", "size: the paper prints no number for this comparison")
    assert judge(Interval(1.5, 1.0, 2.0), -0.57)[0] == "direction only"  # the paper's own number points the other way
    assert judge(Interval(-0.2, -0.3, -0.1), -0.22, expected_positive=False)[0] == "supported"
    assert judge(Interval(1.0, -1.0, 3.0), paper) == ("cannot resolve", "")
    assert judge(Interval(-2.0, -3.0, -1.0), paper) == ("contradicted", "")
    # a finding's verdict says what its sub-claims add up to, and names what the rest is
    def verdict(*claims: str) -> str:
        return Finding("F0", "", "toy", claims=[Claim("", c, "") for c in claims]).verdict

    assert verdict("supported", "supported") == "supports"
    assert verdict("supported", "direction only") == "direction only (sizes not all of the paper's order)"
    assert verdict("supported", "cannot resolve") == "partly supports (the rest cannot be resolved)"
    assert verdict("supported", "direction only", "cannot resolve") == "partly supports (the rest is direction only or cannot be resolved)"
    assert verdict("direction only", "cannot resolve") == "direction only in part (the rest cannot be resolved)"
    assert verdict("supported", "contradicted") == "mixed" and verdict() == "cannot resolve"


def test_findings_contradicted_by_the_mirror_image() -> None:
    verdicts = _verdicts(_study(mirror=True))
    assert verdicts["F1"] == ("contradicts", ["contradicted", "contradicted"])
    assert verdicts["F2"] == ("contradicts", ["contradicted", "contradicted"])
    assert verdicts["F3"] == ("contradicts", ["contradicted", "contradicted"])
    assert verdicts["F4"][1][0] == "contradicted"  # ρ(dense, pruned PD): Sup scrambled, SCL kept


def test_findings_need_their_populations_and_a_noise_floor() -> None:
    study = _study(models=2)  # no noise floor (< 3 dense models): PIE claims cannot be resolved
    pies = pies_per_setting(study.populations)
    stats = compute_stats(study, pies, n_splits=10, seed=0)
    assert not stats.floors and all(c.above_floor is None and c.pies is None for c in stats.cells.values())
    f1 = all_findings(study, pies, stats)["toy"][0]
    # two models: Student-t with ~2 df cannot resolve even a 6-point drop; no floor for the PIEs
    assert [c.verdict for c in f1.claims] == ["cannot resolve", "cannot resolve"]
    assert f1.claims[1].evidence == "too few models for PIE counts beside a floor of their size"
    only_sup = Study(
        runs=[r for r in study.runs if r.setting.method == "sup"],
        populations={s: p for s, p in study.populations.items() if s.method == "sup"},
        warnings=[],
    )
    pies = pies_per_setting(only_sup.populations)
    findings = all_findings(only_sup, pies, compute_stats(only_sup, pies, n_splits=5))["toy"]
    assert [f.verdict for f in findings[:3]] == ["cannot resolve"] * 3
    assert findings[0].missing.startswith("needs Sup and SCL pruned with the same schedule")
    assert findings[1].missing == "needs SCL pruned with GMP and with ΔGMP and/or One-Shot (SCL schedules here: none)"


def test_pie_claims_within_the_noise_floor_cannot_be_resolved() -> None:
    """SCL's dense and GMP models are equally noisy: many PIEs (far more than Sup's), all of them noise."""
    study = _study()
    rng = np.random.default_rng(1)
    for run in study.runs:
        if run.setting.method == "supcon" and run.setting.pruning in (DENSE, "gmp"):
            labels = run.arrays["label"]
            pred = labels.copy()
            flip = rng.random(N) < 0.6
            pred[flip] = rng.integers(0, C, size=int(flip.sum()))
            run.arrays["pred"] = pred
    pies = pies_per_setting(study.populations)
    stats = compute_stats(study, pies, n_splits=10, seed=0)
    cell = stats.cells[Setting("toy", "supcon", "gmp", 0.9)]
    assert cell.pies is not None and cell.above_floor is False
    f1 = all_findings(study, pies, stats)["toy"][0]
    assert cell.pies.pruned_mean > 5 * stats.cells[Setting("toy", "sup", "gmp", 0.9)].pies.pruned_mean  # the difference itself is clear
    assert f1.claims[1].verdict == "cannot resolve" and "not above their noise floor" in f1.claims[1].evidence


def test_study_statistics_are_over_models_and_reproducible() -> None:
    study = _study()
    pies = pies_per_setting(study.populations)
    a = compute_stats(study, pies, n_splits=10, seed=3)
    b = compute_stats(study, pies, n_splits=10, seed=3)
    setting = Setting("toy", "supcon", "gmp", 0.9)
    cell = a.cells[setting]
    np.testing.assert_array_equal(cell.pies.pruned, b.cells[setting].pies.pruned)
    dense, pruned = study.populations[setting.dense], study.populations[setting]
    welch = difference_over_models(pruned.accuracies(), dense.accuracies())
    assert (cell.acc_diff.estimate, cell.acc_diff.low, cell.acc_diff.high) == (welch.estimate, welch.low, welch.high)
    assert cell.count == pies[setting].count and cell.h == 3 == a.floors[setting.dense].h  # 8 dense: (8 - 1) // 2
    # the floor beside the cell's count is its dense population's floor at the same h
    np.testing.assert_array_equal(np.sort(cell.pies.floor), np.sort(a.floors[setting.dense].counts))
    # a population's numbers do not depend on the other populations loaded
    alone = Study(runs=[*dense.runs, *pruned.runs], populations={setting.dense: dense, setting: pruned}, warnings=[])
    c = compute_stats(alone, pies_per_setting(alone.populations), n_splits=10, seed=3)
    np.testing.assert_array_equal(c.cells[setting].pies.pruned, cell.pies.pruned)
    assert c.cells[setting].pies.excess == cell.pies.excess
