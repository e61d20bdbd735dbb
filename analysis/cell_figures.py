"""The per-cell figures of :mod:`analysis.figures`: dense-vs-pruned scatters (Q-Score, PD), Figure 3
(PD dense vs 90%), Figure 6 (gallery of flipped predictions) and the per-class PIE bars.

The file names and what each figure shows are listed in the docstring of :mod:`analysis.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.figure_base import PIE_COLOR, Figure, FigureSet, _plt, _png, method_color, shared_unique_bars
from analysis.images import class_labels
from analysis.pies import SettingPies, class_counts, per_class_counts, same_cell_groups, shared_with_other_methods
from analysis.runs import Setting, Study
from analysis.stats import spearman
from common.run_folder import method_key, method_name, pruning_name
from common.run_folder import pruning_key as _pruning_key

SCATTER_METRICS = (("q_score", "Q-Score"), ("pd_score", "prediction depth"))


# ---------------------------------------------------------------------------------------------
# dense vs pruned scatter
# ---------------------------------------------------------------------------------------------
def scatter_png(panels: Sequence[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]], *, metric: str, title: str) -> bytes:
    """Panels of (title, method, dense [N], pruned [N], pie bool [N]) scatters with the identity line:
    the samples in the method's colour, the PIEs red."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.6, 4.2 * len(panels)), 4.6), squeeze=False)
    for ax, (name, method, x, y, pie) in zip(axes[0], panels):
        ax.scatter(x[~pie], y[~pie], s=4, color=method_color(method), alpha=0.3, linewidths=0, label=f"not PIE ({int((~pie).sum())})")
        ax.scatter(x[pie], y[pie], s=9, color=PIE_COLOR, alpha=0.9, linewidths=0, label=f"PIE ({int(pie.sum())})")
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
                    (f"{pruning_name(pruning)} {setting.percent}% (n={dn} dense / {pn} pruned)", method, dx.mean(0), py.mean(0),
                     pies[setting].flags)
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
                        "of that sparsity; red = PIE, the other samples in the method's colour; black = identity line (points "
                        "below it lost score under pruning)"
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
            panels.append((f"{label} (ρ={rho:.2f}; n={dense[1]}/{pruned[1]})", method, x, y, pies[setting].flags))
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
                    "the panel), one panel per method/schedule, samples in the method's colour; red = PIE; ρ = Spearman correlation of "
                    "x and y; n = dense/pruned models."
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


#: the paper's Figure 6: PIEs at 30 % sparsity on which the pruned models are right and the dense ones wrong
FIGURE6_SPARSITY = 0.3


def _flips(study: Study, result: SettingPies, count: int, *, pruned_right: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (positions in the per-sample arrays) of up to ``count`` PIEs, most clear-cut first, with the
    dense and pruned modal labels (a tie goes to the lowest class); ``pruned_right``: only those whose
    pruned mode is the true label and dense mode is not (the paper's selection)."""
    dense = study.populations[result.setting.dense]
    pruned = study.populations[result.setting]
    c = result.num_classes
    dv, pv = class_counts(dense.preds(), c), class_counts(pruned.preds(), c)
    du, ps = dv.argmax(1), pv.argmax(1)
    share = dv.max(1) / dense.n + pv.max(1) / pruned.n  # agreement of each population on its own mode
    keep = result.flags & (du != ps)
    if pruned_right:
        keep &= (ps == result.labels) & (du != result.labels)
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((rows, -share[rows]))][:count]
    return rows, du[rows], ps[rows]


def _figure6_cell(settings: list[Setting]) -> tuple[Setting, bool]:
    """The cell a (method, schedule) gallery shows: the paper's 30 % when it exists (True), else the highest sparsity."""
    at30 = [s for s in settings if abs(s.sparsity - FIGURE6_SPARSITY) < 1e-9]
    return (at30[0], True) if at30 else (max(settings, key=lambda s: s.sparsity), False)


def figure6_figures(study: Study, pies: dict[Setting, SettingPies], *, images: int = 16) -> FigureSet:
    """Per (dataset, method, schedule): up to ``images`` PIEs labelled U (dense) / S (sparse), in the
    paper's selection (30 %, pruned right and dense wrong) when that cell exists, else labelled what it shows."""
    out = FigureSet()
    if images == 0:
        out.missing.append("Figure 6 galleries: disabled (--gallery-images 0)")
        return out
    from analysis.images import ImagesUnavailable, load_test_images

    for dataset in study.datasets:
        groups: dict[tuple[str, str], list[Setting]] = {}
        for setting in pies:
            if setting.dataset == dataset:
                groups.setdefault((setting.method, setting.pruning), []).append(setting)
        if not groups:
            continue
        first = min((r for r in study.runs if r.setting.dataset == dataset), key=lambda r: str(r.path))
        try:
            data = load_test_images(first.path, first.arrays["index"], first.arrays["label"])
        except ImagesUnavailable as err:
            out.missing.append(f"Figure 6 galleries for {dataset}: the test images could not be loaded from {first.path / 'config.yaml'}: {err}")
            continue
        index = first.arrays["index"]
        for (method, pruning), settings in sorted(groups.items(), key=lambda kv: (method_key(kv[0][0]), _pruning_key(kv[0][1]))):
            setting, papers_cell = _figure6_cell(settings)
            result = pies[setting]
            label = f"{dataset} · {method_name(method)} · {pruning_name(pruning)} {setting.percent}%"
            rows, dense_labels, pruned_labels = _flips(study, result, images, pruned_right=True)
            right = bool(len(rows))
            if not right:
                rows, dense_labels, pruned_labels = _flips(study, result, images, pruned_right=False)
            if not len(rows):
                out.missing.append(f"Figure 6 gallery for {label}: no prediction flips (0 PIEs with distinct modal labels)")
                continue
            if right and papers_cell:
                selection = "the paper's selection: 30%, pruned models right, dense models wrong"
            elif right:
                selection = (f"pruned models right, dense models wrong, at {setting.percent}% — the paper shows "
                             f"{round(FIGURE6_SPARSITY * 100)}%, which these runs do not have")  # fmt: skip
            else:
                selection = (f"not the paper's selection: any flip at {setting.percent}% (no PIE here has the pruned models "
                             "right and the dense ones wrong)")  # fmt: skip
            titles = [
                f"U: {data.name(u)}\nS: {data.name(p)}\n(true {data.name(t)})"
                for u, p, t in zip(dense_labels, pruned_labels, result.labels[rows])
            ]
            out.figures.append(
                Figure(
                    name=f"figure6_flips_{setting.slug()}.png",
                    title=f"Figure 6 — predictions that flip under pruning, {label}",
                    how=(
                        f"{selection}; {len(rows)} of the {result.count} PIEs, those on which each population agrees most with its "
                        f"own mode first; U = modal class of the {result.n_dense} dense models, S = of the {result.n_pruned} pruned "
                        f"models (ties: lowest class), true = label; images from {data.source}; labels: "
                        + (f"class names of {data.class_path}." if data.class_names else f"class indices ({data.class_path} has no class_names).")
                    ),
                    png=gallery_png(data.images[index[rows]], titles, title=f"U (dense) vs S (sparse) — {label}\n{selection}"),
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# PIEs per class
# ---------------------------------------------------------------------------------------------
def pie_bars_png(
    panels: Sequence[tuple[str, list[tuple[str, str, np.ndarray | None, np.ndarray]]]], *, class_names: Sequence[str], title: str
) -> bytes:
    """Panels of (title, [(method, label, shared per class [C] or None, total per class [C]), ...]):
    grouped bars in the method colours, shared PIEs strong and unique ones light (:func:`shared_unique_bars`)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.5, 5.8 * len(panels)), 4.4), squeeze=False)
    for ax, (name, bars) in zip(axes[0], panels):
        shared_unique_bars(ax, bars, class_names)
        ax.set_xlabel("true class")
        ax.set_ylabel("PIEs")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def pie_bar_figures(study: Study, pies: dict[Setting, SettingPies]) -> FigureSet:
    """Per-class PIE bars, shared vs unique between methods at the same sparsity (paper Figs 4/7)."""
    out = FigureSet()
    shared_of = shared_with_other_methods(pies)
    groups: dict[tuple[str, str], dict[float, list[SettingPies]]] = {}
    for (dataset, pruning, sparsity), members in same_cell_groups(pies).items():
        groups.setdefault((dataset, pruning), {})[sparsity] = members
    for (dataset, pruning), by_sparsity in sorted(groups.items(), key=lambda kv: (kv[0][0], _pruning_key(kv[0][1]))):
        panels = []
        c = max(r.num_classes for members in by_sparsity.values() for r in members)
        names, source = class_labels(study, dataset, c)
        alone = []
        for sparsity in sorted(by_sparsity):
            bars: list[tuple[str, str, np.ndarray | None, np.ndarray]] = []
            for r in by_sparsity[sparsity]:
                shared = shared_of[r.setting]
                shared_c = None if shared is None else per_class_counts(shared, r.labels, r.num_classes)
                bars.append((r.setting.method, f"{method_name(r.setting.method)} ({r.count}, n={r.n_dense}/{r.n_pruned})", shared_c, r.per_class))
                if shared is None:
                    alone.append(method_name(r.setting.method))
            panels.append((f"{pruning_name(pruning)} {round(sparsity * 100)}%", bars))
        out.figures.append(
            Figure(
                name=f"pies_per_class_{dataset}_{pruning}.png",
                title=f"PIEs per class, {dataset} · {pruning_name(pruning)}",
                how=(
                    "PIEs of the set of all models counted by true class, one bar per method in its colour; strong = also a "
                    "PIE of the other method(s) pruned with the same schedule to the same sparsity (shared), light = only "
                    "this method's (the paper's Figure 4 convention); n = dense/pruned models"
                    + (f"; no other method pruned like {', '.join(sorted(set(alone)))}: all its PIEs are its own (light)" if alone else "")
                    + f"; classes: {source}."
                ),
                png=pie_bars_png(panels, class_names=names, title=f"PIEs per class — {dataset} · {pruning_name(pruning)}"),
            )
        )
    return out


__all__ = [
    "FIGURE3_SPARSITY",
    "FIGURE6_SPARSITY",
    "SCATTER_METRICS",
    "figure3_figures",
    "figure6_figures",
    "gallery_png",
    "pie_bar_figures",
    "pie_bars_png",
    "scatter_figures",
    "scatter_png",
]
