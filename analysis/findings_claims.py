"""What a finding is made of and how it is judged: :class:`Claim` and :class:`Finding`, the verdicts
(by the sign of a 95% interval over models *and* the size of the effect against the paper's, by the
majority of cells, against the paper's value) and the helpers the checks of :mod:`analysis.findings`
share (noise-floor text, population sizes, common sparsities).

A sub-claim is **supported** only when its interval lies on the predicted side of 0 (direction
resolved) *and* its estimate is of the order of the paper's own effect (within
:data:`analysis.reference.ORDER` of it, either way); **direction only** when the direction is
resolved but the size is not of that order (or the paper prints no number to compare with);
**contradicted** when the interval lies on the other side; **cannot resolve** otherwise. The same
rule holds on every dataset: the paper's effects are CIFAR-10's, and a dataset where the effect is
ten times smaller does not show the paper's finding, only its direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analysis import reference
from analysis.stats import Interval
from analysis.uncertainty import CellStats, StudyStats

SUP, SCL = "sup", "supcon"
LATER = ("delta_gmp", "oneshot")
#: the sparsity from which F1's "at high sparsity" is judged (the paper's gap is at 70–90%)
HIGH_SPARSITY = 0.7
SUPPORTED, DIRECTION, CONTRADICTED, UNRESOLVED = "supported", "direction only", "contradicted", "cannot resolve"


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
        verdicts = [c.verdict for c in self.claims]
        n = len(verdicts)
        sup, dire, con = verdicts.count(SUPPORTED), verdicts.count(DIRECTION), verdicts.count(CONTRADICTED)
        if not n:
            return "cannot resolve"
        if con and (sup or dire):
            return "mixed"
        if con:
            return "contradicts" if con == n else "contradicts in part (the rest cannot be resolved)"
        if sup == n:
            return "supports"
        if sup + dire == n:
            return "direction only (sizes not all of the paper's order)" if sup else "direction only"
        if sup:
            return f"partly supports (the rest {'cannot be resolved' if not dire else 'is direction only or cannot be resolved'})"
        if dire:
            return "direction only in part (the rest cannot be resolved)"
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
    """The direction alone: supported / contradicted / cannot resolve by the interval's side of 0."""
    if not ci.defined:
        return UNRESOLVED
    if (ci.low > 0) if expected_positive else (ci.high < 0):
        return SUPPORTED
    if (ci.high < 0) if expected_positive else (ci.low > 0):
        return CONTRADICTED
    return UNRESOLVED


def judge(
    ci: Interval, paper: float | None, *, expected_positive: bool = True, digits: int = 2, unit: str = "", scale: float = 1.0
) -> tuple[str, str]:
    """``(verdict, size note)``: the direction by :func:`_sign_verdict`, then the size against the
    paper's effect ``paper`` (same statistic, same units): supported within :data:`reference.ORDER`
    of it, direction only outside that range or when the paper has no number (or its own number
    points the other way). ``scale``/``unit``/``digits`` only format the paper's value in the note."""
    direction = _sign_verdict(ci, expected_positive=expected_positive)
    if direction != SUPPORTED:
        return direction, ""
    sign = 1.0 if expected_positive else -1.0
    if paper is None:
        return DIRECTION, "size: the paper prints no number for this comparison"
    shown = f"{scale * paper:+.{digits}f}{unit}"
    if sign * paper <= 0:
        return DIRECTION, f"size: the paper's own value here is {shown}, not in the claim's direction"
    ratio = (sign * ci.estimate) / (sign * paper)
    if 1.0 / reference.ORDER <= ratio <= reference.ORDER:
        return SUPPORTED, f"size of the paper's order: paper {shown}, ours {ratio:.2f}× it"
    return DIRECTION, f"size not of the paper's order: paper {shown}, ours {ratio:.2f}× it (supported within {reference.ORDER:g}× either way)"


def _majority(verdicts: list[str]) -> str:
    """Many cells, one sub-claim: supported (contradicted) when at least half of the cells are and none
    goes the other way; direction only when at least half resolve the direction and none goes the
    other way; otherwise it cannot be resolved."""
    sup, dire, con = verdicts.count(SUPPORTED), verdicts.count(DIRECTION), verdicts.count(CONTRADICTED)
    if con and not (sup or dire) and 2 * con >= len(verdicts):
        return CONTRADICTED
    if con:
        return UNRESOLVED
    if 2 * sup >= len(verdicts):
        return SUPPORTED
    if 2 * (sup + dire) >= len(verdicts):
        return DIRECTION
    return UNRESOLVED


def _pct(s: float) -> str:
    return f"{round(s * 100)}%"


def _floor_text(cell: CellStats) -> str:
    if cell.pies is None:
        return "no noise floor (too few models: needs >= 3 dense and >= 2 pruned)"
    p = cell.pies
    return (
        f"at {p.h} vs {p.h} models {p.pruned_mean:.1f} PIEs vs noise floor {p.floor_mean:.1f}, excess {p.excess.fmt(1, signed=True)}"
        + ("" if cell.above_floor else " — not above the floor")
    )


def _pie_claim(
    text: str, diff: Interval, favoured: CellStats, other: CellStats, paper: float | None, counts: tuple[float, float], h: int
) -> Claim:
    """A sub-claim "favoured has more PIEs than other": ``diff`` = PIEs favoured / other − 1 at ``h``
    vs ``h`` models, judged by its interval, the paper's size, and the favoured cell's noise floor."""
    verdict, size = judge(diff, paper, digits=0, unit="%", scale=100.0)
    if verdict in (SUPPORTED, DIRECTION) and favoured.above_floor is not True:
        verdict, size = UNRESOLVED, "its PIEs are not above their noise floor (or there is none)"
    if verdict == CONTRADICTED and other.above_floor is not True:
        verdict, size = UNRESOLVED, "the other cell's PIEs are not above their noise floor (or there is none)"
    evidence = (
        f"at {h} vs {h} models {counts[0]:.1f} vs {counts[1]:.1f} PIEs, {100 * diff.estimate:+.0f}% "
        f"[{100 * diff.low:+.0f}, {100 * diff.high:+.0f}]"
        + ("" if paper is None else f" (paper at 30 vs 30: {100 * paper:+.0f}%)")
        + f"; {favoured.setting.label(dataset=False)}: {_floor_text(favoured)}; "
        f"{other.setting.label(dataset=False)}: {_floor_text(other)}"
        + (f"; {size}" if size else "")
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
