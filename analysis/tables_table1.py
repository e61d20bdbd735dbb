"""Table 1: test accuracy mean ± std over the models of each population and the number of PIEs per
(method, pruning schedule, sparsity), with the paper's Table 1 beside it on CIFAR-10."""

from __future__ import annotations

from analysis import reference
from analysis.pies import SettingPies
from analysis.runs import Population, Setting, Study
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
    if cell is None:
        return f"{result.count} (n={result.n_dense} dense / {result.n_pruned} pruned)"
    text = f"{result.count} [{cell.pies.low:.0f}, {cell.pies.high:.0f}] (n={result.n_dense} dense / {result.n_pruned} pruned)"
    if cell.matched is not None:
        text += f" · at {cell.matched.size}/{cell.matched.size}: {cell.matched.mean:.1f}"
    if cell.floor is not None:
        text += f" · floor {cell.floor.fmt()}"
    return text


def _floor_cell(setting: Setting, has_runs: bool, stats: StudyStats | None) -> str:
    floor = stats.floors.get(setting) if stats is not None else None
    if floor is not None:
        return f"floor {floor.fmt()} ({floor.half} vs {floor.half} models)"
    if has_runs and stats is not None:
        return f"{DASH} (noise floor needs ≥ 4 dense models)"
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
            pie += f" · paper {ref.pies}"
    return [acc, pie]


def table1(study: Study, pies: dict[Setting, SettingPies], stats: StudyStats | None = None) -> Table:
    """Test accuracy mean ± std (over models), its change vs dense with a 95% interval, and the PIE
    count with its interval, the equal-size count and the noise floor, per sparsity and (method, schedule)."""
    records: list[Record] = []
    for dataset in study.datasets:
        for setting, pop in study.of(dataset).items():
            mean, std = model_mean_std(pop.accuracies())
            result = pies.get(setting)
            cell = stats.cells.get(setting) if stats is not None else None
            floor = None if stats is None else stats.floors.get(setting.dense)
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
                    "pies_low": None if cell is None else cell.pies.low,
                    "pies_high": None if cell is None else cell.pies.high,
                    "pies_equal_n": None if cell is None or cell.matched is None else cell.matched.mean,
                    "equal_n": None if cell is None or cell.matched is None else cell.matched.size,
                    "noise_floor_mean": None if floor is None else floor.mean,
                    "noise_floor_min": None if floor is None else floor.low,
                    "noise_floor_max": None if floor is None else floor.high,
                    "noise_floor_half": None if floor is None else floor.half,
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
                "Δ = mean accuracy pruned − dense in points, [95% bootstrap interval] over models (each population "
                f"resampled with replacement, {stats.n_boot} resamples); PIEs [95% bootstrap interval] over models "
                "(a resample repeats some models, so its modes are noisier and the interval usually lies above the count); "
                "'at k/k' = PIEs with both populations subsampled to the smaller size k (mean over draws), when they differ."
            )
            out.append(
                f"floor = noise floor of the method's dense population: PIEs between two disjoint random halves of it, "
                f"mean (min–max) over {stats.n_splits} splits (dense row: half size). Measured with half as many models "
                "as the full population, it is larger than the floor of the full size, so a PIE count means something "
                "only well above it (see tables/pies_uncertainty for the like-for-like comparison)."
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
            "acc_diff", "acc_diff_low", "acc_diff_high", "n_dense", "pies", "pies_low", "pies_high",
            "pies_equal_n", "equal_n", "noise_floor_mean", "noise_floor_min", "noise_floor_max", "noise_floor_half",
            "paper_acc_mean", "paper_acc_std", "paper_pies",
        ],  # fmt: skip
        records,
        header=header,
        rows=rows,
        notes=notes,
        datasets=study.datasets,
    )
