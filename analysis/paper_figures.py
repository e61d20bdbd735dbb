"""The paper's Figures 2, 3, 4 and 7 in the paper's own layout, one PNG per dataset.

The per-cell figures of :mod:`analysis.figures` show whatever the runs hold; these put the same
numbers in the grid the paper prints, so the two can be read side by side. A panel whose cell has
no runs (or whose runs lack the array) is drawn empty with a label saying so — the layout never
changes — and a figure is drawn when at least one of its cells exists.

* ``paper_figure2_q_<dataset>.png`` — Q-Score of each test sample, dense models (x) vs 90 % models
  (y), four panels: Sup/GMP, Sup/One-Shot, SCL/GMP, SCL/One-Shot; PIEs red.
* ``paper_figure3_pd_<dataset>.png`` — the same for the PD-Score (first ``--pd-models`` seeds).
* ``paper_figure4_pies_oneshot_<dataset>.png`` — PIEs per class of Sup and SCL pruned One-Shot to 30,
  50 and 90 %; the PIEs shared by Sup and SCL in strong colour, the rest of each method's light.
* ``paper_figure7_pie_classes_<dataset>.png`` — PIEs per class, every sparsity (rows: 30, 50, 70,
  90 %) x the four columns of Figure 2, split like Figure 4: shared with the other method (same
  schedule and sparsity) strong, the rest light.

Colours, the shared/unique convention and class names: :mod:`analysis.figure_base`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.figure_base import PIE_COLOR, Figure, FigureSet, _plt, _png, method_color, shared_unique_bars
from analysis.images import class_labels
from analysis.pies import SettingPies, per_class_counts, shared_with_other_methods
from analysis.runs import Setting, Study
from common.run_folder import method_name, pruning_name

#: the four columns of the paper's Figures 2, 3 and 7: (method, pruning)
COLUMNS = (("sup", "gmp"), ("sup", "oneshot"), ("supcon", "gmp"), ("supcon", "oneshot"))
FIG4_SPARSITIES = (0.3, 0.5, 0.9)
FIG7_SPARSITIES = (0.3, 0.5, 0.7, 0.9)
Q_PANELS_AT = 0.9


def _label(method: str, pruning: str, sparsity: float | None = None) -> str:
    text = f"{method_name(method)} · {pruning_name(pruning)}"
    return text if sparsity is None else f"{text} {round(sparsity * 100)}%"


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, color="grey", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(rows: int, cols: int, width: float, height: float):
    plt = _plt()
    return plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)


def _find(pies: dict[Setting, SettingPies], dataset: str, method: str, pruning: str, sparsity: float) -> Setting | None:
    return next((s for s in pies if (s.dataset, s.method, s.pruning) == (dataset, method, pruning) and abs(s.sparsity - sparsity) < 1e-9), None)


# -- Figures 2 and 3 --------------------------------------------------------------------------------
def _scatter_panel(ax, name: str, method: str, x: np.ndarray, y: np.ndarray, pie: np.ndarray, metric: str) -> None:
    ax.scatter(x[~pie], y[~pie], s=3, color=method_color(method), alpha=0.3, linewidths=0, label=f"not PIE ({int((~pie).sum())})")
    ax.scatter(x[pie], y[pie], s=8, color=PIE_COLOR, alpha=0.9, linewidths=0, label=f"PIE ({int(pie.sum())})")
    both = np.concatenate([x, y])
    lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel(f"{metric}, dense", fontsize=8)
    ax.set_ylabel(f"{metric}, {round(Q_PANELS_AT * 100)}%", fontsize=8)
    ax.legend(fontsize=6, loc="upper left", frameon=False)


def _dense_vs_pruned(study: Study, pies: dict[Setting, SettingPies], array: str, metric: str, number: int) -> FigureSet:
    out = FigureSet()
    first = study.pd_models if array == "pd_score" else None
    for dataset in study.datasets:
        cells = [_find(pies, dataset, m, p, Q_PANELS_AT) for m, p in COLUMNS]
        if not any(cells):
            continue
        fig, axes = _grid(1, 4, 3.6, 3.6)
        empty = []
        for ax, (method, pruning), setting in zip(axes[0], COLUMNS, cells):
            name = _label(method, pruning, Q_PANELS_AT)
            if setting is None:
                _empty(ax, f"{name}\nno runs")
                empty.append(name)
                continue
            dense = study.populations[setting.dense].stack(array, first=first)
            pruned = study.populations[setting].stack(array, first=first)
            if dense is None or pruned is None:
                _empty(ax, f"{name}\nno {array}")
                empty.append(f"{name} (no {array})")
                continue
            _scatter_panel(ax, f"{name} (n={dense[1]}/{pruned[1]})", method, dense[0].mean(0), pruned[0].mean(0), pies[setting].flags, metric)
        fig.suptitle(f"Figure {number} (paper layout) — {metric}, dense vs {round(Q_PANELS_AT * 100)}%, {dataset}", fontsize=11)
        if empty:
            out.missing.append(f"paper Figure {number} for {dataset}: empty panels: {'; '.join(empty)}")
        out.figures.append(Figure(
            name=f"paper_figure{number}_{'q' if array == 'q_score' else 'pd'}_{dataset}.png",
            title=f"Figure {number} in the paper's layout — {metric}, dense vs {round(Q_PANELS_AT * 100)}%, {dataset}",
            how=(f"per test sample, {array} averaged over the dense models (x) and the {round(Q_PANELS_AT * 100)}% models (y)"
                 + (f" (first {first} seeds)" if first else "") + "; panels Sup/GMP, Sup/One-Shot, SCL/GMP, SCL/One-Shot as in "
                 "the paper; samples in the method's colour, red = PIE; a cell without runs is an empty, labelled panel."),
            png=_png(fig),
        ))  # fmt: skip
    return out


def figure2(study: Study, pies: dict[Setting, SettingPies]) -> FigureSet:
    return _dense_vs_pruned(study, pies, "q_score", "Q-Score", 2)


def figure3(study: Study, pies: dict[Setting, SettingPies]) -> FigureSet:
    return _dense_vs_pruned(study, pies, "pd_score", "PD-Score", 3)


# -- Figures 4 and 7 --------------------------------------------------------------------------------
def _bars(pies: dict[Setting, SettingPies], settings: Sequence[Setting | None]) -> list[tuple[str, str, np.ndarray | None, np.ndarray]]:
    """Per present setting: (method, label, PIEs shared with the other methods of its cell per class or None, all per class)."""
    shared_of = shared_with_other_methods(pies)
    out = []
    for s in settings:
        if s is None:
            continue
        r, shared = pies[s], shared_of[s]
        out.append((s.method, f"{method_name(s.method)} ({r.count})",
                    None if shared is None else per_class_counts(shared, r.labels, r.num_classes), r.per_class))  # fmt: skip
    return out


def figure4(study: Study, pies: dict[Setting, SettingPies]) -> FigureSet:
    out = FigureSet()
    for dataset in study.datasets:
        cols = [[_find(pies, dataset, m, "oneshot", s) for m in ("sup", "supcon")] for s in FIG4_SPARSITIES]
        if not any(any(c) for c in cols):
            continue
        c = max(pies[s].num_classes for col in cols for s in col if s is not None)
        names, source = class_labels(study, dataset, c)
        fig, axes = _grid(1, len(FIG4_SPARSITIES), 4.8, 4.0)
        empty = []
        for ax, sparsity, settings in zip(axes[0], FIG4_SPARSITIES, cols):
            name = f"One-Shot {round(sparsity * 100)}%"
            if not any(settings):
                _empty(ax, f"{name}\nno runs")
                empty.append(name)
                continue
            lacking = [method_name(m) for m, s in zip(("sup", "supcon"), settings) if s is None]
            shared_unique_bars(ax, _bars(pies, settings), names)
            ax.set_title(name + (f" (no {lacking[0]} runs: nothing shared)" if lacking else ""), fontsize=9)
            ax.legend(fontsize=6, frameon=False)
        fig.suptitle(f"Figure 4 (paper layout) — PIEs per class, One-Shot, Sup and SCL, {dataset}", fontsize=11)
        if empty:
            out.missing.append(f"paper Figure 4 for {dataset}: empty panels: {'; '.join(empty)}")
        out.figures.append(Figure(
            name=f"paper_figure4_pies_oneshot_{dataset}.png",
            title=f"Figure 4 in the paper's layout — PIEs per class, One-Shot 30/50/90%, {dataset}",
            how=("PIEs by true class for Sup and SCL pruned One-Shot, each method in its colour; strong = PIEs of both methods "
                 f"(shared), light = of one only; classes: {source}."),
            png=_png(fig),
        ))  # fmt: skip
    return out


def figure7(study: Study, pies: dict[Setting, SettingPies]) -> FigureSet:
    out = FigureSet()
    for dataset in study.datasets:
        grid = [[_find(pies, dataset, m, p, s) for m, p in COLUMNS] for s in FIG7_SPARSITIES]
        if not any(any(row) for row in grid):
            continue
        c = max(pies[s].num_classes for row in grid for s in row if s is not None)
        names, source = class_labels(study, dataset, c)
        fig, axes = _grid(len(FIG7_SPARSITIES), len(COLUMNS), 3.6, 3.0)
        empty = 0
        for i, sparsity in enumerate(FIG7_SPARSITIES):
            for j, (method, pruning) in enumerate(COLUMNS):
                ax, setting = axes[i][j], grid[i][j]
                name = _label(method, pruning, sparsity)
                if setting is None:
                    _empty(ax, f"{name}\nno runs")
                    empty += 1
                    continue
                shared_unique_bars(ax, _bars(pies, [setting]), names)
                ax.set_title(f"{name} ({pies[setting].count})", fontsize=8)
                ax.legend(fontsize=5, frameon=False)
        fig.suptitle(f"Figure 7 (paper layout) — PIEs per class, every sparsity, {dataset}", fontsize=11)
        if empty:
            out.missing.append(f"paper Figure 7 for {dataset}: {empty} of {len(FIG7_SPARSITIES) * len(COLUMNS)} panels empty (no runs)")
        out.figures.append(Figure(
            name=f"paper_figure7_pie_classes_{dataset}.png",
            title=f"Figure 7 in the paper's layout — PIEs per class, {dataset}",
            how=("PIEs by true class, rows = sparsity 30/50/70/90%, columns = Sup/GMP, Sup/One-Shot, SCL/GMP, SCL/One-Shot, each "
                 "method in its colour; strong = also a PIE of the other method pruned with the same schedule to the same "
                 f"sparsity (shared), light = of this method only; empty = no runs; classes: {source}."),
            png=_png(fig),
        ))  # fmt: skip
    return out


def paper_figures(study: Study, pies: dict[Setting, SettingPies]) -> FigureSet:
    """Figures 2, 3, 4 and 7 in the paper's layout (Figure 5, the UMAP grid, is :func:`analysis.figures.umap_figures`)."""
    out = FigureSet()
    for part in (figure2(study, pies), figure3(study, pies), figure4(study, pies), figure7(study, pies)):
        out.figures += part.figures
        out.missing += part.missing
    return out


__all__ = ["COLUMNS", "figure2", "figure3", "figure4", "figure7", "paper_figures"]
