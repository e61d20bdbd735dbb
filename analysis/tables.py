"""The paper's tables from populations: Markdown + CSV under ``<out>/tables/``.

* ``table1``   — test accuracy (%) mean ± std over the models of each population, and the number of
  PIEs per (method, pruning schedule, sparsity), with the paper's Table 1 beside it on CIFAR-10.
* ``table4_5`` — mean ± std of Q-Score, Z-score and ‖ĥ‖₁ (paper Tables 4/5).
* ``table6``   — prediction depth of PIEs vs non-PIEs (paper Table 6).
* ``pies_shared``, ``pies_per_class`` — PIEs shared between two methods at the same setting vs unique,
  and the per-class PIE distribution (the numbers behind the PIE bar figures).
* ``populations`` — what was aggregated: models, seeds, status, epochs, backbone, achieved sparsity.
* ``pies_uncertainty`` — per pruned cell: PIE count with its bootstrap interval, the count at equal
  population sizes, the count of ``h`` vs ``h`` models beside the noise floor of its dense population.
* ``oneshot_pairs`` — One-Shot children vs their dense parents: the paired accuracy change.

Intervals are 95% bootstrap percentile intervals over models (:mod:`analysis.uncertainty`).

Every cell names how many models it aggregates (``n=``). Two kinds of std appear, and each table
says which: **over models** (Table 1 accuracy; sample std, ddof=1, undefined for one model) and
**over test samples** of the per-sample population mean (Tables 4/5 and 6; ddof=0, as the authors' code).
The Markdown has one section per dataset; the CSV is long-form with a ``dataset`` column.

Every builder computes its numbers (and looks up the paper) once, into long-form records — one
dict per CSV row, plus ``_``-prefixed values only the Markdown needs — and :func:`_render` makes
both outputs from those records, so the Markdown and the CSV cannot disagree. "Shared with other
methods" has one definition, :func:`analysis.pies.same_cell_groups`.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import reference
from analysis.pairs import CellPairs
from analysis.pies import SettingPies, SharedPies, per_class_counts, shared_with_other_methods
from analysis.runs import Population, Setting, Study
from analysis.stats import Interval, bootstrap_indices, bootstrap_means, interval
from analysis.uncertainty import LEVEL, CellStats, StudyStats, seed_for
from common.run_folder import DENSE, method_key, method_name, pruning_name
from common.run_folder import pruning_key as _pruning_key

DASH = "–"


@dataclass
class Section:
    """One Markdown table (usually one dataset)."""

    heading: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

        out = [line(self.header), "|" + "|".join("---" for _ in self.header) + "|"]
        out += [line(r) for r in self.rows]
        text = "\n".join(out)
        if self.notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in self.notes)
        return text


@dataclass
class Table:
    """A table in Markdown (sections) and CSV (long-form rows), with one line on how it was computed."""

    name: str
    title: str
    how: str
    sections: list[Section]
    csv_columns: list[str]
    csv_rows: list[dict[str, Any]]

    def markdown(self, *, level: int = 2) -> str:
        """The table's Markdown: title, how it was computed, one sub-section per dataset."""
        parts = [f"{'#' * level} {self.title}", "", f"*How:* {self.how}", ""]
        if not self.sections:
            parts.append("*(no populations for this table)*")
        for section in self.sections:
            parts += [f"{'#' * (level + 1)} {section.heading}", "", section.markdown(), ""]
        return "\n".join(parts).rstrip() + "\n"

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.csv_columns, extrasaction="raise", lineterminator="\n")
        writer.writeheader()
        for row in self.csv_rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in self.csv_columns})
        return buffer.getvalue()

    def write(self, folder: Path) -> list[Path]:
        """``<folder>/<name>.md`` and ``<folder>/<name>.csv``."""
        folder.mkdir(parents=True, exist_ok=True)
        md, csv_path = folder / f"{self.name}.md", folder / f"{self.name}.csv"
        md.write_text(self.markdown(level=1), encoding="utf-8")
        csv_path.write_text(self.csv_text(), encoding="utf-8")
        return [md, csv_path]


# ---------------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------------
def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return value


def model_mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample std (ddof=1) over models; std is NaN for one model."""
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return float(values.mean()), std


def sample_mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and std (ddof=0) over test samples; NaN for none."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std())


def fmt(mean: float, std: float, digits: int = 2) -> str:
    """``90.41 ± 0.30``; a NaN std prints as ``–``."""
    if not math.isfinite(mean):
        return DASH
    s = f"{std:.{digits}f}" if math.isfinite(std) else DASH
    return f"{mean:.{digits}f} ± {s}"


def schedule_label(method: str, pruning: str | None) -> str:
    return method_name(method) + ("" if pruning is None else f"/{pruning_name(pruning)}")


def _columns(pops: dict[Setting, Population]) -> list[tuple[str, str | None]]:
    """(method, pruning) columns of Table 1: each method's schedules; ``None`` for a dense-only method."""
    methods = sorted({s.method for s in pops}, key=method_key)
    cols: list[tuple[str, str | None]] = []
    for m in methods:
        schedules = sorted({s.pruning for s in pops if s.method == m and not s.is_dense}, key=_pruning_key)
        cols += [(m, p) for p in schedules] if schedules else [(m, None)]
    return cols


# ---------------------------------------------------------------------------------------------
# the one renderer
# ---------------------------------------------------------------------------------------------
#: one long-form row: the CSV columns by name, plus ``_``-prefixed values only the Markdown needs
Record = dict[str, Any]


def _render(
    name: str,
    title: str,
    how: str,
    csv_columns: list[str],
    records: list[Record],
    *,
    header: Callable[[str, list[Record]], list[str]],
    row: Callable[[Record], list[str]] | None = None,
    rows: Callable[[str, list[Record]], list[list[str]]] | None = None,
    notes: Callable[[str, list[Record]], list[str]] | None = None,
    datasets: Sequence[str] | None = None,
) -> Table:
    """Long-form records -> a :class:`Table`: the CSV is the records (their public columns), the
    Markdown one section per dataset of the same records, one ``row`` each (or ``rows`` for a
    pivot). ``datasets``: the sections, in order (default: the datasets of the records, as they come)."""
    if datasets is None:
        datasets = list(dict.fromkeys(r["dataset"] for r in records))
    sections: list[Section] = []
    for dataset in datasets:
        mine = [r for r in records if r["dataset"] == dataset]
        if rows is not None:
            body = rows(dataset, mine)
        else:
            assert row is not None, "a table needs row or rows"
            body = [row(r) for r in mine]
        sections.append(Section(dataset, header(dataset, mine), body, notes(dataset, mine) if notes is not None else []))
    csv_rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in records]
    return Table(name=name, title=title, how=how, sections=sections, csv_columns=csv_columns, csv_rows=csv_rows)


def _key(setting: Setting) -> Record:
    """The four columns every per-setting record starts with."""
    return {"dataset": setting.dataset, "method": setting.method, "pruning": setting.pruning, "sparsity": setting.sparsity}


def _seeds_text(seeds: Sequence[int | str | None]) -> str:
    return ", ".join("?" if s is None else str(s) for s in seeds)


def _with_floor(count: int, setting: Setting, stats: StudyStats | None) -> str:
    """``101 · floor 102.4 (96–128)``: a PIE count with its dense population's noise floor beside it."""
    floor = None if stats is None else stats.floors.get(setting.dense)
    return str(count) if floor is None else f"{count} · floor {floor.fmt()}"


def _no_paper(dataset: str) -> str:
    return f"no paper numbers: the paper reports {reference.DATASET} only, this is {dataset}"


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


def pies_uncertainty(study: Study, stats: StudyStats) -> Table:
    """Per pruned cell: is its PIE count more than the noise of a finite population of models?"""
    records: list[Record] = []
    for setting in sorted(stats.cells, key=_setting_key):
        cell = stats.cells[setting]
        records.append(
            {
                **_key(setting), "n_dense": cell.n_dense, "n_pruned": cell.n_pruned, "pies": int(cell.pies.estimate),
                "pies_low": cell.pies.low, "pies_high": cell.pies.high,
                "pies_equal_n": None if cell.matched is None else cell.matched.mean,
                "equal_n": None if cell.matched is None else cell.matched.size,
                "half": None if cell.half is None else cell.half.size,
                "pies_half_mean": None if cell.half is None else cell.half.mean,
                "pies_half_min": None if cell.half is None else cell.half.low,
                "pies_half_max": None if cell.half is None else cell.half.high,
                "noise_floor_mean": None if cell.floor is None else cell.floor.mean,
                "noise_floor_min": None if cell.floor is None else cell.floor.low,
                "noise_floor_max": None if cell.floor is None else cell.floor.high,
                "above_floor": None if cell.above_floor is None else bool(cell.above_floor),
                "_setting": setting, "_cell": cell,
            }
        )  # fmt: skip

    def row(r: Record) -> list[str]:
        cell: CellStats = r["_cell"]
        if cell.floor is None or cell.half is None:
            half = floor = ratio = DASH
            verdict = "no floor (dense < 4 models)"
        else:
            half = f"{cell.half.fmt()} (h={cell.half.size})"
            floor = cell.floor.fmt()
            q = cell.floor_ratio
            ratio = DASH if q is None or not math.isfinite(q) else f"×{q:.1f}"
            if q is not None and q == float("inf"):
                ratio = "∞ (floor 0)"
            verdict = "above the floor" if cell.above_floor else "within the floor's range: noise"
        matched = DASH if cell.matched is None else f"{cell.matched.fmt()} at {cell.matched.size}/{cell.matched.size}"
        return [r["_setting"].label(dataset=False), f"{cell.n_dense} / {cell.n_pruned}", cell.pies.fmt(0), matched, half, floor, ratio, verdict]

    return _render(
        "pies_uncertainty",
        "PIE counts against the noise floor",
        (
            f"PIEs [95% bootstrap interval over models, {stats.n_boot} resamples]; 'at equal size' = both populations "
            f"subsampled to the smaller one (mean (min–max) over {stats.n_splits} draws); 'h vs h' = PIEs of h pruned models "
            f"against one random half (h models) of the dense population, and the noise floor = that half against the other "
            f"half, mean (min–max) over the same {stats.n_splits} splits — the like-for-like comparison. 'above the floor' = "
            "the pruned mean exceeds the floor's maximum; a PIE count means something only well above the floor."
        ),
        [
            "dataset", "method", "pruning", "sparsity", "n_dense", "n_pruned", "pies", "pies_low", "pies_high",
            "pies_equal_n", "equal_n", "half", "pies_half_mean", "pies_half_min", "pies_half_max",
            "noise_floor_mean", "noise_floor_min", "noise_floor_max", "above_floor",
        ],  # fmt: skip
        records,
        header=lambda dataset, _: [
            "setting", "n dense / pruned", "PIEs [95% CI]", "at equal size", "h vs h: pruned", "h vs h: noise floor",
            "pruned / floor", "verdict",
        ],  # fmt: skip
        row=row,
    )


def oneshot_pairs(pairs: dict[Setting, CellPairs], *, show: Any = str) -> Table:
    """One-Shot children vs their dense parents: the paired accuracy change child − parent per cell."""
    records: list[Record] = []
    for setting in sorted(pairs, key=_setting_key):
        cell = pairs[setting]
        child = np.array([c.accuracy for c, _ in cell.pairs]) if cell.pairs else np.zeros(0)
        parent = np.array([p.accuracy for _, p in cell.pairs]) if cell.pairs else np.zeros(0)
        child_mean, child_std = model_mean_std(child) if len(child) else (None, None)
        parent_mean, parent_std = model_mean_std(parent) if len(parent) else (None, None)
        records.append(
            {
                **_key(setting), "n_pairs": len(cell.pairs), "n_children": len(cell.children),
                "seeds": [c.seed for c, _ in cell.pairs],
                "deltas": [f"{d:.4f}" for d in cell.deltas],
                "child_acc_mean": child_mean, "parent_acc_mean": parent_mean,
                "delta_mean": None if cell.delta is None else cell.delta.estimate,
                "delta_low": None if cell.delta is None else cell.delta.low,
                "delta_high": None if cell.delta is None else cell.delta.high,
                "parents": [show(p.path) for _, p in cell.pairs],
                "unpaired": [show(c.path) for c, _ in cell.unpaired],
                "_setting": setting, "_cell": cell, "_child_acc_std": child_std, "_parent_acc_std": parent_std,
            }
        )  # fmt: skip

    def row(r: Record) -> list[str]:
        cell: CellPairs = r["_cell"]
        if cell.pairs:
            assert cell.delta is not None
            cells = [fmt(r["child_acc_mean"], r["_child_acc_std"]), fmt(r["parent_acc_mean"], r["_parent_acc_std"]), cell.delta.fmt(signed=True)]
        else:
            cells = [DASH, DASH, DASH]
        return [r["_setting"].label(dataset=False), f"{r['n_pairs']} of {r['n_children']}", *cells, str(len(r["unpaired"]))]

    moved = sum(c.moved for c in pairs.values())
    moved_note = (
        f"{moved} pair(s) found by the parent's run id and seed: the parent folder the child recorded is not loaded "
        "(run folders copied or downloaded elsewhere)"
    )
    return _render(
        "oneshot_pairs",
        "One-Shot children vs their dense parents",
        (
            "each One-Shot child (run.json parent_run) paired with its dense parent among the loaded runs; Δ = child − "
            "parent test accuracy in points (both from their per-sample files), mean over the pairs with a 95% bootstrap "
            "interval over pairs; child and parent accuracy mean ± std over the pairs."
        ),
        ["dataset", "method", "pruning", "sparsity", "n_pairs", "n_children", "seeds", "deltas",
         "child_acc_mean", "parent_acc_mean", "delta_mean", "delta_low", "delta_high", "parents", "unpaired"],  # fmt: skip
        records,
        header=lambda dataset, _: ["setting", "pairs", "child acc (%)", "parent acc (%)", "Δ child − parent [95% CI]", "unpaired children"],
        row=row,
        notes=lambda dataset, _: [moved_note] if moved else [],
    )


# ---------------------------------------------------------------------------------------------
# Tables 4/5
# ---------------------------------------------------------------------------------------------
Q_ARRAYS = (("q_score", "Q"), ("z_score", "Z"), ("l1_norm", "‖ĥ‖₁"))


def _minus_paper(estimate: float | None, boot: np.ndarray | None, paper: float, level: float) -> Interval | None:
    """Ours − the paper's value, with the percentile interval of our bootstrap over models (None
    without a bootstrap: no stats, or too few models)."""
    if estimate is None or boot is None or not np.isfinite(estimate):
        return None
    return interval(estimate - paper, np.asarray(boot) - paper, level)


def _diff_text(diff: Interval | None, estimate: float | None, paper: float) -> str:
    if diff is not None:
        return diff.fmt(signed=True)
    return DASH if estimate is None else f"{estimate - paper:+.2f}"


def _diff_record(prefix: str, diff: Interval | None, estimate: float | None, paper: float | None) -> Record:
    value = None if estimate is None or paper is None else estimate - paper
    return {f"{prefix}_minus_paper": value, f"{prefix}_minus_paper_low": None if diff is None else diff.low,
            f"{prefix}_minus_paper_high": None if diff is None else diff.high}  # fmt: skip


def table4_5(study: Study, stats: StudyStats | None = None) -> Table:
    """Mean ± std over test samples of the per-sample population mean of Q, Z and ‖ĥ‖₁; on CIFAR-10
    the paper's value (± its std) in every cell it prints, and our mean Q − the paper's with its
    bootstrap interval over models."""
    records: list[Record] = []
    for dataset in study.datasets:
        pops = study.of(dataset)
        for setting in sorted(pops, key=_setting_key):
            pop = pops[setting]
            record: Record = {**_key(setting), "n_samples": len(pop.index)}
            for name, _ in Q_ARRAYS:
                stacked = pop.stack(name)
                if stacked is None:
                    record.update({f"{name}_mean": None, f"{name}_std": None, f"{name}_n_models": 0})
                    continue
                values, n = stacked
                mean, std = sample_mean_std(values.mean(axis=0))
                record.update({f"{name}_mean": mean, f"{name}_std": std, f"{name}_n_models": n})
            ref = reference.table4_5(dataset, setting.method, setting.pruning, setting.percent)
            boot = stats.model_values_boot(pop, "q_score") if stats is not None and setting in stats.populations else None
            diff = None if ref is None else _minus_paper(record["q_score_mean"], None if boot is None else boot[1], ref.q,
                                                         stats.level if stats else LEVEL)  # fmt: skip
            for name, attr in (("q", "q"), ("z", "z"), ("l1", "l1")):
                record[f"paper_{name}"] = None if ref is None else getattr(ref, attr)
                record[f"paper_{name}_std"] = None if ref is None else getattr(ref, f"{attr}_std")
            record.update(_diff_record("q", diff, record["q_score_mean"], None if ref is None else ref.q))
            record.update(_setting=setting, _ref=ref, _diff=diff)
            records.append(record)

    def header(dataset: str, _: list[Record]) -> list[str]:
        out = ["setting", *[f"{label} (mean ± std)" for _, label in Q_ARRAYS]]
        return out + ["paper Q / Z / ‖ĥ‖₁ (mean ± std)", "Q ours − paper [95% interval]"] if reference.matches(dataset) else out

    def row(r: Record) -> list[str]:
        out = [r["_setting"].label(dataset=False)]
        for name, _ in Q_ARRAYS:
            n = r[f"{name}_n_models"]
            out.append(f"no {name}" if not n else f"{fmt(r[f'{name}_mean'], r[f'{name}_std'])} (n={n})")
        if reference.matches(r["dataset"]):
            ref = r["_ref"]
            if ref is None:
                out += [DASH, DASH]
            else:
                out.append(f"{fmt(ref.q, ref.q_std)} / {fmt(ref.z, ref.z_std)} / {fmt(ref.l1, ref.l1_std)}")
                out.append(_diff_text(r["_diff"], r["q_score_mean"], ref.q))
        return out

    def notes(dataset: str, _: list[Record]) -> list[str]:
        if not reference.matches(dataset):
            return [_no_paper(dataset)]
        return ["paper: Tables 4 (SCL) and 5 (Sup), 30 models per cell, every cell it prints (no ΔGMP column); ours − paper: "
                "our mean Q − the paper's, interval from the bootstrap over our models (the paper's own spread not included)"]

    columns = ["dataset", "method", "pruning", "sparsity", "n_samples"]
    for name, _ in Q_ARRAYS:
        columns += [f"{name}_mean", f"{name}_std", f"{name}_n_models"]
    columns += ["paper_q", "paper_q_std", "paper_z", "paper_z_std", "paper_l1", "paper_l1_std",
                "q_minus_paper", "q_minus_paper_low", "q_minus_paper_high"]  # fmt: skip
    return _render(
        "table4_5",
        "Tables 4/5 — Q-Score, Z-score and ‖ĥ‖₁",
        (
            "per test sample, the value (callbacks.metrics.QScore) averaged over the n models of the population; "
            "then mean ± std (ddof=0) of that average over the test samples, as the authors' code does."
        ),
        columns,
        records,
        header=header,
        row=row,
        notes=notes,
        datasets=study.datasets,
    )


# ---------------------------------------------------------------------------------------------
# Table 6
# ---------------------------------------------------------------------------------------------
PD_WHICH = ("pruned", "dense")


def _pd_minus_paper(
    values: np.ndarray, mask: np.ndarray, mean: float, paper: float, stats: StudyStats | None, setting: Setting, part: str
) -> Interval | None:
    """Our mean PD over the ``mask`` samples − the paper's, with a bootstrap over our PD models (rows of
    ``values [models, N]``): each row resamples the models, averages them per sample, then over the mask."""
    if stats is None or values.shape[0] < 2 or not mask.any():
        return None
    idx = bootstrap_indices(values.shape[0], stats.n_boot, seed_for(stats.seed, setting.slug(), f"pd_{part}"))
    boot = bootstrap_means(values[:, mask].mean(axis=1), idx)  # = mean over the mask of the per-sample model mean
    return interval(mean - paper, boot - paper, stats.level)


def table6(study: Study, pies: dict[Setting, SettingPies], stats: StudyStats | None = None) -> Table:
    """Prediction depth of PIEs vs non-PIEs, from the pruned models and from the dense models.

    PD is averaged over exactly the first ``study.pd_models`` seeds of each population (the paper
    averages PD over 5 models; fewer when a population has fewer); PIEs come from the whole populations.
    """
    n_pd = study.pd_models
    records: list[Record] = []
    for dataset in study.datasets:
        pops = study.of(dataset)
        for setting in sorted((s for s in pies if s.dataset == dataset), key=_setting_key):
            result = pies[setting]
            record: Record = {**_key(setting), "pies": result.count, "non_pies": int((~result.flags).sum())}
            ref = reference.table6(dataset, setting.method, setting.pruning, setting.percent)
            for which, pop in zip(PD_WHICH, (pops[setting], pops[setting.dense])):
                stacked = pop.stack("pd_score", first=n_pd)
                for part, mask in (("pies", result.flags), ("non_pies", ~result.flags)):
                    if stacked is None:
                        record.update({f"pd_{part}_{which}_mean": None, f"pd_{part}_{which}_std": None})
                        continue
                    mean, std = sample_mean_std(stacked[0].mean(axis=0)[mask])
                    record.update({f"pd_{part}_{which}_mean": mean, f"pd_{part}_{which}_std": std})
                    if which == "pruned" and ref is not None:  # the paper reports the pruned models' PD
                        paper = getattr(ref, part)
                        diff = _pd_minus_paper(stacked[0], mask, mean, paper, stats, setting, part)
                        record.update({f"paper_pd_{part}": paper, f"paper_pd_{part}_std": getattr(ref, f"{part}_std")})
                        record.update(_diff_record(f"pd_{part}", diff, mean, paper))
                        record[f"_diff_{part}"] = diff
                record[f"pd_n_models_{which}"] = 0 if stacked is None else stacked[1]
                record[f"pd_seeds_{which}"] = [r.seed for r in pop.runs[:n_pd] if r.has("pd_score")]
                record[f"_label_{which}"] = pop.setting.label(dataset=False)
            record.update(_setting=setting, _ref=ref)
            records.append(record)

    def header(dataset: str, _: list[Record]) -> list[str]:
        out = [
            "setting", "PIEs", f"PD of PIEs (pruned models, first {n_pd} seeds)", f"PD of non-PIEs (pruned models, first {n_pd} seeds)",
            f"PD of PIEs (dense models, first {n_pd} seeds)", f"PD of non-PIEs (dense models, first {n_pd} seeds)", "PD models (seeds)",
        ]  # fmt: skip
        paper = ["paper PD of PIEs / non-PIEs (mean ± std)", "PD of PIEs ours − paper [95%]", "PD of non-PIEs ours − paper [95%]"]
        return out + paper if reference.matches(dataset) else out

    def row(r: Record) -> list[str]:
        setting: Setting = r["_setting"]
        out = [setting.label(dataset=False), _with_floor(r["pies"], setting, stats)]
        used: list[str] = []
        for which in PD_WHICH:
            n = r[f"pd_n_models_{which}"]
            for part in ("pies", "non_pies"):
                if not n:
                    out.append("no pd_score")
                elif not r[part]:
                    out.append(f"{DASH} (0 samples)")
                else:
                    out.append(f"{fmt(r[f'pd_{part}_{which}_mean'], r[f'pd_{part}_{which}_std'])} (n={n}, {r[part]} samples)")
            if n:
                used.append(f"{which} {n} ({_seeds_text(r[f'pd_seeds_{which}'])})")
        out.append("; ".join(used) or DASH)
        if reference.matches(r["dataset"]):
            ref = r["_ref"]
            if ref is None:
                out += [DASH, DASH, DASH]
            else:
                out.append(f"{fmt(ref.pies, ref.pies_std)} / {fmt(ref.non_pies, ref.non_pies_std)}")
                for part in ("pies", "non_pies"):
                    out.append(_diff_text(r.get(f"_diff_{part}"), r.get(f"pd_{part}_pruned_mean"), getattr(ref, part)))
        return out

    def notes(dataset: str, mine: list[Record]) -> list[str]:
        out = [
            f"PD averaged over the first {n_pd} seeds of each population (sorted by seed; --pd-models), as the paper "
            f"averages PD over {reference.PD_MODELS_PER_CELL} models; PIEs from the whole populations (Table 1)."
        ]
        short = {
            f"{r[f'_label_{which}']} has {r[f'pd_n_models_{which}']}"
            for r in mine for which in PD_WHICH if 0 < r[f"pd_n_models_{which}"] < n_pd
        }  # fmt: skip
        if short:
            out.append(f"fewer than {n_pd} models with pd_score: {'; '.join(sorted(short))}")
        if not reference.matches(dataset):
            out.append(_no_paper(dataset))
        else:
            out.append("paper: Table 6 (PD of the pruned models, 5 per cell), every cell it prints (no ΔGMP column); ours − paper "
                       "with the interval of a bootstrap over our PD models")  # fmt: skip
        if any(not any(run.has("pd_score") for run in pop.runs) for pop in study.of(dataset).values()):
            out.append("'no pd_score': those runs were trained without the callbacks.metrics.PredictionDepth callback")
        return out

    columns = ["dataset", "method", "pruning", "sparsity", "pies", "non_pies"]
    for which in PD_WHICH:
        columns += [f"pd_pies_{which}_mean", f"pd_pies_{which}_std", f"pd_non_pies_{which}_mean",
                    f"pd_non_pies_{which}_std", f"pd_n_models_{which}", f"pd_seeds_{which}"]  # fmt: skip
    for part in ("pies", "non_pies"):
        columns += [f"paper_pd_{part}", f"paper_pd_{part}_std", f"pd_{part}_minus_paper", f"pd_{part}_minus_paper_low",
                    f"pd_{part}_minus_paper_high"]  # fmt: skip
    return _render(
        "table6",
        f"Table 6 — prediction depth of PIEs vs non-PIEs (PD over the first {n_pd} seeds per cell)",
        (
            f"per test sample, pd_score (callbacks.metrics.PredictionDepth) averaged over the first {n_pd} seeds of the "
            "pruned population and of its dense population (n = models used); mean ± std (ddof=0) over the PIEs and over "
            "the non-PIEs of that setting (the authors' code reports the pruned models' PD)."
        ),
        columns,
        records,
        header=header,
        row=row,
        notes=notes,
        datasets=study.datasets,
    )


# ---------------------------------------------------------------------------------------------
# PIEs shared / per class, populations
# ---------------------------------------------------------------------------------------------
def pies_shared(shared: list[SharedPies], stats: StudyStats | None = None) -> Table:
    """PIEs of two methods at the same (dataset, schedule, sparsity): shared vs unique to each."""
    records: list[Record] = []
    for pair in shared:
        a, b = pair.a.setting, pair.b.setting
        n_shared, only_a, only_b = pair.overlap.counts
        union = n_shared + only_a + only_b
        records.append(
            {"dataset": pair.dataset, "pruning": a.pruning, "sparsity": a.sparsity, "method_a": a.method,
             "method_b": b.method, "pies_a": pair.a.count, "pies_b": pair.b.count, "shared": n_shared,
             "only_a": only_a, "only_b": only_b, "jaccard": n_shared / union if union else float("nan"),
             "n_models_a": f"{pair.a.n_dense}/{pair.a.n_pruned}", "n_models_b": f"{pair.b.n_dense}/{pair.b.n_pruned}",
             "_a": a, "_b": b, "_union": union}
        )  # fmt: skip

    def row(r: Record) -> list[str]:
        a, b = r["_a"], r["_b"]
        return [
            pruning_name(a.pruning), f"{a.percent}%", f"{method_name(a.method)} ∩ {method_name(b.method)}",
            f"{_with_floor(r['pies_a'], a, stats)} (n={r['n_models_a']})",
            f"{_with_floor(r['pies_b'], b, stats)} (n={r['n_models_b']})",
            str(r["shared"]), str(r["only_a"]), str(r["only_b"]), DASH if not r["_union"] else f"{r['jaccard']:.2f}",
        ]  # fmt: skip

    return _render(
        "pies_shared",
        "PIEs shared between methods at the same sparsity",
        (
            "for two methods pruned with the same schedule to the same sparsity, shared = PIE under both "
            "(A ∩ B), only A = A ∖ B, only B = B ∖ A, Jaccard = shared / union; n = dense/pruned models."
        ),
        ["dataset", "pruning", "sparsity", "method_a", "method_b", "pies_a", "pies_b", "shared",
         "only_a", "only_b", "jaccard", "n_models_a", "n_models_b"],  # fmt: skip
        records,
        header=lambda dataset, _: ["schedule", "sparsity", "methods A ∩ B", "PIEs A", "PIEs B", "shared", "only A", "only B", "Jaccard"],
        row=row,
    )


def pies_per_class(pies: dict[Setting, SettingPies]) -> Table:
    """Per-class PIE counts (by true label) for every pruned setting, split into shared / unique."""
    shared_of = shared_with_other_methods(pies)
    records: list[Record] = []
    for setting in sorted(pies, key=_setting_key):
        result = pies[setting]
        shared = shared_of[setting]
        total = result.per_class
        shared_c = None if shared is None else per_class_counts(shared, result.labels, result.num_classes)
        for c in range(result.num_classes):
            records.append(
                {**_key(setting), "class": c, "pies": int(total[c]),
                 "shared": None if shared_c is None else int(shared_c[c]),
                 "unique": None if shared_c is None else int(total[c] - shared_c[c]),
                 "_setting": setting, "_result": result}
            )  # fmt: skip

    def rows(dataset: str, mine: list[Record]) -> list[list[str]]:
        """One row per setting, one cell per class record."""
        by_setting: dict[Setting, list[Record]] = {}
        for r in mine:
            by_setting.setdefault(r["_setting"], []).append(r)
        out = []
        for setting, members in by_setting.items():
            result: SettingPies = members[0]["_result"]
            cells = [f"{r['pies']}" + ("" if r["shared"] is None else f" ({r['shared']} shared)") for r in members]
            out.append([setting.label(dataset=False), f"{result.n_dense}/{result.n_pruned}", *cells, str(result.count)])
        return out

    return _render(
        "pies_per_class",
        "PIEs per class",
        (
            "PIEs counted by their true label; '(k shared)' = also a PIE of another method pruned with the same "
            "schedule to the same sparsity; n = dense/pruned models."
        ),
        ["dataset", "method", "pruning", "sparsity", "class", "pies", "shared", "unique"],
        records,
        header=lambda dataset, mine: ["setting", "n", *[f"class {c}" for c in range(mine[0]["_result"].num_classes)], "total"],
        rows=rows,
    )


def populations(study: Study, *, show: Any = str) -> Table:
    """What each population aggregates."""
    records: list[Record] = []
    for dataset in study.datasets:
        for setting in sorted(study.of(dataset), key=_setting_key):
            pop = study.populations[setting]
            achieved = [r.summary.get("achieved_sparsity") for r in pop.runs]
            achieved_f = [float(a) for a in achieved if isinstance(a, (int, float))]
            statuses = Counter(r.status or "no status" for r in pop.runs)
            modes = sorted({str(r.summary["oneshot_mode"]) for r in pop.runs if r.summary.get("oneshot_mode")})
            records.append(
                {**_key(setting), "n_models": pop.n, "seeds": ["?" if s is None else s for s in pop.seeds],
                 "status": ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
                 "oneshot_mode": "/".join(modes), "epochs": "/".join(sorted({str(r.summary.get("epochs")) for r in pop.runs})),
                 "backbone": "/".join(sorted({str(r.summary.get("backbone")) for r in pop.runs})),
                 "achieved_sparsity_mean": float(np.mean(achieved_f)) if achieved_f else None,
                 "test_samples": len(pop.index), "run_dirs": [show(r.path) for r in pop.runs], "_setting": setting}
            )  # fmt: skip

    def row(r: Record) -> list[str]:
        folders, achieved = r["run_dirs"], r["achieved_sparsity_mean"]
        return [
            r["_setting"].label(dataset=False) + (f" ({r['oneshot_mode']})" if r["oneshot_mode"] else ""),
            str(r["n_models"]), _seeds_text(r["seeds"]), r["status"], r["epochs"], r["backbone"],
            DASH if achieved is None else f"{achieved:.3f}", str(r["test_samples"]),
            folders[0] + (f" … (+{len(folders) - 1})" if len(folders) > 1 else ""),
        ]  # fmt: skip

    return _render(
        "populations",
        "Populations",
        (
            "runs grouped by (dataset, method, pruning schedule, target sparsity) from run.json; a run without pruning or "
            "with target 0 is dense; status = run.json status counts (only 'complete' runs are read without --allow-incomplete)."
        ),
        ["dataset", "method", "pruning", "sparsity", "n_models", "seeds", "status", "oneshot_mode", "epochs",
         "backbone", "achieved_sparsity_mean", "test_samples", "run_dirs"],  # fmt: skip
        records,
        header=lambda dataset, _: ["setting", "n", "seeds", "status", "epochs", "backbone", "achieved sparsity", "test samples", "run folders"],
        row=row,
        datasets=study.datasets,
    )


def _setting_key(setting: Setting) -> tuple[Any, ...]:
    return (setting.dataset, method_key(setting.method), not setting.is_dense, _pruning_key(setting.pruning), setting.sparsity)


def all_tables(
    study: Study,
    pies: dict[Setting, SettingPies],
    shared: list[SharedPies],
    stats: StudyStats | None = None,
    pairs: dict[Setting, CellPairs] | None = None,
    *,
    show: Any = str,
) -> list[Table]:
    """Every table of the report, in report order (``pies_uncertainty`` with ``stats``, ``oneshot_pairs`` with children)."""
    tables = [populations(study, show=show), table1(study, pies, stats)]
    if stats is not None:
        tables.append(pies_uncertainty(study, stats))
    if pairs:
        tables.append(oneshot_pairs(pairs, show=show))
    tables += [table4_5(study, stats), table6(study, pies, stats), pies_shared(shared, stats), pies_per_class(pies)]
    return tables


__all__ = [
    "Section",
    "Table",
    "all_tables",
    "fmt",
    "model_mean_std",
    "oneshot_pairs",
    "pies_per_class",
    "pies_shared",
    "pies_uncertainty",
    "populations",
    "sample_mean_std",
    "table1",
    "table4_5",
    "table6",
]
