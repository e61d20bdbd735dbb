"""The tables' shared parts: :class:`Table` and its Markdown :class:`Section`, the number formats,
and the one renderer :func:`_render` every builder of :mod:`analysis.tables` goes through.

Every builder computes its numbers (and looks up the paper) once, into long-form records — one
dict per CSV row, plus ``_``-prefixed values only the Markdown needs — and :func:`_render` makes
both outputs from those records, so the Markdown and the CSV cannot disagree.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis import reference
from analysis.runs import Setting
from analysis.uncertainty import StudyStats
from common.run_folder import method_key, method_name, pruning_name
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


def pie_set_text(count: int, setting: Setting, stats: StudyStats | None) -> str:
    """``404 (all 5 vs 5) · 2 vs 2: 534.6 vs floor 414.5``: the count of a PIE set (all dense vs all
    pruned models, the paper's definition; there is no floor of that size) with, beside it, the
    like-for-like pair: ``h`` pruned vs ``h`` dense models and the noise floor ``h`` vs ``h``."""
    cell = None if stats is None else stats.cells.get(setting)
    if cell is None:
        return str(count)
    text = f"{count} (all {cell.n_dense} vs {cell.n_pruned})"
    if cell.pies is None:
        return f"{text} · no floor (too few models)"
    p = cell.pies
    return f"{text} · {p.h} vs {p.h}: {p.pruned_mean:.1f} vs floor {p.floor_mean:.1f}"


#: the note under every table that prints a PIE set's count
PIE_SET_NOTE = (
    "PIE set = all dense vs all pruned models (the paper's definition, what the table splits samples by); its count "
    "has no noise floor of its own size (that needs twice as many dense models), so beside it: h pruned vs h dense "
    "models and the floor of h vs h other dense models, the like-for-like comparison (Table 1, pies_uncertainty)."
)


def _no_paper(dataset: str) -> str:
    return f"no paper numbers: the paper reports {reference.DATASET} only, this is {dataset}"


def _setting_key(setting: Setting) -> tuple[Any, ...]:
    return (setting.dataset, method_key(setting.method), not setting.is_dense, _pruning_key(setting.pruning), setting.sparsity)
