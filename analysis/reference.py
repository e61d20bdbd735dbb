"""The paper's numbers ([CORTI], CIFAR-10, WRN-16-2, 30 models per cell; REFERENCE.md §4) as data.

Keys are ``(method, pruning, sparsity_percent)`` with the names run.json uses: methods ``sup`` and
``supcon`` (SCL), pruning ``dense``, ``gmp``, ``delta_gmp``, ``oneshot``. Only CIFAR-10 settings
have reference numbers; :func:`matches` says whether a run setting is comparable.

What is here is exactly what REFERENCE.md gives, nothing filled in: Table 1 in full for 0–90%;
Tables 4/5 for the dense models and 90% (GMP and One-Shot; not ΔGMP, not 30–70%); Table 6 only as
the paper's summary (a value or a range per method, "at every sparsity"). The appendix's 95% and
99% numbers and the paper's full tables could not be obtained (no full text reachable); the report
names every one of our cells that therefore has no reference number (:func:`unavailable`).
Population sizes the paper states: 30 models per cell (PIEs, accuracy), PD averaged over 5.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.runs import method_name, pruning_name

PAPER = "Corti et al. 2022 (CIFAR-10, WRN-16-2, 30 models per cell)"
DATASET = "cifar10"
MODELS_PER_CELL = 30
#: models the paper averages prediction depth over, per cell (Table 6)
PD_MODELS_PER_CELL = 5
#: sparsities (%) of the paper's main tables; 95 and 99 are in its appendix, whose numbers are not available here
MAIN_SPARSITIES = (30, 50, 70, 90)
#: what REFERENCE.md gives for each table, said in the report
AVAILABLE = {
    "table1": "Table 1 in full (Sup/GMP, Sup/One-Shot, SCL/GMP, SCL/ΔGMP, SCL/One-Shot at 0, 30, 50, 70, 90%)",
    "table4_5": "Tables 4/5 for the dense models and 90% GMP and One-Shot only (no ΔGMP, no 30–70%)",
    "table6": "Table 6 only as the paper's summary: PD of PIEs vs non-PIEs ≈ one value or a range per method, at 30–90%",
}


@dataclass(frozen=True)
class Table1Cell:
    """Test accuracy (%) mean ± std over 30 models and the PIE count (None for the dense row)."""

    acc_mean: float
    acc_std: float
    pies: int | None


def _t1(acc: float, std: float, pies: int | None) -> Table1Cell:
    return Table1Cell(acc, std, pies)


_SUP_DENSE = _t1(90.58, 0.38, None)
_SCL_DENSE = _t1(92.06, 0.17, None)

#: Table 1: (method, pruning, sparsity %) -> accuracy mean, std, PIE count
TABLE1: dict[tuple[str, str, int], Table1Cell] = {
    ("sup", "dense", 0): _SUP_DENSE,
    ("supcon", "dense", 0): _SCL_DENSE,
    ("sup", "gmp", 30): _t1(90.5, 0.39, 188),
    ("sup", "gmp", 50): _t1(90.4, 0.34, 179),
    ("sup", "gmp", 70): _t1(90.14, 0.34, 204),
    ("sup", "gmp", 90): _t1(89.47, 0.36, 273),
    ("sup", "oneshot", 30): _t1(90.3, 0.39, 90),
    ("sup", "oneshot", 50): _t1(90.37, 0.37, 95),
    ("sup", "oneshot", 70): _t1(90.33, 0.37, 97),
    ("sup", "oneshot", 90): _t1(89.64, 0.34, 183),
    ("supcon", "gmp", 30): _t1(91.58, 0.2, 180),
    ("supcon", "gmp", 50): _t1(90.92, 0.18, 241),
    ("supcon", "gmp", 70): _t1(89.58, 0.2, 350),
    ("supcon", "gmp", 90): _t1(85.56, 0.4, 748),
    ("supcon", "delta_gmp", 30): _t1(91.59, 0.18, 176),
    ("supcon", "delta_gmp", 50): _t1(91.23, 0.16, 184),
    ("supcon", "delta_gmp", 70): _t1(90.48, 0.25, 271),
    ("supcon", "delta_gmp", 90): _t1(87.76, 0.33, 522),
    ("supcon", "oneshot", 30): _t1(93.28, 0.17, 233),
    ("supcon", "oneshot", 50): _t1(93.06, 0.2, 236),
    ("supcon", "oneshot", 70): _t1(92.38, 0.17, 235),
    ("supcon", "oneshot", 90): _t1(87.83, 0.25, 549),
}


@dataclass(frozen=True)
class QCell:
    """Mean Q-Score, Z-score and ‖ĥ‖₁ over the test set (Tables 4/5)."""

    q: float
    z: float
    l1: float


#: Tables 4/5: (method, pruning, sparsity %) -> mean Q / Z / L1 (dense and 90 % only)
TABLE4_5: dict[tuple[str, str, int], QCell] = {
    ("supcon", "dense", 0): QCell(0.72, 5.01, 7.15),
    ("supcon", "gmp", 90): QCell(0.56, 4.47, 8.14),
    ("supcon", "oneshot", 90): QCell(0.59, 4.89, 8.39),
    ("sup", "dense", 0): QCell(1.44, 5.73, 4.15),
    ("sup", "gmp", 90): QCell(1.39, 5.66, 4.21),
    ("sup", "oneshot", 90): QCell(1.38, 5.72, 4.30),
}


@dataclass(frozen=True)
class PDCell:
    """Table 6, as the paper summarises it: mean PD-Score of PIEs vs non-PIEs (text, approximate)."""

    pies: str
    non_pies: str
    note: str


#: Table 6: method -> approximate PD of PIEs vs non-PIEs, the same at every sparsity
TABLE6: dict[str, PDCell] = {
    "sup": PDCell("≈14.9", "≈10.9", "at every sparsity; std of non-PIEs ≈2.9"),
    "supcon": PDCell("≈14.7–15.2", "≈9.7–10.5", "std of non-PIEs ≈4.1–4.3"),
}

#: the findings the numbers should show (REFERENCE §4)
FINDINGS = {
    "F1": "at high sparsity SCL loses more accuracy and has more PIEs than Sup",
    "F2": "early pruning (GMP) hurts SCL more than later pruning (ΔGMP, One-Shot)",
    "F3": "SCL's Q-Score drops with sparsity while Sup's stays flat",
    "F4": "PD-Score predicts the pruned PD-Score for Sup but not SCL; PIEs have higher PD than non-PIEs",
}


def matches(dataset: str) -> bool:
    """Whether runs on ``dataset`` are comparable with the paper's numbers (CIFAR-10 only)."""
    return dataset == DATASET


def table1(dataset: str, method: str, pruning: str, percent: int) -> Table1Cell | None:
    return TABLE1.get((method, pruning, percent)) if matches(dataset) else None


def table4_5(dataset: str, method: str, pruning: str, percent: int) -> QCell | None:
    return TABLE4_5.get((method, pruning, percent)) if matches(dataset) else None


def table6(dataset: str, method: str, pruning: str, percent: int) -> PDCell | None:
    if not matches(dataset) or pruning == "dense" or percent not in MAIN_SPARSITIES:
        return None
    return TABLE6.get(method)


def _why_missing(method: str, pruning: str, percent: int) -> str:
    if method not in ("sup", "supcon"):
        return "the paper has no such method"
    if pruning not in ("dense", "gmp", "delta_gmp", "oneshot"):
        return "the paper has no such schedule"
    if percent not in (0, *MAIN_SPARSITIES):
        return f"{percent}% is in the paper's appendix, whose numbers are not available here"
    return "not in the paper's table as REFERENCE.md gives it"


def unavailable(table: str, cells: list[tuple[str, str, str, int]]) -> list[str]:
    """For ``cells`` = ``(dataset, method, pruning, percent)`` of our populations, those without a
    reference number in ``table`` (``table1``, ``table4_5``, ``table6``), each with the reason.

    Cells of another dataset than CIFAR-10 are not listed (nothing to compare with at all).
    """
    lookup = {"table1": table1, "table4_5": table4_5, "table6": table6}[table]
    out = []
    for dataset, method, pruning, percent in cells:
        if not matches(dataset) or (table == "table6" and pruning == "dense"):
            continue
        if lookup(dataset, method, pruning, percent) is None:
            name = f"{method_name(method)} · {pruning_name(pruning)}" + ("" if pruning == "dense" else f" {percent}%")
            out.append(f"{name} ({_why_missing(method, pruning, percent)})")
    return out


__all__ = [
    "AVAILABLE",
    "FINDINGS",
    "MAIN_SPARSITIES",
    "MODELS_PER_CELL",
    "PD_MODELS_PER_CELL",
    "PAPER",
    "PDCell",
    "QCell",
    "TABLE1",
    "TABLE4_5",
    "TABLE6",
    "Table1Cell",
    "matches",
    "table1",
    "table4_5",
    "table6",
    "unavailable",
]
