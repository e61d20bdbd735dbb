"""Table 1: test accuracy mean ± std over the models of each population and the number of PIEs per
(method, pruning schedule, sparsity), with the paper's Table 1 beside it on CIFAR-10."""

from __future__ import annotations

from analysis import reference
from analysis.pies import SettingPies
from analysis.runs import Population, Setting, Study
from analysis.stats import METHOD_TEXT
from analysis.tables_render import DASH, Record, Table, _key, _no_paper, _render, fmt, model_mean_std, schedule_label
from analysis.uncertainty import CellStats, StudyStats
from common.run_folder import DENSE, method_key
from common.run_folder import pruning_key as _pruning_key


def _columns(pops: dict[Setting, Population]) -> list[tuple[str, str | None]]:
    """(method, pruning) columns of Table 1: each method's schedules; ``None`` for a dense-only method."""
    methods = sorted({s.method for s in pops}, key=method_key)
    cols: list[tuple[str, str | None]] = []
    for m in methods:
        schedules = sorted({s.pruning for s in pops if s.method == m and not s.is_dense}, key=_pruning_key)
        cols += [(m, p) for p in schedules] if schedules else [(m, None)]
    return cols


# ---------------------------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------------------------
def _pie_cell(result: SettingPies, cell: CellStats | None) -> str:
    """``2 vs 2: 534.6 · floor 414.5 · excess +120.1 [+80.0, +160.2] · all 5 vs 5: 404``."""
    every = f"all {result.n_dense} vs {result.n_pruned}: {result.count}"
    if cell is None:
        return every
    if cell.pies is None:
        return f"no floor (too few models) · {every}"
    p = cell.pies
    return f"{p.h} vs {p.h}: {p.pruned_mean:.1f} · floor {p.floor_mean:.1f} · excess {p.excess.fmt(1, signed=True)} · {every}"


def _floor_cell(setting: Setting, has_runs: bool, stats: StudyStats | None) -> str:
    floor = stats.floors.get(setting) if stats is not None else None
    if floor is not None:
        return f"floor {floor.fmt()} ({floor.h} vs {floor.h} models)"
    if has_runs and stats is not None:
        return f"{DASH} (noise floor needs ≥ 3 dense models)"
    return DASH


def _table1_cells(setting: Setting, record: Record | None, stats: StudyStats | None) -> list[str]:
    """The accuracy and PIE cells of one (method, schedule, sparsity); ``record`` None: no runs."""
    if record is None:
        ref = reference.table1(setting.dataset, setting.method, setting.pruning, setting.percent)
        acc = "(no runs)"
    else:
        ref = record["_ref"]
        acc = f"{fmt(record['acc_mean'], record['acc_std'])} (n={record['n_models']})"
        if record["_cell"] is not None:
            acc += f" · Δ {record['_cell'].acc_diff.fmt(signed=True)}"
    if ref is not None:
        acc += f" · paper {ref.acc_mean:g} ± {ref.acc_std:g}"
    if setting.is_dense:
        pie = _floor_cell(setting, record is not None, stats)
    else:
        result = None if record is None else record["_result"]
        if result is None:
            pie = "(no dense runs)" if record is not None else ""
        else:
            pie = _pie_cell(result, record["_cell"] if record is not None else None)
        if ref is not None and ref.pies is not None:
            pie += f" · paper (all 30 vs 30) {ref.pies}"
    return [acc, pie]


def table1(study: Study, pies: dict[Setting, SettingPies], stats: StudyStats | None = None) -> Table:
    """Test accuracy mean ± std (over models), its change vs dense with a 95% interval over models, and
    the PIEs of h pruned vs h dense models beside the noise floor of the same h, their excess with its
    interval, and the PIE set of all models, per sparsity and (method, schedule)."""
    records: list[Record] = []
    for dataset in study.datasets:
        for setting, pop in study.of(dataset).items():
            mean, std = model_mean_std(pop.accuracies())
            result = pies.get(setting)
            cell = stats.cells.get(setting) if stats is not None else None
            pie = None if cell is None else cell.pies
            floor = None if stats is None or not setting.is_dense else stats.floors.get(setting)
            ref = reference.table1(dataset, setting.method, setting.pruning, setting.percent)
            records.append(
                {
                    **_key(setting), "n_models": pop.n, "seeds": list(pop.seeds),
                    "acc_mean": mean, "acc_std": std,
                    "acc_diff": None if cell is None else cell.acc_diff.estimate,
                    "acc_diff_low": None if cell is None else cell.acc_diff.low,
                    "acc_diff_high": None if cell is None else cell.acc_diff.high,
                    "n_dense": None if result is None else result.n_dense,
                    "pies": None if result is None else result.count,
                    "h": pie.h if pie is not None else floor.h if floor is not None else None,
                    "pies_h": None if pie is None else pie.pruned_mean,
                    "noise_floor_mean": pie.floor_mean if pie is not None else floor.mean if floor is not None else None,
                    "noise_floor_min": int(pie.floor.min()) if pie is not None else int(floor.counts.min()) if floor is not None else None,
                    "noise_floor_max": int(pie.floor.max()) if pie is not None else int(floor.counts.max()) if floor is not None else None,
                    "excess": None if pie is None else pie.excess.estimate,
                    "excess_low": None if pie is None else pie.excess.low,
                    "excess_high": None if pie is None else pie.excess.high,
                    "above_floor": None if cell is None or cell.above_floor is None else bool(cell.above_floor),
                    "paper_acc_mean": None if ref is None else ref.acc_mean,
                    "paper_acc_std": None if ref is None else ref.acc_std,
                    "paper_pies": None if ref is None else ref.pies,
                    "_setting": setting, "_result": result, "_cell": cell, "_ref": ref,
                }
            )  # fmt: skip

    def header(dataset: str, _: list[Record]) -> list[str]:
        out = ["sparsity"]
        for m, p in _columns(study.of(dataset)):
            out += [f"{schedule_label(m, p)} acc (%)", f"{schedule_label(m, p)} PIEs"]
        return out

    def rows(dataset: str, mine: list[Record]) -> list[list[str]]:
        """The pivot: one row per sparsity (dense first), one column pair per (method, schedule)."""
        pops = study.of(dataset)
        by_setting = {r["_setting"]: r for r in mine}
        out: list[list[str]] = []
        for sparsity in [0.0, *sorted({s.sparsity for s in pops if not s.is_dense})]:
            row = [f"{round(sparsity * 100):d}%"]
            for m, p in _columns(pops):
                if sparsity != 0.0 and p is None:
                    row += ["", ""]
                    continue
                setting = Setting(dataset, m, DENSE, 0.0) if sparsity == 0.0 else Setting(dataset, m, str(p), sparsity)
                row += _table1_cells(setting, by_setting.get(setting), stats)
            out.append(row)
        return out

    def notes(dataset: str, mine: list[Record]) -> list[str]:
        out = []
        if stats is not None:
            out.append(
                f"Δ = mean accuracy pruned − dense in points; [ ] = {METHOD_TEXT} (Welch's interval for a difference of means)."
            )
            out.append(
                "PIEs: h vs h = PIEs of h pruned models against h dense models, floor = PIEs of h dense models against h "
                "other dense models (the noise floor), both at the same h = min((dense − 1) // 2, pruned − 1), from the same "
                "dense subsets drawn without replacement (every subset when there are few, else "
                f"{stats.n_splits} random matched splits); excess = h vs h − floor with its interval over models; "
                "all d vs p = the PIE set of every model (the paper's count, what Table 6 and the figures split by), which "
                "has no floor of its size (that would need twice as many dense models). Dense row: its floor at its own h, "
                "mean (min–max) over the subset pairs."
            )
        if not reference.matches(dataset):
            out.append(_no_paper(dataset))
        elif any(r["method"] == "sup" and r["pruning"] == "gmp" for r in mine):
            hooker = ", ".join(f"{pct}%: {h} vs {ours}" for pct, (h, ours) in sorted(reference.TABLE3.items()))
            out.append(f"the paper's appendix Table 3, Sup/GMP PIEs of Hooker et al. 2019 (ResNet) vs the paper (WRN-16-2): {hooker}")
        return out

    return _render(
        "table1",
        "Table 1 — test accuracy and number of PIEs",
        (
            "accuracy = per-sample predictions == labels over the whole test set, mean ± sample std (ddof=1) "
            "over the models of a population (n); PIEs = test images whose modal prediction over the pruned "
            "models differs from the modal prediction over the dense models of the same method "
            "(ties: see the report header); the dense row is each method's dense population."
        ),
        [
            "dataset", "method", "pruning", "sparsity", "n_models", "seeds", "acc_mean", "acc_std",
            "acc_diff", "acc_diff_low", "acc_diff_high", "n_dense", "pies", "h", "pies_h", "noise_floor_mean",
            "noise_floor_min", "noise_floor_max", "excess", "excess_low", "excess_high", "above_floor",
            "paper_acc_mean", "paper_acc_std", "paper_pies",
        ],  # fmt: skip
        records,
        header=header,
        rows=rows,
        notes=notes,
        datasets=study.datasets,
    )
