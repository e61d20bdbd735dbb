"""Run folders -> populations of models, checked before any number is computed.

A run folder (DESIGN.md "How data flows", step 5) holds ``run.json`` (method, dataset, seed,
``pruning``/``target_sparsity``/``achieved_sparsity`` when pruned, ``test_acc``) and
``per_sample/test.npz`` (``index``, ``label``, ``pred``; optional ``q_score``, ``z_score``,
``l1_norm``, ``pd_score``, ``logits``, ``features``; one row per test sample, sorted by index).

A **population** is the set of runs sharing a :class:`Setting` = (dataset, method, pruning schedule,
target sparsity). A run without a ``pruning`` entry, or pruned to a target of 0, is *dense*
(``pruning="dense"``, sparsity 0): the dense population of a method is the reference of all its
pruning schedules, as in the paper's Table 1.

Checks (bad input raises :class:`AnalysisError`, printed by ``analysis.cli`` as one ``error:`` line):

* a ``--runs`` pattern that matches no run folder (no ``run.json`` at or below it);
* a run folder without ``per_sample/test.npz`` or without its ``index``/``label``/``pred`` arrays,
  an unreadable ``run.json`` or one without ``dataset``/``method``;
* runs of one dataset that do not share one test set (same size, same index order, same labels):
  PIEs compare predictions sample by sample, so dense and pruned runs must see the same images;
* a population of one model, when mean ± std over models is asked for (Table 1 accuracy), unless
  ``allow_single`` (then its std is reported as "–" and its cell says n=1).

**Nothing half-done is analysed.** These runs are refused together, in one error line that names
every folder and why (:func:`completeness_problems`), unless ``allow_incomplete``:

* ``status`` in ``run.json`` is not ``complete`` (``running``, ``incomplete``, ``failed``,
  ``interrupted``; runs made before the status contract have none) — its ``status_reason`` is shown;
* a pruned run whose achieved sparsity (``achieved_sparsity_targets``, over the tensors the
  schedule pruned, else ``achieved_sparsity``) misses its target by more than
  :data:`SPARSITY_TOLERANCE`, or that recorded none;
* an unreadable or truncated ``per_sample/test.npz`` (not a zip, a member cut short, arrays of
  different lengths);
* a per-sample file that lacks a column other runs of its population have (a run killed during its
  Q-Score callback has no ``q_score``; averaging fewer models would be silent). ``pd_score`` is read
  only from the first ``pd_models`` seeds of a population (Table 6 averages PD over 5 models, as the
  paper), so only those must have it.

With ``allow_incomplete`` each problem becomes one warning; runs that can be read are included
(the report opens with a banner listing them), unreadable ones are left out. A run folder without
a per-sample file is refused on its own line (or, with ``allow_incomplete``, left out with a warning).

Mixed runs that still allow a computation are named in warnings: populations mixing
epochs/backbones/encoder sizes/One-Shot modes, repeated seeds, a ``run.json`` without ``test_acc``
or whose ``test_acc`` disagrees with the per-sample file, a pruned population without a dense one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from analysis.populations import (
    CONSISTENT_KEYS,
    PD_COLUMNS,
    PD_MODELS,
    SPARSITY_TOLERANCE,
    check_population_sizes,
    check_test_sets,
    completeness_problems,
    group_runs,
    incomplete_error,
    population_warnings,
)
from analysis.run_folders import (
    PER_SAMPLE_FILE,
    REQUIRED_ARRAYS,
    AnalysisError,
    Population,
    Problem,
    Run,
    Setting,
    find_run_dirs,
    load_runs,
    no_file_error,
)
from common.run_folder import COMPLETE, DENSE, method_name, pruning_name


@dataclass
class Study:
    """Everything ``analyze`` reads: the runs, their populations and the warnings about them.

    ``included_anyway``: problems of runs analysed only because of ``allow_incomplete`` (the report's
    banner); ``left_out``: runs that could not be read at all and were skipped under it.
    """

    runs: list[Run]
    populations: dict[Setting, Population]
    warnings: list[str]
    included_anyway: list[Problem] = field(default_factory=list)
    left_out: list[Problem] = field(default_factory=list)
    pd_models: int = PD_MODELS
    #: per dataset, (class names or None, where from): filled on first use by analysis.images.class_labels
    class_names: dict[str, tuple[list[str] | None, str]] = field(default_factory=dict)

    @property
    def datasets(self) -> list[str]:
        return sorted({s.dataset for s in self.populations})

    def of(self, dataset: str) -> dict[Setting, Population]:
        return {s: p for s, p in self.populations.items() if s.dataset == dataset}


def load_study(
    patterns: Sequence[str],
    *,
    allow_single: bool = False,
    allow_incomplete: bool = False,
    pd_models: int = PD_MODELS,
    show: Any = str,
) -> Study:
    """Find, load, check and group the runs named by ``patterns`` (see the module docstring).

    Raises:
        AnalysisError: one line for the first kind of bad input found (no run folder, unreadable
            run.json, no per-sample file, half-done runs, mismatched test sets, a population of one).
    """
    if pd_models < 1:
        raise AnalysisError(f"--pd-models {pd_models} is out of range; it must be >= 1")
    paths = find_run_dirs(patterns)
    runs, unreadable, no_file = load_runs(paths, show=show)
    warnings: list[str] = []
    left_out = list(unreadable)
    if no_file:
        if not allow_incomplete:
            raise no_file_error(no_file, show=show)
        left_out += [Problem(p, f"no {PER_SAMPLE_FILE}", readable=False) for p in no_file]
    if not runs:
        raise AnalysisError(
            f"no run could be read: {'; '.join(f'{show(p.path)} ({p.what})' for p in left_out)}"
        )
    check_test_sets(runs, show=show)
    populations = group_runs(runs)
    problems = [*unreadable, *completeness_problems(populations, pd_models=pd_models)]
    if problems and not allow_incomplete:
        raise incomplete_error(problems, show=show)
    included = [p for p in problems if p.readable]
    for problem in [*left_out, *included]:
        verb = "left out" if not problem.readable else "included anyway (--allow-incomplete)"
        warnings.append(f"{show(problem.path)}: {problem.what}; {verb}")
    warnings += check_population_sizes(populations, allow_single=allow_single, show=show)
    warnings += population_warnings(populations, show=show)
    return Study(
        runs=runs, populations=populations, warnings=warnings, included_anyway=included, left_out=left_out,
        pd_models=pd_models,
    )  # fmt: skip


__all__ = [
    "AnalysisError",
    "COMPLETE",
    "CONSISTENT_KEYS",
    "DENSE",
    "PD_COLUMNS",
    "PD_MODELS",
    "PER_SAMPLE_FILE",
    "Population",
    "Problem",
    "REQUIRED_ARRAYS",
    "Run",
    "SPARSITY_TOLERANCE",
    "Setting",
    "Study",
    "check_population_sizes",
    "check_test_sets",
    "completeness_problems",
    "incomplete_error",
    "find_run_dirs",
    "group_runs",
    "load_runs",
    "load_study",
    "method_name",
    "no_file_error",
    "population_warnings",
    "pruning_name",
]
