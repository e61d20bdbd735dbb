"""The paper's numbers ([CORTI], CIFAR-10, WRN-16-2, 30 models per cell; REFERENCE.md §4) as data.

Keys are ``(method, pruning, sparsity_percent)`` with the names run.json uses: methods ``sup`` and
``supcon`` (SCL), pruning ``dense``, ``gmp``, ``delta_gmp``, ``oneshot``. Only CIFAR-10 settings
have reference numbers; :func:`matches` says whether a run setting is comparable.

What is here is exactly what REFERENCE.md §4 prints, cell by cell (value and ± where printed; a
test compares the two): Table 1 (accuracy and PIEs: Sup/GMP, Sup/One-Shot, SCL/GMP, SCL/ΔGMP,
SCL/One-Shot at 0–90%), Tables 4/5 (Q-Score, Z-score, ‖ĥ‖₁ of SCL and Sup, GMP and One-Shot at
0–90%; the paper has no ΔGMP column there), Table 6 (PD-Score of PIEs and non-PIEs, the same four
columns at 0–90%) and appendix Table 3 (Sup/GMP PIEs, Hooker et al. vs this paper). The appendix's
95% and 99% numbers are not available; the report names every one of our cells without a
reference number (:func:`unavailable`).
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
    "table4_5": "Tables 4/5 in full (Q-Score, Z-score, ‖ĥ‖₁ ± std; Sup and SCL, GMP and One-Shot at 0, 30, 50, 70, 90%; no ΔGMP column)",
    "table6": "Table 6 in full (PD-Score ± std of PIEs and non-PIEs; Sup and SCL, GMP and One-Shot at 0, 30, 50, 70, 90%)",
    "table3": "appendix Table 3 (Sup/GMP PIEs: Hooker et al. 2019 with ResNet vs this paper, 30–90%)",
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
    """Tables 4/5: mean ± std over the test samples of the per-sample mean over 30 models of the
    Q-Score, the Z-score and ‖ĥ‖₁."""

    q: float
    q_std: float
    z: float
    z_std: float
    l1: float
    l1_std: float


def _q(q: float, q_std: float, z: float, z_std: float, l1: float, l1_std: float) -> QCell:
    return QCell(q, q_std, z, z_std, l1, l1_std)


#: Tables 4 (SCL) and 5 (Sup) as printed: (method, column's pruning, sparsity %) -> Q / Z / ‖ĥ‖₁ (mean,
#: std). The 0 % row is the dense population in both columns, printed with the same means but not
#: always the same std (SCL's Q: ± 0.17 under GMP, ± 0.16 under One-Shot): both are kept, and the dense
#: population's lookup (:func:`table4_5` with ``dense``) gives the GMP column's
TABLE4_5: dict[tuple[str, str, int], QCell] = {
    ("supcon", "gmp", 0): _q(0.72, 0.17, 5.01, 0.62, 7.15, 0.8),
    ("supcon", "oneshot", 0): _q(0.72, 0.16, 5.01, 0.62, 7.15, 0.8),
    ("supcon", "gmp", 30): _q(0.69, 0.16, 4.95, 0.65, 7.34, 0.81),
    ("supcon", "gmp", 50): _q(0.66, 0.16, 4.84, 0.64, 7.5, 0.82),
    ("supcon", "gmp", 70): _q(0.62, 0.15, 4.68, 0.6, 7.74, 0.82),
    ("supcon", "gmp", 90): _q(0.56, 0.13, 4.47, 0.57, 8.14, 0.82),
    ("supcon", "oneshot", 30): _q(0.66, 0.14, 4.92, 0.61, 7.6, 0.76),
    ("supcon", "oneshot", 50): _q(0.65, 0.14, 4.93, 0.63, 7.71, 0.76),
    ("supcon", "oneshot", 70): _q(0.63, 0.08, 4.96, 0.63, 7.95, 0.74),
    ("supcon", "oneshot", 90): _q(0.59, 0.01, 4.89, 0.57, 8.39, 0.66),
    ("sup", "gmp", 0): _q(1.44, 0.29, 5.73, 0.68, 4.15, 0.4),
    ("sup", "oneshot", 0): _q(1.44, 0.29, 5.73, 0.68, 4.15, 0.4),
    ("sup", "gmp", 30): _q(1.43, 0.3, 5.71, 0.69, 4.19, 0.41),
    ("sup", "gmp", 50): _q(1.41, 0.29, 5.66, 0.68, 4.2, 0.41),
    ("sup", "gmp", 70): _q(1.39, 0.28, 5.61, 0.65, 4.2, 0.4),
    ("sup", "gmp", 90): _q(1.39, 0.27, 5.66, 0.64, 4.21, 0.38),
    ("sup", "oneshot", 30): _q(1.41, 0.28, 5.68, 0.67, 4.19, 0.39),
    ("sup", "oneshot", 50): _q(1.42, 0.29, 5.69, 0.68, 4.19, 0.39),
    ("sup", "oneshot", 70): _q(1.42, 0.26, 5.69, 0.67, 4.19, 0.39),
    ("sup", "oneshot", 90): _q(1.38, 0.26, 5.72, 0.66, 4.3, 0.35),
}


@dataclass(frozen=True)
class PDCell:
    """Table 6: mean PD-Score (± std) of the PIEs and of the non-PIEs, per sample averaged over 5 models."""

    pies: float
    pies_std: float
    non_pies: float
    non_pies_std: float


def _pd(pies: float, pies_std: float, non_pies: float, non_pies_std: float) -> PDCell:
    return PDCell(pies, pies_std, non_pies, non_pies_std)


#: Table 6 as printed: (method, column's pruning, sparsity %) -> PD of PIEs / non-PIEs (mean, std); the
#: 0 % row is printed in both columns (the paper does not say which PIE set splits it)
TABLE6: dict[tuple[str, str, int], PDCell] = {
    ("sup", "gmp", 0): _pd(14.87, 0.96, 10.85, 2.82),
    ("sup", "oneshot", 0): _pd(14.87, 0.96, 10.85, 2.82),
    ("sup", "gmp", 30): _pd(14.87, 1.01, 10.98, 2.75),
    ("sup", "gmp", 50): _pd(14.89, 1.1, 10.84, 2.94),
    ("sup", "gmp", 70): _pd(15.03, 1.2, 11.01, 2.86),
    ("sup", "gmp", 90): _pd(15.1, 1.13, 11.03, 2.91),
    ("sup", "oneshot", 30): _pd(14.95, 1.09, 11.0, 2.82),
    ("sup", "oneshot", 50): _pd(14.92, 1.17, 10.97, 2.93),
    ("sup", "oneshot", 70): _pd(14.85, 1.18, 10.89, 2.86),
    ("sup", "oneshot", 90): _pd(14.97, 1.13, 10.89, 2.91),
    ("supcon", "gmp", 0): _pd(14.67, 1.45, 9.94, 2.91),
    ("supcon", "oneshot", 0): _pd(14.67, 1.45, 9.94, 2.91),
    ("supcon", "gmp", 30): _pd(14.95, 1.91, 10.35, 4.15),
    ("supcon", "gmp", 50): _pd(15.09, 1.64, 10.36, 4.2),
    ("supcon", "gmp", 70): _pd(15.14, 1.81, 10.44, 4.23),
    ("supcon", "gmp", 90): _pd(15.15, 1.71, 10.48, 4.29),
    ("supcon", "oneshot", 30): _pd(14.67, 1.86, 9.67, 4.03),
    ("supcon", "oneshot", 50): _pd(14.69, 1.99, 9.71, 4.06),
    ("supcon", "oneshot", 70): _pd(14.56, 2.23, 9.79, 4.03),
    ("supcon", "oneshot", 90): _pd(14.97, 1.7, 10.0, 4.18),
}

#: Appendix Table 3: Sup/GMP PIE counts, sparsity % -> (Hooker et al. 2019 with ResNet, this paper with WRN-16-2)
TABLE3: dict[int, tuple[int, int]] = {30: (114, 188), 50: (144, 179), 70: (137, 204), 90: (216, 273)}

#: the findings the numbers should show (REFERENCE §4)
FINDINGS = {
    "F1": "at high sparsity SCL loses more accuracy and has more PIEs than Sup",
    "F2": "early pruning (GMP) hurts SCL more than later pruning (ΔGMP, One-Shot)",
    "F3": "SCL's Q-Score drops with sparsity while Sup's stays flat",
    "F4": "PD-Score predicts the pruned PD-Score for Sup but not SCL; PIEs have higher PD than non-PIEs",
}


# ---------------------------------------------------------------------------------------------
# the paper's effect sizes: the order a finding's sub-claim must reach to be "supported"
# ---------------------------------------------------------------------------------------------
#: "of the order the paper reports" = within this factor of the paper's effect, either way
ORDER = 3.0
#: F4's "PD does not predict the pruned PD well for SCL": the paper prints no ρ (its Figure 3 is a
#: scatter), so we read "not well" as ρ below this value (less than half of the rank variance, ρ² < 0.5)
F4_RHO_NOT_WELL = 0.7


def _acc(method: str, pruning: str, percent: int) -> float | None:
    cell = TABLE1.get((method, "dense", 0) if pruning == "dense" else (method, pruning, percent))
    return None if cell is None else cell.acc_mean


def _pies(method: str, pruning: str, percent: int) -> int | None:
    cell = TABLE1.get((method, pruning, percent))
    return None if cell is None else cell.pies


def _q(method: str, pruning: str, percent: int) -> float | None:
    cell = TABLE4_5.get((method, *_column(pruning, percent)))
    return None if cell is None else cell.q


def effect_f1_accuracy(pruning: str, percent: int) -> float | None:
    """SCL's accuracy drop − Sup's (points; drop = dense − pruned), Table 1."""
    acc = [_acc(m, p, percent) for m in ("supcon", "sup") for p in ("dense", pruning)]
    if any(a is None for a in acc):
        return None
    scl_dense, scl, sup_dense, sup = (float(a) for a in acc)  # type: ignore[arg-type]
    return (scl_dense - scl) - (sup_dense - sup)


def effect_f1_pies(pruning: str, percent: int) -> float | None:
    """SCL's PIEs / Sup's − 1 (30 vs 30 models), Table 1."""
    scl, sup = _pies("supcon", pruning, percent), _pies("sup", pruning, percent)
    return None if scl is None or not sup else scl / sup - 1.0


def effect_f2_accuracy(later: str, percent: int) -> float | None:
    """SCL's accuracy under the later schedule − under GMP (points), Table 1."""
    lat, gmp = _acc("supcon", later, percent), _acc("supcon", "gmp", percent)
    return None if lat is None or gmp is None else lat - gmp


def effect_f2_pies(later: str, percent: int) -> float | None:
    """SCL's PIEs under GMP / under the later schedule − 1, Table 1."""
    gmp, lat = _pies("supcon", "gmp", percent), _pies("supcon", later, percent)
    return None if gmp is None or not lat else gmp / lat - 1.0


def effect_q_relative(method: str, pruning: str, percent: int) -> float | None:
    """A method's mean Q-Score pruned / dense − 1, Tables 4/5."""
    dense, pruned = _q(method, "dense", 0), _q(method, pruning, percent)
    return None if dense is None or pruned is None else pruned / dense - 1.0


def effect_f3_gap(pruning: str, percent: int) -> float | None:
    """|SCL's relative Q-Score change| − |Sup's|, Tables 4/5."""
    scl, sup = effect_q_relative("supcon", pruning, percent), effect_q_relative("sup", pruning, percent)
    return None if scl is None or sup is None else abs(scl) - abs(sup)


def effect_pd_gap(method: str, pruning: str, percent: int) -> float | None:
    """Mean PD of PIEs − of non-PIEs (pruned models, 5 per cell), Table 6."""
    cell = TABLE6.get((method, pruning, percent))
    return None if cell is None else cell.pies - cell.non_pies


def matches(dataset: str) -> bool:
    """Whether runs on ``dataset`` are comparable with the paper's numbers (CIFAR-10 only)."""
    return dataset == DATASET


def table1(dataset: str, method: str, pruning: str, percent: int) -> Table1Cell | None:
    return TABLE1.get((method, pruning, percent)) if matches(dataset) else None


def _column(pruning: str, percent: int) -> tuple[str, int]:
    """A dense population reads the 0 % row of the GMP column (Tables 4–6 print one per column)."""
    return ("gmp", 0) if pruning == "dense" else (pruning, percent)


def table4_5(dataset: str, method: str, pruning: str, percent: int) -> QCell | None:
    return TABLE4_5.get((method, *_column(pruning, percent))) if matches(dataset) else None


def table6(dataset: str, method: str, pruning: str, percent: int) -> PDCell | None:
    if pruning == "dense":
        return None  # Table 6 splits pruned cells' samples into PIEs and non-PIEs
    return TABLE6.get((method, pruning, percent)) if matches(dataset) else None


def _why_missing(method: str, pruning: str, percent: int, table: str = "table1") -> str:
    if method not in ("sup", "supcon"):
        return "the paper has no such method"
    if pruning not in ("dense", "gmp", "delta_gmp", "oneshot"):
        return "the paper has no such schedule"
    if pruning == "delta_gmp" and table != "table1":
        return "the paper has no ΔGMP column in Tables 4–6"
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
            out.append(f"{name} ({_why_missing(method, pruning, percent, table)})")
    return out


__all__ = [
    "AVAILABLE",
    "F4_RHO_NOT_WELL",
    "ORDER",
    "effect_f1_accuracy",
    "effect_f1_pies",
    "effect_f2_accuracy",
    "effect_f2_pies",
    "effect_f3_gap",
    "effect_pd_gap",
    "effect_q_relative",
    "FINDINGS",
    "MAIN_SPARSITIES",
    "MODELS_PER_CELL",
    "PD_MODELS_PER_CELL",
    "PAPER",
    "PDCell",
    "QCell",
    "TABLE1",
    "TABLE3",
    "TABLE4_5",
    "TABLE6",
    "Table1Cell",
    "matches",
    "table1",
    "table4_5",
    "table6",
    "unavailable",
]
