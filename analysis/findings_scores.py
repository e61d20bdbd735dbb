"""F3 (SCL's Q-Score drops with sparsity, Sup's stays flat) and F4 (PD-Score predicts the pruned
PD-Score for Sup but not for SCL; PIEs have higher PD), each also set against the paper's own magnitudes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis import reference
from analysis.estimators import pd_gap, rho_difference
from analysis.findings_claims import (
    CONTRADICTED,
    DIRECTION,
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
    judge,
    paper_verdict,
)
from analysis.pies import SettingPies
from analysis.runs import DENSE, Population, Setting, Study, method_name, pruning_name
from analysis.stats import Interval
from analysis.uncertainty import StudyStats


@dataclass
class _QChange:
    """Mean Q-Score of a method's dense and pruned populations (per-model means) and its relative change."""

    dense: float
    pruned: float
    relative: Interval  # pruned / dense - 1, over models

    def text(self, method: str) -> str:
        return f"{method_name(method)} {self.dense:.3f} → {self.pruned:.3f} ({self.relative.scaled(100).fmt(1, signed=True)} %)"


def _q_values(study: Study, stats: StudyStats, setting: Setting) -> np.ndarray | None:
    return stats.model_values(study.populations[setting], "q_score")


def _q_change(study: Study, stats: StudyStats, dataset: str, method: str, pruning: str, sparsity: float) -> _QChange | None:
    dense_s, pruned_s = Setting(dataset, method, DENSE, 0.0), Setting(dataset, method, pruning, sparsity)
    vd, vp = _q_values(study, stats, dense_s), _q_values(study, stats, pruned_s)
    if vd is None or vp is None:
        return None
    rel = stats.over(lambda keep: float(vp[keep[pruned_s]].mean() / vd[keep[dense_s]].mean() - 1.0), [dense_s, pruned_s])
    return _QChange(float(vd.mean()), float(vp.mean()), rel)


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
        verdict, size = judge(scl.relative, reference.effect_q_relative(SCL, p, round(s * 100)), expected_positive=False, digits=1, unit=" %",
                              scale=100.0)
        finding.claims.append(
            Claim(f"{where}: SCL's relative Q-Score change pruned / dense − 1 < 0", verdict,
                  scl.text(SCL) + (f"; {size}" if size else ""))
        )  # fmt: skip
        settings = [Setting(dataset, m, q, x) for m in (SCL, SUP) for q, x in ((DENSE, 0.0), (p, s))]
        values = {st: _q_values(study, stats, st) for st in settings}

        def flatter(keep, values=values, settings=settings) -> float:  # |relative change| SCL − Sup
            rel = [values[settings[i + 1]][keep[settings[i + 1]]].mean() / values[settings[i]][keep[settings[i]]].mean() - 1.0
                   for i in (0, 2)]  # fmt: skip
            return float(abs(rel[0]) - abs(rel[1]))

        gap = stats.over(flatter, settings)
        verdict, size = judge(gap, reference.effect_f3_gap(p, round(s * 100)), digits=1, unit=" % points", scale=100.0)
        finding.claims.append(
            Claim(
                f"{where}: |relative change| SCL − Sup > 0 (Sup flatter)",
                verdict,
                f"{scl.text(SCL)}; {sup.text(SUP)}; difference of |relative changes| {gap.scaled(100).fmt(1, signed=True)} % points"
                + (f"; {size}" if size else ""),
            )
        )
        for method, change in ((SCL, scl), (SUP, sup)):
            dense_ref = reference.table4_5(dataset, method, DENSE, 0)
            pruned_ref = reference.table4_5(dataset, method, p, round(s * 100))
            if dense_ref is None or pruned_ref is None:
                continue
            paper_rel = (pruned_ref.q - dense_ref.q) / dense_ref.q
            finding.paper.append(Claim(
                f"{where}: {method_name(method)}'s relative Q-Score change",
                paper_verdict(change.relative, paper_rel),
                f"paper {dense_ref.q:g} → {pruned_ref.q:g} ({100 * paper_rel:+.1f} %); ours {change.relative.scaled(100).fmt(1, signed=True)} %",
            ))  # fmt: skip
    if not finding.claims:
        finding.missing = "Sup and SCL share no pruned sparsity"
    return finding


def _pd(pop: Population, pd_models: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(rows, PD [len(rows), N])``: the first ``pd_models`` runs that have ``pd_score`` (Table 6's models)."""
    rows = np.array([i for i, r in enumerate(pop.runs[:pd_models]) if r.has("pd_score")], dtype=np.int64)
    if not len(rows):
        return None
    return rows, np.stack([pop.runs[i].arrays["pd_score"].astype(np.float64) for i in rows])


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
        series = []
        for method in (SUP, SCL):
            for setting in (Setting(dataset, method, DENSE, 0.0), Setting(dataset, method, p, s)):
                got = _pd(study.populations[setting], n)
                if got is not None:
                    series.append(got[1])
        text = f"{pruning_name(p)} {_pct(s)}: Spearman ρ(dense PD, pruned PD) Sup − SCL > 0, SCL's ρ < {reference.F4_RHO_NOT_WELL:g}"
        if len(series) < 4:
            finding.claims.append(Claim(text, UNRESOLVED, "no pd_score in these populations"))
            continue
        diff, rho_sup, rho_scl = rho_difference(*series, level=stats.level)
        verdict = _sign_verdict(diff)
        if verdict == SUPPORTED:  # the paper prints no ρ: "not well" read as ρ below F4_RHO_NOT_WELL
            verdict = SUPPORTED if rho_scl < reference.F4_RHO_NOT_WELL else DIRECTION
        size = (
            "" if verdict not in (SUPPORTED, DIRECTION) else
            f"; the paper prints no ρ; 'not well for SCL' is read as ρ < {reference.F4_RHO_NOT_WELL:g} (ρ² < 0.5)"
            + ("" if verdict == SUPPORTED else f": SCL's {rho_scl:.3f} says PD carries over for SCL too")
        )  # fmt: skip
        finding.claims.append(
            Claim(
                text,
                verdict,
                f"ρ Sup {rho_sup:.3f}, SCL {rho_scl:.3f}; difference {diff.fmt(3, signed=True)} (PD over the first {n} seeds; "
                f"interval over those models){size}",
            )
        )
    # PIEs vs non-PIEs, every pruned cell with pd_score
    cells = []
    for setting in sorted(s for s in pies if s.dataset == dataset):
        pop, dense = study.populations[setting], study.populations[setting.dense]
        got = _pd(pop, n)
        flags = pies[setting].flags
        if got is None or not flags.any() or flags.all():
            continue
        rows, values = got
        ci = pd_gap(dense.preds(), pop.preds(), values, pd_rows=rows, tie=stats.tie, num_classes=pies[setting].num_classes,
                    level=stats.level)  # fmt: skip
        mean = values.mean(axis=0)
        paper = reference.effect_pd_gap(setting.method, setting.pruning, setting.percent)
        verdict, size = judge(ci, paper)
        cell = stats.cells.get(setting)
        if verdict in (SUPPORTED, DIRECTION) and (cell is None or cell.above_floor is not True):
            verdict, size = UNRESOLVED, "its PIEs are not above their noise floor: noise PIEs sit on ambiguous, deep samples too"
        cells.append((setting, ci, float(mean[flags].mean()), float(mean[~flags].mean()), int(flags.sum()), verdict, size))
        ref = reference.table6(dataset, setting.method, setting.pruning, setting.percent)
        if ref is not None:
            paper_gap = ref.pies - ref.non_pies
            finding.paper.append(Claim(
                f"{setting.label(dataset=False)}: PD of PIEs − non-PIEs",
                paper_verdict(ci, paper_gap),
                f"paper {ref.pies:g} − {ref.non_pies:g} = {paper_gap:+.2f}; ours {ci.fmt(signed=True)}",
            ))  # fmt: skip
    if cells:
        verdicts = [c[5] for c in cells]
        detail = "; ".join(
            f"{st.label(dataset=False)}: {a:.2f} vs {b:.2f} ({k} PIEs), {ci.fmt(signed=True)} [{v}"
            + (f": {size}" if size else "") + "]"
            for st, ci, a, b, k, v, size in cells
        )  # fmt: skip
        finding.claims.append(
            Claim(
                "mean PD of PIEs − non-PIEs > 0 (pruned models' PD)",
                _majority(verdicts),
                f"{sum(v == SUPPORTED for v in verdicts)} of {len(cells)} cells supported, "
                f"{sum(v == DIRECTION for v in verdicts)} direction only, {sum(v == CONTRADICTED for v in verdicts)} contradicted: "
                f"{detail}",
            )
        )
    if not finding.claims:
        finding.missing = (
            "needs pd_score (callbacks.metrics.PredictionDepth) in Sup and SCL populations, dense and pruned with the same schedule"
        )
    return finding
