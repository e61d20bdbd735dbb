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

from analysis.cell_figures import (
    FIGURE3_SPARSITY,
    SCATTER_METRICS,
    figure3_figures,
    figure6_figures,
    gallery_png,
    pie_bar_figures,
    pie_bars_png,
    scatter_figures,
    scatter_png,
)
from analysis.figure_base import Figure, FigureSet
from analysis.pies import SettingPies
from analysis.runs import Setting, Study
from analysis.umap_grid import REPRESENTATIONS_FILE, UMAP_FILE, umap_figures, umap_grid_png


def all_figures(
    study: Study, pies: dict[Setting, SettingPies], *, umap_samples: int = 2000, gallery_images: int = 16
) -> FigureSet:
    """Every figure of the report, in report order, plus the list of what could not be drawn."""
    result = FigureSet()
    parts = (
        figure3_figures(study, pies), scatter_figures(study, pies), figure6_figures(study, pies, images=gallery_images),
        pie_bar_figures(study, pies), umap_figures(study, samples=umap_samples),
    )  # fmt: skip
    for part in parts:
        result.figures += part.figures
        result.missing += part.missing
    return result


__all__ = [
    "FIGURE3_SPARSITY",
    "Figure",
    "FigureSet",
    "REPRESENTATIONS_FILE",
    "SCATTER_METRICS",
    "UMAP_FILE",
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
