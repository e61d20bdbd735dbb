"""F3 (SCL's Q-Score drops with sparsity, Sup's stays flat) and F4 (PD-Score predicts the pruned
PD-Score for Sup but not for SCL; PIEs have higher PD), each also set against the paper's own magnitudes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis import reference
from analysis.findings_claims import (
    CONTRADICTED,
    SCL,
    SUP,
    SUPPORTED,
    UNRESOLVED,
    Claim,
    Finding,
    _common_sparsities,
    _majority,
    _pct,
    _schedules,
    _sign_verdict,
    paper_verdict,
)
from analysis.pies import SettingPies
from analysis.runs import DENSE, Population, Setting, Study, method_name, pruning_name
from analysis.stats import Interval, interval, mean_difference_interval, sample_bootstrap_statistic, spearman
from analysis.uncertainty import LEVEL, StudyStats, seed_for


@dataclass
class _QChange:
    """Mean Q-Score of a method's dense and pruned populations and its change, with bootstrap values."""

    dense: float
    pruned: float
    change: Interval
    relative: float
    relative_boot: np.ndarray

    def text(self, method: str) -> str:
        return (
            f"{method_name(method)} {self.dense:.3f} → {self.pruned:.3f} ({self.change.fmt(3, signed=True)}; "
            f"{100 * self.relative:+.1f}%)"
        )


def _q_change(study: Study, stats: StudyStats, dataset: str, method: str, pruning: str, sparsity: float) -> _QChange | None:
    dense = stats.model_values_boot(study.populations[Setting(dataset, method, DENSE, 0.0)], "q_score")
    pruned = stats.model_values_boot(study.populations[Setting(dataset, method, pruning, sparsity)], "q_score")
    if dense is None or pruned is None:
        return None
    (vd, bd), (vp, bp) = dense, pruned
    d, q = float(vd.mean()), float(vp.mean())
    return _QChange(d, q, interval(q - d, bp - bd, LEVEL), (q - d) / d, (bp - bd) / bd)


def f3(dataset: str, study: Study, stats: StudyStats) -> Finding:
    finding = Finding("F3", "SCL's Q-Score drops with sparsity while Sup's stays flat", dataset)
    schedules = [p for p in _schedules(stats, dataset, SCL) if p in _schedules(stats, dataset, SUP)]
    if not schedules:
        finding.missing = "needs Sup and SCL pruned with the same schedule, each with its dense population"
        return finding
    for p in schedules:
        common = _common_sparsities(stats, (dataset, SUP, p), (dataset, SCL, p))
        if not common:
            continue
        s = common[-1]
        where = f"{pruning_name(p)} {_pct(s)}"
        scl, sup = _q_change(study, stats, dataset, SCL, p, s), _q_change(study, stats, dataset, SUP, p, s)
        if scl is None or sup is None:
            finding.claims.append(Claim(where, UNRESOLVED, "the runs have no q_score (add callbacks.metrics.QScore)"))
            continue
        finding.claims.append(
            Claim(f"{where}: SCL's mean Q-Score pruned − dense < 0", _sign_verdict(scl.change, expected_positive=False), scl.text(SCL))
        )
        gap = interval(
            abs(scl.relative) - abs(sup.relative), np.abs(scl.relative_boot) - np.abs(sup.relative_boot), LEVEL
        )
        finding.claims.append(
            Claim(
                f"{where}: |relative change| SCL − Sup > 0 (Sup flatter)",
                _sign_verdict(gap),
                f"{scl.text(SCL)}; {sup.text(SUP)}; difference of |relative changes| {100 * gap.estimate:+.1f} "
                f"[{100 * gap.low:+.1f}, {100 * gap.high:+.1f}] % points",
            )
        )
        for method, change in ((SCL, scl), (SUP, sup)):
            dense_ref = reference.table4_5(dataset, method, DENSE, 0)
            pruned_ref = reference.table4_5(dataset, method, p, round(s * 100))
            if dense_ref is None or pruned_ref is None:
                continue
            paper_rel = (pruned_ref.q - dense_ref.q) / dense_ref.q
            ours = interval(change.relative, change.relative_boot, LEVEL)
            finding.paper.append(Claim(
                f"{where}: {method_name(method)}'s relative Q-Score change",
                paper_verdict(ours, paper_rel),
                f"paper {dense_ref.q:g} → {pruned_ref.q:g} ({100 * paper_rel:+.1f} %); ours {100 * ours.estimate:+.1f} % "
                f"[{100 * ours.low:+.1f}, {100 * ours.high:+.1f}]",
            ))  # fmt: skip
    if not finding.claims:
        finding.missing = "Sup and SCL share no pruned sparsity"
    return finding


def _pd_mean(pop: Population, pd_models: int) -> np.ndarray | None:
    stacked = pop.stack("pd_score", first=pd_models)
    return None if stacked is None else stacked[0].mean(axis=0)


def f4(dataset: str, study: Study, pies: dict[Setting, SettingPies], stats: StudyStats) -> Finding:
    finding = Finding(
        "F4", "PD-Score of a sample predicts its pruned PD-Score well for Sup but not for SCL; PIEs have higher PD than non-PIEs", dataset
    )
    n = study.pd_models
    schedules = [p for p in _schedules(stats, dataset, SCL) if p in _schedules(stats, dataset, SUP)]
    for p in schedules:
        common = _common_sparsities(stats, (dataset, SUP, p), (dataset, SCL, p))
        if not common:
            continue
        s = common[-1]
        series = {}
        for method in (SUP, SCL):
            d = _pd_mean(study.populations[Setting(dataset, method, DENSE, 0.0)], n)
            q = _pd_mean(study.populations[Setting(dataset, method, p, s)], n)
            if d is None or q is None:
                break
            series[method] = (d, q)
        if len(series) < 2:
            finding.claims.append(Claim(f"{pruning_name(p)} {_pct(s)}: ρ Sup − ρ SCL > 0", UNRESOLVED, "no pd_score in these populations"))
            continue
        (sd, sp), (cd, cp) = series[SUP], series[SCL]
        boot = sample_bootstrap_statistic(
            lambda rows, sd=sd, sp=sp, cd=cd, cp=cp: spearman(sd[rows], sp[rows]) - spearman(cd[rows], cp[rows]), len(sd),
            n_boot=stats.n_boot, seed=seed_for(stats.seed, dataset, p, str(s), "f4"),
        )  # fmt: skip
        rho_sup, rho_scl = spearman(sd, sp), spearman(cd, cp)
        diff = interval(rho_sup - rho_scl, boot, LEVEL)
        finding.claims.append(
            Claim(
                f"{pruning_name(p)} {_pct(s)}: Spearman ρ(dense PD, pruned PD) Sup − SCL > 0",
                _sign_verdict(diff),
                f"ρ Sup {rho_sup:.3f}, SCL {rho_scl:.3f}; difference {diff.fmt(3, signed=True)} (PD over the first {n} seeds)",
            )
        )
    # PIEs vs non-PIEs, every pruned cell with pd_score
    cells = []
    for setting in sorted(s for s in pies if s.dataset == dataset):
        values = _pd_mean(study.populations[setting], n)
        flags = pies[setting].flags
        if values is None or not flags.any() or flags.all():
            continue
        ci = mean_difference_interval(values, flags, n_boot=stats.n_boot, seed=seed_for(stats.seed, setting.slug(), "pd-pies"))
        cells.append((setting, ci, float(values[flags].mean()), float(values[~flags].mean()), int(flags.sum())))
        ref = reference.table6(dataset, setting.method, setting.pruning, setting.percent)
        if ref is not None:
            paper_gap = ref.pies - ref.non_pies
            finding.paper.append(Claim(
                f"{setting.label(dataset=False)}: PD of PIEs − non-PIEs",
                paper_verdict(ci, paper_gap),
                f"paper {ref.pies:g} − {ref.non_pies:g} = {paper_gap:+.2f}; ours {ci.fmt(signed=True)}",
            ))  # fmt: skip
    if cells:
        verdicts = [_sign_verdict(ci) for _, ci, *_ in cells]
        verdict = _majority(verdicts)
        detail = "; ".join(
            f"{s.label(dataset=False)}: {a:.2f} vs {b:.2f} ({k} PIEs), {ci.fmt(signed=True)} [{v}]"
            for (s, ci, a, b, k), v in zip(cells, verdicts)
        )
        finding.claims.append(
            Claim(
                "mean PD of PIEs − non-PIEs > 0 (pruned models' PD)",
                verdict,
                f"{sum(v == SUPPORTED for v in verdicts)} of {len(cells)} cells above 0, "
                f"{sum(v == CONTRADICTED for v in verdicts)} below: {detail}",
            )
        )
    if not finding.claims:
        finding.missing = (
            "needs pd_score (callbacks.metrics.PredictionDepth) in Sup and SCL populations, dense and pruned with the same schedule"
        )
    return finding
