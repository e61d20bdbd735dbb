"""What a finding is made of and how it is judged: :class:`Claim` and :class:`Finding`, the verdicts
(by the sign of a 95% interval, by the majority of cells, against the paper's value) and the helpers
the checks of :mod:`analysis.findings` share (noise-floor text, population sizes, common sparsities)."""

from __future__ import annotations

from dataclasses import dataclass, field

from analysis.stats import Interval
from analysis.uncertainty import CellStats, StudyStats

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
