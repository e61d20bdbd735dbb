"""The UMAP grid of :mod:`analysis.figures` (paper Figs 1/5): rows = methods, columns = dense and every
(schedule, sparsity), each cell the 2-D test representations of the population's first model.

Where the representations come from (``features``, ``per_sample/representations.npz``, the
UMAPPlot callback's coordinates) is described in the docstring of :mod:`analysis.figures`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.figure_base import Figure, FigureSet, _plt, _png, method_color
from analysis.images import class_labels
from analysis.runs import Population, Run, Setting, Study
from common.run_folder import DENSE, method_key, method_name, pruning_name
from common.run_folder import pruning_key as _pruning_key

UMAP_FILE = Path("figures") / "umap_test.npz"
#: a run's test representations of a fixed subset, saved small (scripts/export_representations.py)
REPRESENTATIONS_FILE = Path("per_sample") / "representations.npz"


# ---------------------------------------------------------------------------------------------
# UMAP grid
# ---------------------------------------------------------------------------------------------
def _umap_source(run: Run, keep: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(2-D coordinates, labels, where from) for ``run``, or None when it saved nothing usable."""
    if run.has("features") and run.arrays["features"].ndim == 2:
        from callbacks.metrics.umap import umap_embedding  # umap-learn; slow to import (numba)

        coords = umap_embedding(run.arrays["features"][keep].astype(np.float32), seed=seed)
        return coords, run.arrays["label"][keep], "features"
    small = run.path / REPRESENTATIONS_FILE
    if small.is_file():  # scripts/export_representations.py: a fixed subset, float16
        from callbacks.metrics.umap import umap_embedding

        with np.load(small, allow_pickle=False) as data:
            rows = np.isin(data["index"], keep) if len(keep) < len(data["index"]) else np.ones(len(data["index"]), dtype=bool)
            coords = umap_embedding(data["features"][rows].astype(np.float32), seed=seed)
            return coords, np.asarray(data["label"])[rows], f"representations ({int(rows.sum())}, float16)"
    saved = run.path / UMAP_FILE
    if saved.is_file():
        with np.load(saved, allow_pickle=False) as data:
            if {"umap", "label"} <= set(data.files):
                return np.asarray(data["umap"]), np.asarray(data["label"]), "UMAPPlot callback"
    return None


def umap_grid_png(cells: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, str]], rows: list[str], cols: list[str], *, title: str,
                  no_runs: frozenset[tuple[int, int]] = frozenset(), class_names: list[str] | None = None,
                  row_colors: list[str] | None = None) -> bytes:
    """The grid; a cell without coordinates says why: ``no runs`` (no such population, the cells of
    ``no_runs``) or ``no features saved`` (runs without saved representations). Points are coloured
    by class (legend: ``class_names`` when given); row labels (methods) in ``row_colors``."""
    plt = _plt()
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.2 * len(cols), 3.2 * len(rows)), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (i, j) not in cells:
                why = "no runs" if (i, j) in no_runs else "no features saved"
                ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=8, color="grey", transform=ax.transAxes)
            else:
                coords, labels, caption = cells[(i, j)]
                for c in np.unique(labels):
                    sel = labels == c
                    name = class_names[int(c)] if class_names is not None and int(c) < len(class_names) else str(int(c))
                    ax.scatter(coords[sel, 0], coords[sel, 1], s=2, color=cmap(int(c) % 10), alpha=0.7, linewidths=0, label=name)
                ax.set_xlabel(caption, fontsize=7)
            if i == 0:
                ax.set_title(col, fontsize=9)
            if j == 0:
                ax.set_ylabel(row, fontsize=10, color="black" if row_colors is None else row_colors[i], fontweight="bold")
    handles, labels = [], []
    for ax in axes.ravel():
        h, names = ax.get_legend_handles_labels()
        if h:
            handles, labels = h, names
            break
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(10, len(labels)), fontsize=7, markerscale=4, frameon=False)
    fig.suptitle(title, fontsize=11)
    return _png(fig, rect=(0, 0.04, 1, 1))


def umap_figures(study: Study, *, samples: int = 2000, seed: int = 0) -> FigureSet:
    """UMAP grid per dataset: rows = methods, columns = dense and every (schedule, sparsity)."""
    out = FigureSet()
    if samples == 0:
        out.missing.append("UMAP grid: disabled (--umap-samples 0)")
        return out
    for dataset in study.datasets:
        pops = study.of(dataset)
        methods = sorted({s.method for s in pops}, key=method_key)
        cols = [(DENSE, 0.0)] + sorted({(s.pruning, s.sparsity) for s in pops if not s.is_dense}, key=lambda c: (_pruning_key(c[0]), c[1]))
        n = len(next(iter(pops.values())).index)
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(n, size=samples, replace=False)) if 3 <= samples < n else np.arange(n)
        cells: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, str]] = {}
        blank: list[str] = []
        no_runs: set[tuple[int, int]] = set()
        for i, method in enumerate(methods):
            for j, (pruning, sparsity) in enumerate(cols):
                pop: Population | None = pops.get(Setting(dataset, method, pruning, sparsity))
                if pop is None:
                    no_runs.add((i, j))
                    continue
                source = None
                for run in pop.runs:
                    source = _umap_source(run, keep, seed)
                    if source is not None:
                        coords, labels, where = source
                        cells[(i, j)] = (coords, labels, f"seed {run.seed} · {where}")
                        break
                if source is None:
                    blank.append(pop.setting.label())
        if not cells:
            out.missing.append(
                f"UMAP grid for {dataset}: no run has test representations saved — neither a 'features' array in "
                f"per_sample/test.npz, per_sample/representations.npz (scripts/export_representations.py) nor "
                f"figures/umap_test.npz from the UMAPPlot callback ({len(blank)} populations)"
            )
            continue
        if blank:
            out.missing.append(f"UMAP grid for {dataset}: blank cells, no saved representations for {'; '.join(blank)}")
        col_names = ["dense" if p == DENSE else f"{pruning_name(p)} {round(s * 100)}%" for p, s in cols]
        c = max(pop.num_classes for pop in pops.values())
        names, source = class_labels(study, dataset, c)
        out.figures.append(
            Figure(
                name=f"umap_{dataset}.png",
                title=f"Figure 5 — UMAP of the test representations, {dataset}",
                how=(
                    "one model per population (lowest seed): 2-D UMAP of its test representations h, coloured by true class "
                    f"(legend: {source}; row labels in the method's colour); "
                    f"from per_sample 'features' (umap-learn, {len(keep)} samples, seed {seed}) or else the UMAPPlot "
                    "callback's saved coordinates — each cell says which."
                ),
                png=umap_grid_png(cells, [method_name(m) for m in methods], col_names, title=f"UMAP — {dataset}", no_runs=frozenset(no_runs),
                                  class_names=names, row_colors=[method_color(m) for m in methods]),
            )
        )
    return out


__all__ = [
    "REPRESENTATIONS_FILE",
    "UMAP_FILE",
    "umap_figures",
    "umap_grid_png",
]
