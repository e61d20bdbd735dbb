"""F1 (at high sparsity SCL loses more accuracy and has more PIEs than Sup) and F2 (GMP hurts SCL more
than the later ΔGMP / One-Shot): accuracy changes and PIE counts, judged by bootstrap intervals over models."""

from __future__ import annotations

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
    _sign_verdict,
    _sizes,
)
from analysis.runs import Setting, pruning_name
from analysis.stats import Interval, interval
from analysis.uncertainty import LEVEL, StudyStats


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
                      f"PIEs {scl.pies.estimate:.0f} vs {sup.pies.estimate:.0f})")
            )  # fmt: skip
            continue
        drop = sup.acc_diff_boot - scl.acc_diff_boot  # drop_SCL - drop_Sup
        drop_ci = interval(sup.acc_diff.estimate - scl.acc_diff.estimate, drop, LEVEL)
        finding.claims.append(
            Claim(
                f"{pruning_name(p)} {_pct(s)}: SCL's accuracy drop − Sup's > 0",
                _sign_verdict(drop_ci),
                f"drop SCL {_neg(scl.acc_diff).fmt()} vs Sup {_neg(sup.acc_diff).fmt()} points; "
                f"difference {drop_ci.fmt(signed=True)}{_sizes(scl, sup)}",
            )
        )
        diff = interval(scl.pies.estimate - sup.pies.estimate, scl.pies_boot - sup.pies_boot, LEVEL)
        finding.claims.append(_pie_claim(f"{pruning_name(p)} {_pct(s)}: PIEs SCL − Sup > 0", diff, scl, sup, _sizes(scl, sup)))
    return finding


def _neg(ci: Interval) -> Interval:
    return Interval(-ci.estimate, -ci.high, -ci.low, ci.level)


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
        diff = interval(lat.acc_diff.estimate - gmp.acc_diff.estimate, lat.acc_diff_boot - gmp.acc_diff_boot, LEVEL)
        finding.claims.append(
            Claim(
                f"SCL {_pct(s)}: accuracy {pruning_name(p)} − GMP > 0",
                _sign_verdict(diff),
                f"vs dense: GMP {gmp.acc_diff.fmt(signed=True)}, {pruning_name(p)} {lat.acc_diff.fmt(signed=True)} points; "
                f"difference {diff.fmt(signed=True)}{_sizes(lat, gmp)}",
            )
        )
        pies = interval(gmp.pies.estimate - lat.pies.estimate, gmp.pies_boot - lat.pies_boot, LEVEL)
        finding.claims.append(_pie_claim(f"SCL {_pct(s)}: PIEs GMP − {pruning_name(p)} > 0", pies, gmp, lat, _sizes(gmp, lat)))
    return finding
