"""The paper's tables from populations: Markdown + CSV under ``<out>/tables/``.

* ``table1``   — test accuracy (%) mean ± std over the models of each population, and the number of
  PIEs per (method, pruning schedule, sparsity), with the paper's Table 1 beside it on CIFAR-10.
* ``table4_5`` — mean ± std of Q-Score, Z-score and ‖ĥ‖₁ (paper Tables 4/5).
* ``table6``   — prediction depth of PIEs vs non-PIEs (paper Table 6).
* ``pies_shared``, ``pies_per_class`` — PIEs shared between two methods at the same setting vs unique,
  and the per-class PIE distribution (the numbers behind the PIE bar figures).
* ``populations`` — what was aggregated: models, seeds, status, epochs, backbone, achieved sparsity.
* ``pies_uncertainty`` — per pruned cell: the PIEs of ``h`` pruned vs ``h`` dense models beside the noise
  floor of ``h`` vs ``h`` dense models, the excess with its interval over models, and the PIE set's count.
* ``oneshot_pairs`` — One-Shot children vs their dense parents: the paired accuracy change.

Intervals are 95% intervals over models: the jackknife over models with a Student-t quantile
(:func:`analysis.intervals.over_models`; :mod:`analysis.uncertainty`). Every PIE count compared with a
noise floor is at the floor's population size.

Every cell names how many models it aggregates (``n=``). Two kinds of std appear, and each table
says which: **over models** (Table 1 accuracy; sample std, ddof=1, undefined for one model) and
**over test samples** of the per-sample population mean (Tables 4/5 and 6; ddof=0, as the authors' code).
The Markdown has one section per dataset; the CSV is long-form with a ``dataset`` column.

Every builder computes its numbers (and looks up the paper) once, into long-form records — one
dict per CSV row, plus ``_``-prefixed values only the Markdown needs — and :func:`_render` makes
both outputs from those records, so the Markdown and the CSV cannot disagree. "Shared with other
methods" has one definition, :func:`analysis.pies.same_cell_groups`.

The builders live by table family in ``analysis.tables_table1`` (Table 1), ``analysis.tables_uncertainty``
(``pies_uncertainty``, ``oneshot_pairs``), ``analysis.tables_scores`` (Tables 4/5 and 6), ``analysis.tables_pies``
(``pies_shared``, ``pies_per_class``) and ``analysis.tables_populations``, the renderer and the record helpers in
``analysis.tables_render``; this module gathers them (:func:`all_tables`) and exports the public builders (``__all__``).
"""

from __future__ import annotations

from typing import Any

from analysis.pairs import CellPairs
from analysis.pies import SettingPies, SharedPies
from analysis.runs import Setting, Study
from analysis.tables_pies import pies_per_class, pies_shared
from analysis.tables_populations import populations
from analysis.tables_render import Section, Table, fmt, model_mean_std, sample_mean_std
from analysis.tables_scores import table4_5, table6
from analysis.tables_table1 import table1
from analysis.tables_uncertainty import oneshot_pairs, pies_uncertainty
from analysis.uncertainty import StudyStats


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
    tables += [table4_5(study, stats), table6(study, pies, stats), pies_shared(shared, stats), pies_per_class(pies, study)]
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
