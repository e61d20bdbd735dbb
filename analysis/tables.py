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
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import reference
from analysis.pairs import CellPairs
from analysis.pies import SettingPies, SharedPies
from analysis.runs import Population, Setting, Study
from analysis.uncertainty import StudyStats
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
# Table 1
# ---------------------------------------------------------------------------------------------
def _pie_cell(result: SettingPies, stats: StudyStats | None) -> str:
    cell = stats.cells.get(result.setting) if stats is not None else None
    if cell is None:
        return f"{result.count} (n={result.n_dense} dense / {result.n_pruned} pruned)"
    text = f"{result.count} [{cell.pies.low:.0f}, {cell.pies.high:.0f}] (n={result.n_dense} dense / {result.n_pruned} pruned)"
    if cell.matched is not None:
        text += f" · at {cell.matched.size}/{cell.matched.size}: {cell.matched.mean:.1f}"
    if cell.floor is not None:
        text += f" · floor {cell.floor.fmt()}"
    return text


def _floor_cell(setting: Setting, pop: Population | None, stats: StudyStats | None) -> str:
    floor = stats.floors.get(setting) if stats is not None else None
    if floor is not None:
        return f"floor {floor.fmt()} ({floor.half} vs {floor.half} models)"
    if pop is not None and stats is not None:
        return f"{DASH} (noise floor needs ≥ 4 dense models)"
    return DASH


def table1(study: Study, pies: dict[Setting, SettingPies], stats: StudyStats | None = None) -> Table:
    """Test accuracy mean ± std (over models), its change vs dense with a 95% interval, and the PIE
    count with its interval, the equal-size count and the noise floor, per sparsity and (method, schedule)."""
    sections: list[Section] = []
    rows_csv: list[dict[str, Any]] = []
    for dataset in study.datasets:
        pops = study.of(dataset)
        cols = _columns(pops)
        sparsities = sorted({s.sparsity for s in pops if not s.is_dense})
        header = ["sparsity"]
        for m, p in cols:
            header += [f"{schedule_label(m, p)} acc (%)", f"{schedule_label(m, p)} PIEs"]
        rows: list[list[str]] = []
        for sparsity in [0.0, *sparsities]:
            row = [f"{round(sparsity * 100):d}%"]
            for m, p in cols:
                if sparsity == 0.0:
                    setting = Setting(dataset, m, DENSE, 0.0)
                elif p is None:
                    row += ["", ""]
                    continue
                else:
                    setting = Setting(dataset, m, p, sparsity)
                pop = pops.get(setting)
                ref = reference.table1(dataset, m, setting.pruning, setting.percent)
                cell = stats.cells.get(setting) if stats is not None else None
                if pop is None:
                    acc_cell = "(no runs)"
                else:
                    mean, std = model_mean_std(pop.accuracies())
                    acc_cell = f"{fmt(mean, std)} (n={pop.n})"
                    if cell is not None:
                        acc_cell += f" · Δ {cell.acc_diff.fmt(signed=True)}"
                if ref is not None:
                    acc_cell += f" · paper {ref.acc_mean:g} ± {ref.acc_std:g}"
                if setting.is_dense:
                    pie_cell = _floor_cell(setting, pop, stats)
                else:
                    result = pies.get(setting)
                    if result is None:
                        pie_cell = "(no dense runs)" if pop is not None else ""
                    else:
                        pie_cell = _pie_cell(result, stats)
                    if ref is not None and ref.pies is not None:
                        pie_cell += f" · paper {ref.pies}"
                row += [acc_cell, pie_cell]
            rows.append(row)
        notes = []
        if stats is not None:
            notes.append(
                "Δ = mean accuracy pruned − dense in points, [95% bootstrap interval] over models (each population "
                f"resampled with replacement, {stats.n_boot} resamples); PIEs [95% bootstrap interval] over models "
                "(a resample repeats some models, so its modes are noisier and the interval usually lies above the count); "
                "'at k/k' = PIEs with both populations subsampled to the smaller size k (mean over draws), when they differ."
            )
            notes.append(
                f"floor = noise floor of the method's dense population: PIEs between two disjoint random halves of it, "
                f"mean (min–max) over {stats.n_splits} splits (dense row: half size). Measured with half as many models "
                "as the full population, it is larger than the floor of the full size, so a PIE count means something "
                "only well above it (see tables/pies_uncertainty for the like-for-like comparison)."
            )
        if not reference.matches(dataset):
            notes.append(f"no paper numbers: the paper reports {reference.DATASET} only, this is {dataset}")
        sections.append(Section(dataset, header, rows, notes))
        for setting, pop in pops.items():
            mean, std = model_mean_std(pop.accuracies())
            result = pies.get(setting)
            cell = stats.cells.get(setting) if stats is not None else None
            floor = None if stats is None else stats.floors.get(setting.dense)
            ref = reference.table1(dataset, setting.method, setting.pruning, setting.percent)
            rows_csv.append(
                {
                    "dataset": dataset, "method": setting.method, "pruning": setting.pruning,
                    "sparsity": setting.sparsity, "n_models": pop.n, "seeds": [s for s in pop.seeds],
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
                }
            )  # fmt: skip
    return Table(
        name="table1",
        title="Table 1 — test accuracy and number of PIEs",
        how=(
            "accuracy = per-sample predictions == labels over the whole test set, mean ± sample std (ddof=1) "
            "over the models of a population (n); PIEs = test images whose modal prediction over the pruned "
            "models differs from the modal prediction over the dense models of the same method "
            "(ties: see the report header); the dense row is each method's dense population."
        ),
        sections=sections,
        csv_columns=[
            "dataset", "method", "pruning", "sparsity", "n_models", "seeds", "acc_mean", "acc_std",
            "acc_diff", "acc_diff_low", "acc_diff_high", "n_dense", "pies", "pies_low", "pies_high",
            "pies_equal_n", "equal_n", "noise_floor_mean", "noise_floor_min", "noise_floor_max", "noise_floor_half",
            "paper_acc_mean", "paper_acc_std", "paper_pies",
        ],  # fmt: skip
        csv_rows=rows_csv,
    )


def pies_uncertainty(study: Study, stats: StudyStats) -> Table:
    """Per pruned cell: is its PIE count more than the noise of a finite population of models?"""
    sections: dict[str, Section] = {}
    rows_csv: list[dict[str, Any]] = []
    for setting in sorted(stats.cells, key=_setting_key):
        cell = stats.cells[setting]
        section = sections.setdefault(
            setting.dataset,
            Section(
                setting.dataset,
                ["setting", "n dense / pruned", "PIEs [95% CI]", "at equal size", "h vs h: pruned", "h vs h: noise floor",
                 "pruned / floor", "verdict"],  # fmt: skip
                [],
            ),
        )
        if cell.floor is None or cell.half is None:
            half = floor = ratio = DASH
            verdict = "no floor (dense < 4 models)"
        else:
            half = f"{cell.half.fmt()} (h={cell.half.size})"
            floor = cell.floor.fmt()
            r = cell.floor_ratio
            ratio = DASH if r is None or not math.isfinite(r) else f"×{r:.1f}"
            if r is not None and r == float("inf"):
                ratio = "∞ (floor 0)"
            verdict = "above the floor" if cell.above_floor else "within the floor's range: noise"
        matched = DASH if cell.matched is None else f"{cell.matched.fmt()} at {cell.matched.size}/{cell.matched.size}"
        section.rows.append(
            [setting.label(dataset=False), f"{cell.n_dense} / {cell.n_pruned}", cell.pies.fmt(0), matched, half, floor, ratio, verdict]
        )
        rows_csv.append(
            {
                "dataset": setting.dataset, "method": setting.method, "pruning": setting.pruning, "sparsity": setting.sparsity,
                "n_dense": cell.n_dense, "n_pruned": cell.n_pruned, "pies": int(cell.pies.estimate),
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
            }
        )  # fmt: skip
    return Table(
        name="pies_uncertainty",
        title="PIE counts against the noise floor",
        how=(
            f"PIEs [95% bootstrap interval over models, {stats.n_boot} resamples]; 'at equal size' = both populations "
            f"subsampled to the smaller one (mean (min–max) over {stats.n_splits} draws); 'h vs h' = PIEs of h pruned models "
            f"against one random half (h models) of the dense population, and the noise floor = that half against the other "
            f"half, mean (min–max) over the same {stats.n_splits} splits — the like-for-like comparison. 'above the floor' = "
            "the pruned mean exceeds the floor's maximum; a PIE count means something only well above the floor."
        ),
        sections=list(sections.values()),
        csv_columns=[
            "dataset", "method", "pruning", "sparsity", "n_dense", "n_pruned", "pies", "pies_low", "pies_high",
            "pies_equal_n", "equal_n", "half", "pies_half_mean", "pies_half_min", "pies_half_max",
            "noise_floor_mean", "noise_floor_min", "noise_floor_max", "above_floor",
        ],  # fmt: skip
        csv_rows=rows_csv,
    )


def oneshot_pairs(pairs: dict[Setting, CellPairs], *, show: Any = str) -> Table:
    """One-Shot children vs their dense parents: the paired accuracy change child − parent per cell."""
    sections: dict[str, Section] = {}
    rows_csv: list[dict[str, Any]] = []
    for setting in sorted(pairs, key=_setting_key):
        cell = pairs[setting]
        section = sections.setdefault(
            setting.dataset,
            Section(setting.dataset, ["setting", "pairs", "child acc (%)", "parent acc (%)", "Δ child − parent [95% CI]", "unpaired children"], []),
        )
        if cell.pairs:
            child = np.array([c.accuracy for c, _ in cell.pairs])
            parent = np.array([p.accuracy for _, p in cell.pairs])
            assert cell.delta is not None
            cells = [fmt(*model_mean_std(child)), fmt(*model_mean_std(parent)), cell.delta.fmt(signed=True)]
        else:
            child = parent = np.zeros(0)
            cells = [DASH, DASH, DASH]
        section.rows.append(
            [setting.label(dataset=False), f"{len(cell.pairs)} of {len(cell.children)}", *cells,
             str(len(cell.unpaired)) if cell.unpaired else "0"]  # fmt: skip
        )
        rows_csv.append(
            {
                "dataset": setting.dataset, "method": setting.method, "pruning": setting.pruning, "sparsity": setting.sparsity,
                "n_pairs": len(cell.pairs), "n_children": len(cell.children),
                "seeds": [c.seed for c, _ in cell.pairs],
                "deltas": [f"{d:.4f}" for d in cell.deltas],
                "child_acc_mean": float(child.mean()) if len(child) else None,
                "parent_acc_mean": float(parent.mean()) if len(parent) else None,
                "delta_mean": None if cell.delta is None else cell.delta.estimate,
                "delta_low": None if cell.delta is None else cell.delta.low,
                "delta_high": None if cell.delta is None else cell.delta.high,
                "parents": [show(p.path) for _, p in cell.pairs],
                "unpaired": [show(c.path) for c, _ in cell.unpaired],
            }
        )  # fmt: skip
    moved = sum(c.moved for c in pairs.values())
    if moved:
        for section in sections.values():
            section.notes.append(
                f"{moved} pair(s) found by the parent's run id and seed: the parent folder the child recorded is not loaded "
                "(run folders copied or downloaded elsewhere)"
            )
    return Table(
        name="oneshot_pairs",
        title="One-Shot children vs their dense parents",
        how=(
            "each One-Shot child (run.json parent_run) paired with its dense parent among the loaded runs; Δ = child − "
            "parent test accuracy in points (both from their per-sample files), mean over the pairs with a 95% bootstrap "
            "interval over pairs; child and parent accuracy mean ± std over the pairs."
        ),
        sections=list(sections.values()),
        csv_columns=["dataset", "method", "pruning", "sparsity", "n_pairs", "n_children", "seeds", "deltas",
                     "child_acc_mean", "parent_acc_mean", "delta_mean", "delta_low", "delta_high", "parents", "unpaired"],  # fmt: skip
        csv_rows=rows_csv,
    )


# ---------------------------------------------------------------------------------------------
# Tables 4/5
# ---------------------------------------------------------------------------------------------
Q_ARRAYS = (("q_score", "Q"), ("z_score", "Z"), ("l1_norm", "‖ĥ‖₁"))


def table4_5(study: Study) -> Table:
    """Mean ± std over test samples of the per-sample population mean of Q, Z and ‖ĥ‖₁."""
    sections: list[Section] = []
    rows_csv: list[dict[str, Any]] = []
    for dataset in study.datasets:
        pops = study.of(dataset)
        header = ["setting", *[f"{label} (mean ± std)" for _, label in Q_ARRAYS]]
        show_ref = reference.matches(dataset)
        if show_ref:
            header.append("paper Q / Z / ‖ĥ‖₁")
        rows = []
        for setting in sorted(pops, key=_setting_key):
            pop = pops[setting]
            row = [setting.label(dataset=False)]
            record: dict[str, Any] = {
                "dataset": dataset, "method": setting.method, "pruning": setting.pruning,
                "sparsity": setting.sparsity, "n_samples": len(pop.index),
            }  # fmt: skip
            for name, label in Q_ARRAYS:
                stacked = pop.stack(name)
                if stacked is None:
                    row.append(f"no {name}")
                    record.update({f"{name}_mean": None, f"{name}_std": None, f"{name}_n_models": 0})
                    continue
                values, n = stacked
                mean, std = sample_mean_std(values.mean(axis=0))
                row.append(f"{fmt(mean, std)} (n={n})")
                record.update({f"{name}_mean": mean, f"{name}_std": std, f"{name}_n_models": n})
            ref = reference.table4_5(dataset, setting.method, setting.pruning, setting.percent)
            if show_ref:
                row.append(DASH if ref is None else f"{ref.q:g} / {ref.z:g} / {ref.l1:g}")
            record.update(
                {"paper_q": None if ref is None else ref.q, "paper_z": None if ref is None else ref.z,
                 "paper_l1": None if ref is None else ref.l1}
            )  # fmt: skip
            rows.append(row)
            rows_csv.append(record)
        notes = [] if show_ref else [f"no paper numbers: the paper reports {reference.DATASET} only, this is {dataset}"]
        sections.append(Section(dataset, header, rows, notes))
    columns = ["dataset", "method", "pruning", "sparsity", "n_samples"]
    for name, _ in Q_ARRAYS:
        columns += [f"{name}_mean", f"{name}_std", f"{name}_n_models"]
    columns += ["paper_q", "paper_z", "paper_l1"]
    return Table(
        name="table4_5",
        title="Tables 4/5 — Q-Score, Z-score and ‖ĥ‖₁",
        how=(
            "per test sample, the value (callbacks.metrics.QScore) averaged over the n models of the population; "
            "then mean ± std (ddof=0) of that average over the test samples, as the authors' code does."
        ),
        sections=sections,
        csv_columns=columns,
        csv_rows=rows_csv,
    )


# ---------------------------------------------------------------------------------------------
# Table 6
# ---------------------------------------------------------------------------------------------
def _with_floor(count: int, setting: Setting, stats: StudyStats | None) -> str:
    """``101 · floor 102.4 (96–128)``: a PIE count with its dense population's noise floor beside it."""
    floor = None if stats is None else stats.floors.get(setting.dense)
    return str(count) if floor is None else f"{count} · floor {floor.fmt()}"


def table6(study: Study, pies: dict[Setting, SettingPies], stats: StudyStats | None = None) -> Table:
    """Prediction depth of PIEs vs non-PIEs, from the pruned models and from the dense models.

    PD is averaged over exactly the first ``study.pd_models`` seeds of each population (the paper
    averages PD over 5 models; fewer when a population has fewer); PIEs come from the whole populations.
    """
    n_pd = study.pd_models
    sections: list[Section] = []
    rows_csv: list[dict[str, Any]] = []
    for dataset in study.datasets:
        pops = study.of(dataset)
        show_ref = reference.matches(dataset)
        header = [
            "setting", "PIEs", f"PD of PIEs (pruned models, first {n_pd} seeds)", f"PD of non-PIEs (pruned models, first {n_pd} seeds)",
            f"PD of PIEs (dense models, first {n_pd} seeds)", f"PD of non-PIEs (dense models, first {n_pd} seeds)", "PD models (seeds)",
        ]  # fmt: skip
        if show_ref:
            header.append("paper PIEs vs non-PIEs")
        rows = []
        short: list[str] = []
        for setting in sorted((s for s in pies if s.dataset == dataset), key=_setting_key):
            result = pies[setting]
            row = [setting.label(dataset=False), _with_floor(result.count, setting, stats)]
            record: dict[str, Any] = {
                "dataset": dataset, "method": setting.method, "pruning": setting.pruning,
                "sparsity": setting.sparsity, "pies": result.count, "non_pies": int((~result.flags).sum()),
            }  # fmt: skip
            used: list[str] = []
            for which, pop in (("pruned", pops[setting]), ("dense", pops[setting.dense])):
                stacked = pop.stack("pd_score", first=n_pd)
                seeds = [r.seed for r in pop.runs[:n_pd] if r.has("pd_score")]
                for part, mask in (("pies", result.flags), ("non_pies", ~result.flags)):
                    if stacked is None:
                        row.append("no pd_score")
                        record.update({f"pd_{part}_{which}_mean": None, f"pd_{part}_{which}_std": None})
                        continue
                    values, n = stacked
                    mean, std = sample_mean_std(values.mean(axis=0)[mask])
                    row.append(f"{fmt(mean, std)} (n={n}, {int(mask.sum())} samples)" if mask.any() else f"{DASH} (0 samples)")
                    record.update({f"pd_{part}_{which}_mean": mean, f"pd_{part}_{which}_std": std})
                record[f"pd_n_models_{which}"] = 0 if stacked is None else stacked[1]
                record[f"pd_seeds_{which}"] = seeds
                if stacked is not None:
                    used.append(f"{which} {stacked[1]} ({', '.join('?' if x is None else str(x) for x in seeds)})")
                    if stacked[1] < n_pd:
                        short.append(f"{pop.setting.label(dataset=False)} has {stacked[1]}")
            row.append("; ".join(used) or DASH)
            ref = reference.table6(dataset, setting.method, setting.pruning, setting.percent)
            if show_ref:
                row.append(DASH if ref is None else f"{ref.pies} vs {ref.non_pies} ({ref.note})")
            rows.append(row)
            rows_csv.append(record)
        notes = [
            f"PD averaged over the first {n_pd} seeds of each population (sorted by seed; --pd-models), as the paper "
            f"averages PD over {reference.PD_MODELS_PER_CELL} models; PIEs from the whole populations (Table 1)."
        ]
        if short:
            notes.append(f"fewer than {n_pd} models with pd_score: {'; '.join(sorted(set(short)))}")
        if not show_ref:
            notes.append(f"no paper numbers: the paper reports {reference.DATASET} only, this is {dataset}")
        if any(pops[s].stack("pd_score") is None for s in pops):
            notes.append(
                "'no pd_score': those runs were trained without the callbacks.metrics.PredictionDepth callback"
            )
        sections.append(Section(dataset, header, rows, notes))
    columns = ["dataset", "method", "pruning", "sparsity", "pies", "non_pies"]
    for which in ("pruned", "dense"):
        columns += [f"pd_pies_{which}_mean", f"pd_pies_{which}_std", f"pd_non_pies_{which}_mean",
                    f"pd_non_pies_{which}_std", f"pd_n_models_{which}", f"pd_seeds_{which}"]  # fmt: skip
    return Table(
        name="table6",
        title=f"Table 6 — prediction depth of PIEs vs non-PIEs (PD over the first {n_pd} seeds per cell)",
        how=(
            f"per test sample, pd_score (callbacks.metrics.PredictionDepth) averaged over the first {n_pd} seeds of the "
            "pruned population and of its dense population (n = models used); mean ± std (ddof=0) over the PIEs and over "
            "the non-PIEs of that setting (the authors' code reports the pruned models' PD)."
        ),
        sections=sections,
        csv_columns=columns,
        csv_rows=rows_csv,
    )


# ---------------------------------------------------------------------------------------------
# PIEs shared / per class, populations
# ---------------------------------------------------------------------------------------------
def pies_shared(shared: list[SharedPies], stats: StudyStats | None = None) -> Table:
    """PIEs of two methods at the same (dataset, schedule, sparsity): shared vs unique to each."""
    sections: dict[str, Section] = {}
    rows_csv = []
    for pair in shared:
        a, b = pair.a.setting, pair.b.setting
        n_shared, only_a, only_b = pair.overlap.counts
        union = n_shared + only_a + only_b
        jaccard = n_shared / union if union else float("nan")
        section = sections.setdefault(
            pair.dataset,
            Section(pair.dataset, ["schedule", "sparsity", "methods A ∩ B", "PIEs A", "PIEs B", "shared", "only A", "only B", "Jaccard"], []),
        )
        section.rows.append(
            [
                pruning_name(a.pruning), f"{a.percent}%", f"{method_name(a.method)} ∩ {method_name(b.method)}",
                f"{_with_floor(pair.a.count, a, stats)} (n={pair.a.n_dense}/{pair.a.n_pruned})",
                f"{_with_floor(pair.b.count, b, stats)} (n={pair.b.n_dense}/{pair.b.n_pruned})",
                str(n_shared), str(only_a), str(only_b), DASH if not union else f"{jaccard:.2f}",
            ]
        )  # fmt: skip
        rows_csv.append(
            {"dataset": pair.dataset, "pruning": a.pruning, "sparsity": a.sparsity, "method_a": a.method,
             "method_b": b.method, "pies_a": pair.a.count, "pies_b": pair.b.count, "shared": n_shared,
             "only_a": only_a, "only_b": only_b, "jaccard": jaccard,
             "n_models_a": f"{pair.a.n_dense}/{pair.a.n_pruned}", "n_models_b": f"{pair.b.n_dense}/{pair.b.n_pruned}"}
        )  # fmt: skip
    return Table(
        name="pies_shared",
        title="PIEs shared between methods at the same sparsity",
        how=(
            "for two methods pruned with the same schedule to the same sparsity, shared = PIE under both "
            "(A ∩ B), only A = A ∖ B, only B = B ∖ A, Jaccard = shared / union; n = dense/pruned models."
        ),
        sections=list(sections.values()),
        csv_columns=["dataset", "pruning", "sparsity", "method_a", "method_b", "pies_a", "pies_b", "shared",
                     "only_a", "only_b", "jaccard", "n_models_a", "n_models_b"],  # fmt: skip
        csv_rows=rows_csv,
    )


def shared_with_others(pies: dict[Setting, SettingPies], setting: Setting) -> np.ndarray:
    """bool [N]: PIEs of ``setting`` that are also PIEs of another method at the same dataset/schedule/sparsity."""
    others = [r.flags for s, r in pies.items() if _same_cell(s, setting) and s.method != setting.method]
    mine = pies[setting].flags
    if not others:
        return np.zeros_like(mine)
    return mine & np.logical_or.reduce(others)


def pies_per_class(pies: dict[Setting, SettingPies]) -> Table:
    """Per-class PIE counts (by true label) for every pruned setting, split into shared / unique."""
    sections: dict[str, Section] = {}
    rows_csv = []
    for setting in sorted(pies, key=_setting_key):
        result = pies[setting]
        shared = shared_with_others(pies, setting)
        has_other = any(_same_cell(s, setting) and s.method != setting.method for s in pies)
        total = result.per_class
        shared_c = np.bincount(result.labels[shared], minlength=result.num_classes)[: result.num_classes]
        classes = list(range(result.num_classes))
        section = sections.setdefault(
            setting.dataset,
            Section(setting.dataset, ["setting", "n", *[f"class {c}" for c in classes], "total"], []),
        )
        cells = [f"{int(t)}" + (f" ({int(s)} shared)" if has_other else "") for t, s in zip(total, shared_c)]
        section.rows.append([setting.label(dataset=False), f"{result.n_dense}/{result.n_pruned}", *cells, str(result.count)])
        for c in classes:
            rows_csv.append(
                {"dataset": setting.dataset, "method": setting.method, "pruning": setting.pruning,
                 "sparsity": setting.sparsity, "class": c, "pies": int(total[c]),
                 "shared": int(shared_c[c]) if has_other else None,
                 "unique": int(total[c] - shared_c[c]) if has_other else None}
            )  # fmt: skip
    return Table(
        name="pies_per_class",
        title="PIEs per class",
        how=(
            "PIEs counted by their true label; '(k shared)' = also a PIE of another method pruned with the same "
            "schedule to the same sparsity; n = dense/pruned models."
        ),
        sections=list(sections.values()),
        csv_columns=["dataset", "method", "pruning", "sparsity", "class", "pies", "shared", "unique"],
        csv_rows=rows_csv,
    )


def populations(study: Study, *, show: Any = str) -> Table:
    """What each population aggregates."""
    sections: list[Section] = []
    rows_csv = []
    for dataset in study.datasets:
        rows = []
        for setting in sorted(study.of(dataset), key=_setting_key):
            pop = study.populations[setting]
            achieved = [r.summary.get("achieved_sparsity") for r in pop.runs]
            achieved_f = [float(a) for a in achieved if isinstance(a, (int, float))]
            epochs = sorted({str(r.summary.get("epochs")) for r in pop.runs})
            backbones = sorted({str(r.summary.get("backbone")) for r in pop.runs})
            folders = [show(r.path) for r in pop.runs]
            statuses = Counter(r.status or "no status" for r in pop.runs)
            status = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
            modes = sorted({str(r.summary["oneshot_mode"]) for r in pop.runs if r.summary.get("oneshot_mode")})
            what = setting.label(dataset=False) + (f" ({'/'.join(modes)})" if modes else "")
            rows.append(
                [what, str(pop.n), ", ".join("?" if s is None else str(s) for s in pop.seeds), status,
                 "/".join(epochs), "/".join(backbones),
                 DASH if not achieved_f else f"{np.mean(achieved_f):.3f}", str(len(pop.index)),
                 folders[0] + (f" … (+{len(folders) - 1})" if len(folders) > 1 else "")]
            )  # fmt: skip
            rows_csv.append(
                {"dataset": dataset, "method": setting.method, "pruning": setting.pruning, "sparsity": setting.sparsity,
                 "n_models": pop.n, "seeds": ["?" if s is None else s for s in pop.seeds], "status": status,
                 "oneshot_mode": "/".join(modes), "epochs": "/".join(epochs),
                 "backbone": "/".join(backbones), "achieved_sparsity_mean": float(np.mean(achieved_f)) if achieved_f else None,
                 "test_samples": len(pop.index), "run_dirs": folders}
            )  # fmt: skip
        sections.append(
            Section(dataset, ["setting", "n", "seeds", "status", "epochs", "backbone", "achieved sparsity", "test samples", "run folders"], rows)
        )
    return Table(
        name="populations",
        title="Populations",
        how=(
            "runs grouped by (dataset, method, pruning schedule, target sparsity) from run.json; a run without pruning or "
            "with target 0 is dense; status = run.json status counts (only 'complete' runs are read without --allow-incomplete)."
        ),
        sections=sections,
        csv_columns=["dataset", "method", "pruning", "sparsity", "n_models", "seeds", "status", "oneshot_mode", "epochs",
                     "backbone", "achieved_sparsity_mean", "test_samples", "run_dirs"],  # fmt: skip
        csv_rows=rows_csv,
    )


def _same_cell(a: Setting, b: Setting) -> bool:
    """Same dataset, pruning schedule and sparsity (methods may differ)."""
    return (a.dataset, a.pruning, a.sparsity) == (b.dataset, b.pruning, b.sparsity)


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
    tables += [table4_5(study), table6(study, pies, stats), pies_shared(shared, stats), pies_per_class(pies)]
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
