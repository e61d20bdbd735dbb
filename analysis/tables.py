"""The paper's tables from populations: Markdown + CSV under ``<out>/tables/``.

* ``table1``   — test accuracy (%) mean ± std over the models of each population, and the number of
  PIEs per (method, pruning schedule, sparsity), with the paper's Table 1 beside it on CIFAR-10.
* ``table4_5`` — mean ± std of Q-Score, Z-score and ‖ĥ‖₁ (paper Tables 4/5).
* ``table6``   — prediction depth of PIEs vs non-PIEs (paper Table 6).
* ``pies_shared``, ``pies_per_class`` — PIEs shared between two methods at the same setting vs unique,
  and the per-class PIE distribution (the numbers behind the PIE bar figures).
* ``populations`` — what was aggregated: models, seeds, epochs, backbone, achieved sparsity.

Every cell names how many models it aggregates (``n=``). Two kinds of std appear, and each table
says which: **over models** (Table 1 accuracy; sample std, ddof=1, undefined for one model) and
**over test samples** of the per-sample population mean (Tables 4/5 and 6; ddof=0, as the authors' code).
The Markdown has one section per dataset; the CSV is long-form with a ``dataset`` column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import reference
from analysis.pies import SettingPies, SharedPies, method_key
from analysis.runs import DENSE, Population, Setting, Study, method_name, pruning_name

PRUNING_ORDER = ("gmp", "delta_gmp", "oneshot")
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


def _pruning_key(pruning: str) -> tuple[int, str]:
    return (PRUNING_ORDER.index(pruning) if pruning in PRUNING_ORDER else len(PRUNING_ORDER), pruning)


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
def table1(study: Study, pies: dict[Setting, SettingPies]) -> Table:
    """Test accuracy mean ± std (over models) and PIE count per sparsity and (method, schedule)."""
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
                if pop is None:
                    acc_cell = "(no runs)"
                else:
                    mean, std = model_mean_std(pop.accuracies())
                    acc_cell = f"{fmt(mean, std)} (n={pop.n})"
                if ref is not None:
                    acc_cell += f" · paper {ref.acc_mean:g} ± {ref.acc_std:g}"
                if setting.is_dense:
                    pie_cell = DASH
                else:
                    result = pies.get(setting)
                    if result is None:
                        pie_cell = "(no dense runs)" if pop is not None else ""
                    else:
                        pie_cell = f"{result.count} (n={result.n_dense} dense / {result.n_pruned} pruned)"
                    if ref is not None and ref.pies is not None:
                        pie_cell += f" · paper {ref.pies}"
                row += [acc_cell, pie_cell]
            rows.append(row)
        notes = []
        if not reference.matches(dataset):
            notes.append(f"no paper numbers: the paper reports {reference.DATASET} only, this is {dataset}")
        sections.append(Section(dataset, header, rows, notes))
        for setting, pop in pops.items():
            mean, std = model_mean_std(pop.accuracies())
            result = pies.get(setting)
            ref = reference.table1(dataset, setting.method, setting.pruning, setting.percent)
            rows_csv.append(
                {
                    "dataset": dataset, "method": setting.method, "pruning": setting.pruning,
                    "sparsity": setting.sparsity, "n_models": pop.n, "seeds": [s for s in pop.seeds],
                    "acc_mean": mean, "acc_std": std,
                    "n_dense": None if result is None else result.n_dense,
                    "pies": None if result is None else result.count,
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
            "dataset", "method", "pruning", "sparsity", "n_models", "seeds", "acc_mean", "acc_std", "n_dense",
            "pies", "paper_acc_mean", "paper_acc_std", "paper_pies",
        ],  # fmt: skip
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
def table6(study: Study, pies: dict[Setting, SettingPies]) -> Table:
    """Prediction depth of PIEs vs non-PIEs, from the pruned models and from the dense models."""
    sections: list[Section] = []
    rows_csv: list[dict[str, Any]] = []
    for dataset in study.datasets:
        pops = study.of(dataset)
        show_ref = reference.matches(dataset)
        header = [
            "setting", "PIEs", "PD of PIEs (pruned models)", "PD of non-PIEs (pruned models)",
            "PD of PIEs (dense models)", "PD of non-PIEs (dense models)",
        ]  # fmt: skip
        if show_ref:
            header.append("paper PIEs vs non-PIEs")
        rows = []
        for setting in sorted((s for s in pies if s.dataset == dataset), key=_setting_key):
            result = pies[setting]
            row = [setting.label(dataset=False), str(result.count)]
            record: dict[str, Any] = {
                "dataset": dataset, "method": setting.method, "pruning": setting.pruning,
                "sparsity": setting.sparsity, "pies": result.count, "non_pies": int((~result.flags).sum()),
            }  # fmt: skip
            for which, pop in (("pruned", pops[setting]), ("dense", pops[setting.dense])):
                stacked = pop.stack("pd_score")
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
            ref = reference.table6(dataset, setting.method, setting.pruning, setting.percent)
            if show_ref:
                row.append(DASH if ref is None else f"{ref.pies} vs {ref.non_pies} ({ref.note})")
            rows.append(row)
            rows_csv.append(record)
        notes = [] if show_ref else [f"no paper numbers: the paper reports {reference.DATASET} only, this is {dataset}"]
        if any(pops[s].stack("pd_score") is None for s in pops):
            notes.append(
                "'no pd_score': those runs were trained without the callbacks.metrics.PredictionDepth callback"
            )
        sections.append(Section(dataset, header, rows, notes))
    columns = ["dataset", "method", "pruning", "sparsity", "pies", "non_pies"]
    for which in ("pruned", "dense"):
        columns += [f"pd_pies_{which}_mean", f"pd_pies_{which}_std", f"pd_non_pies_{which}_mean",
                    f"pd_non_pies_{which}_std", f"pd_n_models_{which}"]  # fmt: skip
    return Table(
        name="table6",
        title="Table 6 — prediction depth of PIEs vs non-PIEs",
        how=(
            "per test sample, pd_score (callbacks.metrics.PredictionDepth) averaged over the n models that have it, "
            "for the pruned population and for its dense population; mean ± std (ddof=0) over the PIEs and over the "
            "non-PIEs of that setting (the authors' code reports the pruned models' PD)."
        ),
        sections=sections,
        csv_columns=columns,
        csv_rows=rows_csv,
    )


# ---------------------------------------------------------------------------------------------
# PIEs shared / per class, populations
# ---------------------------------------------------------------------------------------------
def pies_shared(shared: list[SharedPies]) -> Table:
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
                f"{pair.a.count} (n={pair.a.n_dense}/{pair.a.n_pruned})", f"{pair.b.count} (n={pair.b.n_dense}/{pair.b.n_pruned})",
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
            rows.append(
                [setting.label(dataset=False), str(pop.n), ", ".join("?" if s is None else str(s) for s in pop.seeds),
                 "/".join(epochs), "/".join(backbones),
                 DASH if not achieved_f else f"{np.mean(achieved_f):.3f}", str(len(pop.index)),
                 folders[0] + (f" … (+{len(folders) - 1})" if len(folders) > 1 else "")]
            )  # fmt: skip
            rows_csv.append(
                {"dataset": dataset, "method": setting.method, "pruning": setting.pruning, "sparsity": setting.sparsity,
                 "n_models": pop.n, "seeds": ["?" if s is None else s for s in pop.seeds], "epochs": "/".join(epochs),
                 "backbone": "/".join(backbones), "achieved_sparsity_mean": float(np.mean(achieved_f)) if achieved_f else None,
                 "test_samples": len(pop.index), "run_dirs": folders}
            )  # fmt: skip
        sections.append(
            Section(dataset, ["setting", "n", "seeds", "epochs", "backbone", "achieved sparsity", "test samples", "run folders"], rows)
        )
    return Table(
        name="populations",
        title="Populations",
        how="runs grouped by (dataset, method, pruning schedule, target sparsity) from run.json; a run without pruning or with target 0 is dense.",
        sections=sections,
        csv_columns=["dataset", "method", "pruning", "sparsity", "n_models", "seeds", "epochs", "backbone",
                     "achieved_sparsity_mean", "test_samples", "run_dirs"],  # fmt: skip
        csv_rows=rows_csv,
    )


def _same_cell(a: Setting, b: Setting) -> bool:
    """Same dataset, pruning schedule and sparsity (methods may differ)."""
    return (a.dataset, a.pruning, a.sparsity) == (b.dataset, b.pruning, b.sparsity)


def _setting_key(setting: Setting) -> tuple[Any, ...]:
    return (setting.dataset, method_key(setting.method), not setting.is_dense, _pruning_key(setting.pruning), setting.sparsity)


def all_tables(study: Study, pies: dict[Setting, SettingPies], shared: list[SharedPies], *, show: Any = str) -> list[Table]:
    """Every table of the report, in report order."""
    return [
        populations(study, show=show),
        table1(study, pies),
        table4_5(study),
        table6(study, pies),
        pies_shared(shared),
        pies_per_class(pies),
    ]


__all__ = [
    "Section",
    "Table",
    "all_tables",
    "fmt",
    "model_mean_std",
    "pies_per_class",
    "pies_shared",
    "populations",
    "sample_mean_std",
    "table1",
    "table4_5",
    "table6",
]
