"""The paper's figures from populations: PNG files under ``<out>/figures/``.

* ``scatter_<metric>_<dataset>_<method>_<schedule>.png`` (paper Figs 2–3): per test sample, the
  metric averaged over the dense models (x) against the same sample averaged over the pruned
  models (y), PIEs in red, the identity line in black; one panel per sparsity. Metrics: Q-Score
  (``q_score``) and prediction depth (``pd_score``) when the runs stored them.
* ``pies_per_class_<dataset>_<schedule>.png`` (paper Figs 4/7): PIEs per true class, one bar per
  method, split into the part shared with the other method(s) at the same sparsity and the part
  unique to it; one panel per sparsity.
* ``figure3_pd_<dataset>.png`` (paper Fig 3): per-sample PD-Score of the dense population (x) vs
  the 90% population (y; the highest sparsity of a schedule without 90%), one panel per
  method/schedule, PIEs red, Spearman ρ in each title; PD over the first ``--pd-models`` seeds.
* ``figure6_flips_<dataset>_<method>_<schedule>_<percent>.png`` (paper Fig 6): a gallery of test
  images whose modal prediction flips between the dense and the pruned population (PIEs) at the
  highest sparsity of each method/schedule, each titled with the dense (U) and sparse (S)
  predicted class — class names when the datamodule class has ``class_names``. The pixels come from
  the dataset named in the runs' ``config.yaml`` (:mod:`analysis.images`); when it cannot be
  loaded the gallery is listed as not drawn with the reason.
* ``umap_<dataset>.png`` (paper Figs 1/5): a grid, rows = methods, columns = dense and every
  (schedule, sparsity), each cell the test representations of the population's first model
  (lowest seed) in 2-D, coloured by class. Source, per run: the ``features`` array of
  ``per_sample/test.npz`` (embedded here with umap-learn on a fixed random subsample), else
  ``per_sample/representations.npz`` (a fixed subset in float16, scripts/export_representations.py),
  else the coordinates the :class:`callbacks.metrics.UMAPPlot` callback saved in ``figures/umap_test.npz``;
  a run with neither is left blank and named in the report, nothing is made up.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.pies import SettingPies, class_counts, per_class_counts, same_cell_groups, shared_with_other_methods
from analysis.runs import Population, Run, Setting, Study
from analysis.stats import spearman
from common.run_folder import DENSE, method_key, method_name, pruning_name
from common.run_folder import pruning_key as _pruning_key

SCATTER_METRICS = (("q_score", "Q-Score"), ("pd_score", "prediction depth"))
UMAP_FILE = Path("figures") / "umap_test.npz"
#: a run's test representations of a fixed subset, saved small (scripts/export_representations.py)
REPRESENTATIONS_FILE = Path("per_sample") / "representations.npz"


@dataclass
class Figure:
    """A PNG written under ``<out>/figures``: its file name, title and one line on how it was made."""

    name: str
    title: str
    how: str
    png: bytes = field(repr=False)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.name
        path.write_bytes(self.png)
        return path


@dataclass
class FigureSet:
    """The figures made plus what could not be drawn and why (reported, never faked)."""

    figures: list[Figure] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig, *, rect: tuple[float, float, float, float] | None = None) -> bytes:
    plt = _plt()
    try:
        fig.tight_layout(rect=rect)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        return buffer.getvalue()
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------
# dense vs pruned scatter
# ---------------------------------------------------------------------------------------------
def scatter_png(panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], *, metric: str, title: str) -> bytes:
    """Panels of (title, dense [N], pruned [N], pie bool [N]) scatters with the identity line."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.6, 4.2 * len(panels)), 4.6), squeeze=False)
    for ax, (name, x, y, pie) in zip(axes[0], panels):
        ax.scatter(x[~pie], y[~pie], s=4, color="tab:green", alpha=0.5, linewidths=0, label=f"not PIE ({int((~pie).sum())})")
        ax.scatter(x[pie], y[pie], s=9, color="tab:red", alpha=0.9, linewidths=0, label=f"PIE ({int(pie.sum())})")
        finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        pad = 0.02 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", linewidth=1, label="identity")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"{metric}, dense models (mean)")
        ax.set_ylabel(f"{metric}, pruned models (mean)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def scatter_figures(study: Study, pies: dict[Setting, SettingPies]) -> FigureSet:
    """Dense-vs-pruned per-sample scatter of Q-Score and prediction depth (paper Figs 2–3)."""
    out = FigureSet()
    groups: dict[tuple[str, str, str], list[Setting]] = {}
    for setting in pies:
        groups.setdefault((setting.dataset, setting.method, setting.pruning), []).append(setting)
    for (dataset, method, pruning), settings in sorted(groups.items(), key=lambda kv: (kv[0][0], method_key(kv[0][1]), _pruning_key(kv[0][2]))):
        settings.sort(key=lambda s: s.sparsity)
        dense = study.populations[settings[0].dense]
        for array, metric in SCATTER_METRICS:
            first = study.pd_models if array == "pd_score" else None  # PD: the models Table 6 uses
            dense_values = dense.stack(array, first=first)
            panels = []
            for setting in settings:
                pruned_values = study.populations[setting].stack(array, first=first)
                if dense_values is None or pruned_values is None:
                    continue
                (dx, dn), (py, pn) = dense_values, pruned_values
                panels.append(
                    (f"{pruning_name(pruning)} {setting.percent}% (n={dn} dense / {pn} pruned)", dx.mean(0), py.mean(0), pies[setting].flags)
                )
            label = f"{dataset} · {method_name(method)} · {pruning_name(pruning)}"
            if not panels:
                out.missing.append(f"{metric} scatter for {label}: the runs have no {array} in per_sample/test.npz")
                continue
            out.figures.append(
                Figure(
                    name=f"scatter_{array}_{dataset}_{method}_{pruning}.png",
                    title=f"{metric}: dense vs pruned, {label}",
                    how=(
                        f"x = per-sample {array} averaged over the dense models, y = averaged over the pruned models "
                        "of that sparsity; red = PIE; black = identity line (points below it lost score under pruning)"
                        + (f"; PD over the first {study.pd_models} seeds of each population." if first else ".")
                    ),
                    png=scatter_png(panels, metric=metric, title=f"{metric}: dense vs pruned — {label}"),
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# Figure 3: PD dense vs the 90 % population, one panel per method/schedule
# ---------------------------------------------------------------------------------------------
FIGURE3_SPARSITY = 0.9


def figure3_figures(study: Study, pies: dict[Setting, SettingPies]) -> FigureSet:
    """Per dataset, dense-vs-pruned per-sample PD at 90% (else the highest sparsity), one panel per method/schedule."""
    out = FigureSet()
    n = study.pd_models
    for dataset in study.datasets:
        groups: dict[tuple[str, str], list[Setting]] = {}
        for setting in pies:
            if setting.dataset == dataset:
                groups.setdefault((setting.method, setting.pruning), []).append(setting)
        panels = []
        skipped = []
        for (method, pruning), settings in sorted(groups.items(), key=lambda kv: (method_key(kv[0][0]), _pruning_key(kv[0][1]))):
            at90 = [s for s in settings if abs(s.sparsity - FIGURE3_SPARSITY) < 1e-9]
            setting = at90[0] if at90 else max(settings, key=lambda s: s.sparsity)
            dense = study.populations[setting.dense].stack("pd_score", first=n)
            pruned = study.populations[setting].stack("pd_score", first=n)
            label = f"{method_name(method)} · {pruning_name(pruning)} {setting.percent}%"
            if dense is None or pruned is None:
                skipped.append(label)
                continue
            x, y = dense[0].mean(0), pruned[0].mean(0)
            rho = spearman(x, y)
            panels.append((f"{label} (ρ={rho:.2f}; n={dense[1]}/{pruned[1]})", x, y, pies[setting].flags))
        if not panels:
            if groups:
                out.missing.append(f"Figure 3 for {dataset}: no pd_score in the dense and pruned populations (add callbacks.metrics.PredictionDepth)")
            continue
        if skipped:
            out.missing.append(f"Figure 3 for {dataset}: panels left out, no pd_score: {'; '.join(skipped)}")
        out.figures.append(
            Figure(
                name=f"figure3_pd_{dataset}.png",
                title=f"Figure 3 — PD-Score, dense vs {round(FIGURE3_SPARSITY * 100)}% population, {dataset}",
                how=(
                    f"per test sample, PD-Score averaged over the first {n} seeds of the dense population (x) and of the "
                    f"{round(FIGURE3_SPARSITY * 100)}% population (y; the highest sparsity of a schedule without one, named in "
                    "the panel), one panel per method/schedule; red = PIE; ρ = Spearman correlation of x and y; n = dense/pruned models."
                ),
                png=scatter_png(panels, metric="PD-Score", title=f"PD-Score: dense vs pruned — {dataset}"),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Figure 6: gallery of flipped predictions
# ---------------------------------------------------------------------------------------------
def gallery_png(images: np.ndarray, titles: Sequence[str], *, title: str, columns: int = 8) -> bytes:
    """A grid of uint8 ``[K, H, W, 3]`` images, each with its (short, multi-line) title."""
    plt = _plt()
    k = len(images)
    cols = min(columns, k)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.45 * cols, 2.0 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, text in zip(axes.ravel(), images, titles):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(text, fontsize=6.5)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def _flips(study: Study, result: SettingPies, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (positions in the per-sample arrays) of up to ``count`` PIEs, most clear-cut first, with the
    dense and pruned modal labels (a tie goes to the lowest class)."""
    dense = study.populations[result.setting.dense]
    pruned = study.populations[result.setting]
    c = result.num_classes
    dv, pv = class_counts(dense.preds(), c), class_counts(pruned.preds(), c)
    du, ps = dv.argmax(1), pv.argmax(1)
    share = dv.max(1) / dense.n + pv.max(1) / pruned.n  # agreement of each population on its own mode
    rows = np.flatnonzero(result.flags & (du != ps))
    rows = rows[np.lexsort((rows, -share[rows]))][:count]
    return rows, du[rows], ps[rows]


def figure6_figures(study: Study, pies: dict[Setting, SettingPies], *, images: int = 16) -> FigureSet:
    """Per (dataset, method, schedule) at its highest sparsity: up to ``images`` PIEs labelled U (dense) / S (sparse)."""
    out = FigureSet()
    if images == 0:
        out.missing.append("Figure 6 galleries: disabled (--gallery-images 0)")
        return out
    from analysis.images import ImagesUnavailable, load_test_images

    for dataset in study.datasets:
        cells: dict[tuple[str, str], Setting] = {}
        for setting in pies:
            if setting.dataset == dataset:
                key = (setting.method, setting.pruning)
                if key not in cells or setting.sparsity > cells[key].sparsity:
                    cells[key] = setting
        if not cells:
            continue
        first = min((r for r in study.runs if r.setting.dataset == dataset), key=lambda r: str(r.path))
        try:
            data = load_test_images(first.path, first.arrays["index"], first.arrays["label"])
        except ImagesUnavailable as err:
            out.missing.append(f"Figure 6 galleries for {dataset}: the test images could not be loaded from {first.path / 'config.yaml'}: {err}")
            continue
        index = first.arrays["index"]
        for (method, pruning), setting in sorted(cells.items(), key=lambda kv: (method_key(kv[0][0]), _pruning_key(kv[0][1]))):
            result = pies[setting]
            rows, dense_labels, pruned_labels = _flips(study, result, images)
            label = f"{dataset} · {method_name(method)} · {pruning_name(pruning)} {setting.percent}%"
            if not len(rows):
                out.missing.append(f"Figure 6 gallery for {label}: no prediction flips (0 PIEs with distinct modal labels)")
                continue
            titles = [
                f"U: {data.name(u)}\nS: {data.name(p)}\n(true {data.name(t)})"
                for u, p, t in zip(dense_labels, pruned_labels, result.labels[rows])
            ]
            out.figures.append(
                Figure(
                    name=f"figure6_flips_{setting.slug()}.png",
                    title=f"Figure 6 — predictions that flip under pruning, {label}",
                    how=(
                        f"{len(rows)} of the {result.count} PIEs, those on which each population agrees most with its own mode "
                        f"first; U = modal class of the {result.n_dense} dense models, S = of the {result.n_pruned} pruned models "
                        f"(ties: lowest class), true = label; images from {data.source}; labels: "
                        + (f"class names of {data.class_path}." if data.class_names else f"class indices ({data.class_path} has no class_names).")
                    ),
                    png=gallery_png(data.images[index[rows]], titles, title=f"U (dense) vs S (sparse) — {label}"),
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# PIEs per class
# ---------------------------------------------------------------------------------------------
def pie_bars_png(panels: Sequence[tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]], *, title: str) -> bytes:
    """Panels of (title, [(method label, shared per class [C], unique per class [C]), ...]) grouped bars."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.0, 5.5 * len(panels)), 4.0), squeeze=False)
    colors = ("tab:blue", "tab:orange", "tab:purple", "tab:brown")
    for ax, (name, bars) in zip(axes[0], panels):
        classes = np.arange(len(bars[0][1]))
        width = 0.8 / len(bars)
        for i, (label, shared, unique) in enumerate(bars):
            x = classes - 0.4 + width * (i + 0.5)
            color = colors[i % len(colors)]
            ax.bar(x, shared, width, color=color, alpha=0.45, hatch="//", edgecolor=color, label=f"{label}: shared")
            ax.bar(x, unique, width, bottom=shared, color=color, label=f"{label}: unique")
        ax.set_xticks(classes)
        ax.set_xlabel("true class")
        ax.set_ylabel("PIEs")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7, frameon=False)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def pie_bar_figures(pies: dict[Setting, SettingPies]) -> FigureSet:
    """Per-class PIE bars, shared vs unique between methods at the same sparsity (paper Figs 4/7)."""
    out = FigureSet()
    shared_of = shared_with_other_methods(pies)
    groups: dict[tuple[str, str], dict[float, list[SettingPies]]] = {}
    for (dataset, pruning, sparsity), members in same_cell_groups(pies).items():
        groups.setdefault((dataset, pruning), {})[sparsity] = members
    for (dataset, pruning), by_sparsity in sorted(groups.items(), key=lambda kv: (kv[0][0], _pruning_key(kv[0][1]))):
        panels = []
        for sparsity in sorted(by_sparsity):
            bars = []
            for r in by_sparsity[sparsity]:
                shared = shared_of[r.setting]
                shared_c = per_class_counts(np.zeros_like(r.flags) if shared is None else shared, r.labels, r.num_classes)
                bars.append((f"{method_name(r.setting.method)} ({r.count}, n={r.n_pruned})", shared_c, r.per_class - shared_c))
            panels.append((f"{pruning_name(pruning)} {round(sparsity * 100)}%", bars))
        out.figures.append(
            Figure(
                name=f"pies_per_class_{dataset}_{pruning}.png",
                title=f"PIEs per class, {dataset} · {pruning_name(pruning)}",
                how=(
                    "PIEs counted by true label, one bar per method; hatched = also a PIE of the other method(s) "
                    "pruned with the same schedule to the same sparsity (shared), solid = unique to the method."
                ),
                png=pie_bars_png(panels, title=f"PIEs per class — {dataset} · {pruning_name(pruning)}"),
            )
        )
    return out


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


def umap_grid_png(cells: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, str]], rows: list[str], cols: list[str], *, title: str) -> bytes:
    plt = _plt()
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.2 * len(cols), 3.2 * len(rows)), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (i, j) not in cells:
                ax.text(0.5, 0.5, "no features saved", ha="center", va="center", fontsize=8, color="grey", transform=ax.transAxes)
            else:
                coords, labels, caption = cells[(i, j)]
                for c in np.unique(labels):
                    sel = labels == c
                    ax.scatter(coords[sel, 0], coords[sel, 1], s=2, color=cmap(int(c) % 10), alpha=0.7, linewidths=0, label=str(int(c)))
                ax.set_xlabel(caption, fontsize=7)
            if i == 0:
                ax.set_title(col, fontsize=9)
            if j == 0:
                ax.set_ylabel(row, fontsize=9)
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
        for i, method in enumerate(methods):
            for j, (pruning, sparsity) in enumerate(cols):
                pop: Population | None = pops.get(Setting(dataset, method, pruning, sparsity))
                if pop is None:
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
        out.figures.append(
            Figure(
                name=f"umap_{dataset}.png",
                title=f"Figure 5 — UMAP of the test representations, {dataset}",
                how=(
                    "one model per population (lowest seed): 2-D UMAP of its test representations h, coloured by true class; "
                    f"from per_sample 'features' (umap-learn, {len(keep)} samples, seed {seed}) or else the UMAPPlot "
                    "callback's saved coordinates — each cell says which."
                ),
                png=umap_grid_png(cells, [method_name(m) for m in methods], col_names, title=f"UMAP — {dataset}"),
            )
        )
    return out


def all_figures(
    study: Study, pies: dict[Setting, SettingPies], *, umap_samples: int = 2000, gallery_images: int = 16
) -> FigureSet:
    """Every figure of the report, in report order, plus the list of what could not be drawn."""
    result = FigureSet()
    parts = (
        figure3_figures(study, pies), scatter_figures(study, pies), figure6_figures(study, pies, images=gallery_images),
        pie_bar_figures(pies), umap_figures(study, samples=umap_samples),
    )  # fmt: skip
    for part in parts:
        result.figures += part.figures
        result.missing += part.missing
    return result


__all__ = [
    "Figure",
    "FigureSet",
    "all_figures",
    "figure3_figures",
    "figure6_figures",
    "gallery_png",
    "pie_bar_figures",
    "pie_bars_png",
    "scatter_figures",
    "scatter_png",
    "umap_figures",
    "umap_grid_png",
]
