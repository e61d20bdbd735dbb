"""F1 (at high sparsity SCL loses more accuracy and has more PIEs than Sup) and F2 (GMP hurts SCL more
than the later ΔGMP / One-Shot): accuracy changes and PIE counts, judged by intervals over models
and against the paper's own effect sizes (:func:`analysis.findings_claims.judge`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from analysis import reference
from analysis.findings_claims import (
    HIGH_SPARSITY,
    LATER,
    SCL,
    SUP,
    UNRESOLVED,
    Claim,
    Finding,
    _common_sparsities,
    _pct,
    _pie_claim,
    _schedules,
    _sizes,
    judge,
)
from analysis.runs import Setting, pruning_name
from analysis.stats import Interval
from analysis.uncertainty import CellStats, StudyStats


def _accuracies(stats: StudyStats, *settings: Setting) -> dict[Setting, np.ndarray]:
    return {s: stats.study.populations[s].accuracies() for s in settings}


def pie_ratio(stats: StudyStats, a: CellStats, b: CellStats) -> tuple[Interval, tuple[float, float], int] | None:
    """PIEs of cell ``a`` / PIEs of cell ``b`` − 1, both at the same ``h`` vs ``h`` (the smaller of their
    sizes), with its interval over the models of the (up to four) populations; None without PIE counts."""
    if a.pies is None or b.pies is None:
        return None
    h = min(a.pies.h, b.pies.h)
    sa, sb = stats.splits(a.setting, h), stats.splits(b.setting, h)

    def counts(splits, setting: Setting, keep: Mapping[Setting, np.ndarray]) -> float:
        return float(splits.counts(keep[setting.dense], keep[setting])[0].mean())

    def statistic(keep: Mapping[Setting, np.ndarray]) -> float:
        cb = counts(sb, b.setting, keep)
        return counts(sa, a.setting, keep) / cb - 1.0 if cb > 0 else float("nan")

    settings = [a.setting.dense, a.setting, b.setting.dense, b.setting]
    full = {s: np.arange(stats.study.populations[s].n) for s in settings}
    return stats.over(statistic, settings), (counts(sa, a.setting, full), counts(sb, b.setting, full)), h


# ---------------------------------------------------------------------------------------------
def f1(dataset: str, stats: StudyStats) -> Finding:
    finding = Finding("F1", "at high sparsity SCL loses more accuracy and has more PIEs than Sup", dataset)
    schedules = [p for p in _schedules(stats, dataset, SCL) if p in _schedules(stats, dataset, SUP)]
    if not schedules:
        finding.missing = "needs Sup and SCL pruned with the same schedule, each with its dense population; these runs have none"
        return finding
    for p in schedules:
        common = _common_sparsities(stats, (dataset, SUP, p), (dataset, SCL, p))
        if not common:
            finding.claims.append(Claim(f"{pruning_name(p)}", UNRESOLVED, "Sup and SCL share no sparsity"))
            continue
        s = common[-1]
        sup, scl = stats.cells[Setting(dataset, SUP, p, s)], stats.cells[Setting(dataset, SCL, p, s)]
        if s < HIGH_SPARSITY:
            finding.claims.append(
                Claim(f"{pruning_name(p)}", UNRESOLVED,
                      f"the highest sparsity both methods reached is {_pct(s)}, below the {_pct(HIGH_SPARSITY)} the claim is about "
                      f"(there: drop SCL {-scl.acc_diff.estimate:.2f} vs Sup {-sup.acc_diff.estimate:.2f} points, "
                      f"PIEs of all models {scl.count} vs {sup.count})")
            )  # fmt: skip
            continue
        acc = _accuracies(stats, scl.setting.dense, scl.setting, sup.setting.dense, sup.setting)

        def drop_difference(keep: Mapping[Setting, np.ndarray], acc=acc, scl=scl, sup=sup) -> float:
            def drop(cell: CellStats) -> float:
                d, q = cell.setting.dense, cell.setting
                return float(acc[d][keep[d]].mean() - acc[q][keep[q]].mean())

            return drop(scl) - drop(sup)

        drop_ci = stats.over(drop_difference, list(acc))
        paper = reference.effect_f1_accuracy(p, round(s * 100))
        verdict, size = judge(drop_ci, paper, unit=" points")
        finding.claims.append(
            Claim(
                f"{pruning_name(p)} {_pct(s)}: SCL's accuracy drop − Sup's > 0",
                verdict,
                f"drop SCL {scl.acc_diff.scaled(-1).fmt()} vs Sup {sup.acc_diff.scaled(-1).fmt()} points; "
                f"difference {drop_ci.fmt(signed=True)}{_sizes(scl, sup)}" + (f"; {size}" if size else ""),
            )
        )
        ratio = pie_ratio(stats, scl, sup)
        text = f"{pruning_name(p)} {_pct(s)}: PIEs SCL / Sup − 1 > 0"
        if ratio is None:
            finding.claims.append(Claim(text, UNRESOLVED, "too few models for PIE counts beside a floor of their size"))
        else:
            diff, counts, h = ratio
            finding.claims.append(_pie_claim(text, diff, scl, sup, reference.effect_f1_pies(p, round(s * 100)), counts, h))
    return finding


def f2(dataset: str, stats: StudyStats) -> Finding:
    finding = Finding("F2", "early pruning (GMP) hurts SCL more than later pruning (ΔGMP, One-Shot)", dataset)
    schedules = _schedules(stats, dataset, SCL)
    later = [p for p in LATER if p in schedules]
    if "gmp" not in schedules or not later:
        have = ", ".join(pruning_name(p) for p in schedules) or "none"
        finding.missing = f"needs SCL pruned with GMP and with ΔGMP and/or One-Shot (SCL schedules here: {have})"
        return finding
    for p in later:
        common = _common_sparsities(stats, (dataset, SCL, "gmp"), (dataset, SCL, p))
        if not common:
            finding.claims.append(Claim(f"GMP vs {pruning_name(p)}", UNRESOLVED, "no sparsity in common"))
            continue
        s = common[-1]
        gmp, lat = stats.cells[Setting(dataset, SCL, "gmp", s)], stats.cells[Setting(dataset, SCL, p, s)]
        acc = _accuracies(stats, lat.setting, gmp.setting)

        def later_minus_gmp(keep: Mapping[Setting, np.ndarray], acc=acc, lat=lat, gmp=gmp) -> float:
            return float(acc[lat.setting][keep[lat.setting]].mean() - acc[gmp.setting][keep[gmp.setting]].mean())

        diff = stats.over(later_minus_gmp, list(acc))
        verdict, size = judge(diff, reference.effect_f2_accuracy(p, round(s * 100)), unit=" points")
        finding.claims.append(
            Claim(
                f"SCL {_pct(s)}: accuracy {pruning_name(p)} − GMP > 0",
                verdict,
                f"vs dense: GMP {gmp.acc_diff.fmt(signed=True)}, {pruning_name(p)} {lat.acc_diff.fmt(signed=True)} points; "
                f"difference {diff.fmt(signed=True)}{_sizes(lat, gmp)}" + (f"; {size}" if size else ""),
            )
        )
        ratio = pie_ratio(stats, gmp, lat)
        text = f"SCL {_pct(s)}: PIEs GMP / {pruning_name(p)} − 1 > 0"
        if ratio is None:
            finding.claims.append(Claim(text, UNRESOLVED, "too few models for PIE counts beside a floor of their size"))
        else:
            rel, counts, h = ratio
            finding.claims.append(_pie_claim(text, rel, gmp, lat, reference.effect_f2_pies(p, round(s * 100)), counts, h))
    return finding
