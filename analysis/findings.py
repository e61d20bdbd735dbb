"""The paper's findings F1–F4 (REFERENCE §4) checked against these runs, with the numbers.

Each finding is split into sub-claims, and each sub-claim is judged by a 95% interval:
**supported** when the interval of the difference the claim predicts lies entirely on its side of 0,
**contradicted** when it lies entirely on the other side, and **cannot resolve** when it contains 0,
when the PIE count that would support it is not above the noise floor of its dense population
(or that floor cannot be measured: fewer than 4 dense models — two dense models alone may disagree
on as many images as a pruned cell's PIEs), or when the populations it needs are missing. A finding *supports* when every sub-claim is
supported, *contradicts* when its sub-claims are contradicted and none supported, and otherwise
says which parts hold (``partly supports`` / ``mixed``) or that it *cannot resolve*.

* **F1** (at high sparsity SCL loses more accuracy and has more PIEs than Sup): per schedule both
  methods have, at their highest common sparsity (>= :data:`HIGH_SPARSITY`): drop_SCL − drop_Sup
  (drop = dense − pruned accuracy) and PIEs_SCL − PIEs_Sup, bootstrap over models.
* **F2** (GMP hurts SCL more than the later ΔGMP / One-Shot): SCL's accuracy under each later
  schedule minus under GMP, and PIEs under GMP minus under the later schedule, at their highest
  common sparsity.
* **F3** (SCL's Q-Score drops with sparsity, Sup's stays flat): mean Q-Score change pruned − dense
  of SCL (< 0?) and |relative change| of SCL − that of Sup (> 0?), at the highest sparsity per schedule.
* **F4** (PD-Score predicts the pruned PD-Score for Sup but not for SCL; PIEs have higher PD):
  Spearman ρ of per-sample PD, dense vs pruned, Sup − SCL (> 0?; test samples resampled, the same
  rows for both methods), and mean PD of PIEs − non-PIEs per cell (> 0?; samples resampled; the
  sub-claim holds when at least half of the cells support it and none contradicts it).
  PD is averaged over the first ``--pd-models`` seeds (Table 6).

On CIFAR-10, F3 and F4 are also set against the paper's own magnitudes (``Finding.paper``, not part of
the verdict): the relative Q-Score change of SCL and of Sup (e.g. the paper's SCL 0.72 → 0.56 at GMP
90 %, −22 %; Sup 1.44 → 1.39, −3 %) and the PD gap of PIEs − non-PIEs per cell (Table 6) —
*reproduced* when the paper's value lies in our 95% interval, *not reproduced* when outside it,
*cannot resolve* without an interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis import reference
from analysis.pies import SettingPies
from analysis.runs import DENSE, Population, Setting, Study, method_name, pruning_name
from analysis.stats import Interval, interval, mean_difference_interval, sample_bootstrap_statistic, spearman
from analysis.uncertainty import LEVEL, CellStats, StudyStats, seed_for

SUP, SCL = "sup", "supcon"
LATER = ("delta_gmp", "oneshot")
#: the sparsity from which F1's "at high sparsity" is judged (the paper's gap is at 70–90%)
HIGH_SPARSITY = 0.7
SUPPORTED, CONTRADICTED, UNRESOLVED = "supported", "contradicted", "cannot resolve"


@dataclass
class Claim:
    """One sub-claim: what was compared, the verdict, and the numbers behind it."""

    text: str
    verdict: str
    evidence: str


@dataclass
class Finding:
    key: str
    statement: str
    dataset: str
    claims: list[Claim] = field(default_factory=list)
    missing: str | None = None  # why nothing could be compared
    #: the paper's own magnitudes against ours (CIFAR-10 only; not part of the verdict): text, verdict
    #: (reproduced / not reproduced / cannot resolve) and the numbers
    paper: list[Claim] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not self.claims:
            return "cannot resolve"
        verdicts = [c.verdict for c in self.claims]
        if all(v == SUPPORTED for v in verdicts):
            return "supports"
        if SUPPORTED in verdicts and CONTRADICTED in verdicts:
            return "mixed"
        if CONTRADICTED in verdicts:
            return "contradicts" if all(v == CONTRADICTED for v in verdicts) else "contradicts in part (the rest cannot be resolved)"
        if SUPPORTED in verdicts:
            return "partly supports (the rest cannot be resolved)"
        return "cannot resolve"

    def markdown(self) -> list[str]:
        lines = [f"- **{self.key}** — {self.statement}: **{self.verdict}**."]
        if self.missing:
            lines.append(f"  - {self.missing}")
        for claim in self.claims:
            lines.append(f"  - {claim.text}: *{claim.verdict}* — {claim.evidence}")
        for claim in self.paper:
            lines.append(f"  - against the paper's numbers, {claim.text}: *{claim.verdict}* — {claim.evidence}")
        return lines


REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"


def paper_verdict(ours: Interval, paper: float) -> str:
    """*reproduced* when the paper's value lies in our 95% interval, *not reproduced* when outside it,
    *cannot resolve* when our interval is undefined (too few models)."""
    if not ours.defined:
        return UNRESOLVED
    return REPRODUCED if ours.low <= paper <= ours.high else NOT_REPRODUCED


def _sign_verdict(ci: Interval, *, expected_positive: bool = True) -> str:
    if not ci.defined:
        return UNRESOLVED
    if (ci.low > 0) if expected_positive else (ci.high < 0):
        return SUPPORTED
    if (ci.high < 0) if expected_positive else (ci.low > 0):
        return CONTRADICTED
    return UNRESOLVED


def _majority(verdicts: list[str]) -> str:
    """Many cells, one sub-claim: supported (contradicted) when at least half of the cells are and none
    goes the other way; otherwise it cannot be resolved."""
    sup, con = verdicts.count(SUPPORTED), verdicts.count(CONTRADICTED)
    if sup and not con and 2 * sup >= len(verdicts):
        return SUPPORTED
    if con and not sup and 2 * con >= len(verdicts):
        return CONTRADICTED
    return UNRESOLVED


def _pct(s: float) -> str:
    return f"{round(s * 100)}%"


def _floor_text(cell: CellStats) -> str:
    if cell.floor is None or cell.half is None:
        return "no noise floor (dense population < 4 models)"
    return (
        f"at {cell.half.size} vs {cell.half.size} models {cell.half.mean:.1f} PIEs vs noise floor {cell.floor.fmt()}"
        + ("" if cell.above_floor else " — not above the floor")
    )


def _pie_claim(text: str, diff: Interval, favoured: CellStats, other: CellStats, sizes: str) -> Claim:
    """A sub-claim "favoured has more PIEs than other": judged by the interval and the noise floor."""
    verdict = _sign_verdict(diff)
    if verdict == SUPPORTED and favoured.above_floor is not True:
        verdict = UNRESOLVED  # not above its floor, or no floor to tell PIEs from noise
    if verdict == CONTRADICTED and other.above_floor is not True:
        verdict = UNRESOLVED
    evidence = (
        f"{favoured.pies.estimate:.0f} vs {other.pies.estimate:.0f} PIEs, difference {diff.fmt(1, signed=True)}{sizes}; "
        f"{favoured.setting.label(dataset=False)}: {_floor_text(favoured)}; {other.setting.label(dataset=False)}: {_floor_text(other)}"
    )
    return Claim(text, verdict, evidence)


def _sizes(a: CellStats, b: CellStats) -> str:
    if (a.n_dense, a.n_pruned) == (b.n_dense, b.n_pruned):
        return ""
    return f" (populations differ in size: {a.n_dense}/{a.n_pruned} vs {b.n_dense}/{b.n_pruned} dense/pruned models)"


def _common_sparsities(stats: StudyStats, a: tuple[str, str, str], b: tuple[str, str, str]) -> list[float]:
    """Sparsities at which both (dataset, method, pruning) cells have statistics, ascending."""

    def of(key: tuple[str, str, str]) -> set[float]:
        return {s.sparsity for s in stats.cells if (s.dataset, s.method, s.pruning) == key}

    return sorted(of(a) & of(b))


def _schedules(stats: StudyStats, dataset: str, method: str) -> list[str]:
    return sorted({s.pruning for s in stats.cells if s.dataset == dataset and s.method == method})


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


def all_findings(study: Study, pies: dict[Setting, SettingPies], stats: StudyStats) -> dict[str, list[Finding]]:
    """``{dataset: [F1, F2, F3, F4]}``."""
    return {d: [f1(d, stats), f2(d, stats), f3(d, study, stats), f4(d, study, pies, stats)] for d in study.datasets}


__all__ = ["Claim", "Finding", "HIGH_SPARSITY", "NOT_REPRODUCED", "REPRODUCED", "all_findings", "f1", "f2", "f3", "f4", "paper_verdict"]
