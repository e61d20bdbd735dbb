"""Runs -> populations of models, and the checks across runs before any number is computed.

A **population** is the set of runs sharing a :class:`~analysis.run_folders.Setting` = (dataset,
method, pruning schedule, target sparsity); the dense population of a method is the reference of
all its pruning schedules, as in the paper's Table 1. What is refused and what is only warned about
is listed in the docstring of :mod:`analysis.runs`.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.run_folders import PER_SAMPLE_FILE, AnalysisError, Population, Problem, Run, Setting, _status_text
from common.run_folder import COMPLETE, method_name

#: tolerance between target and achieved sparsity before a run is called incomplete
SPARSITY_TOLERANCE = 0.01
#: run.json keys that should agree inside a population (warned about when they do not)
CONSISTENT_KEYS = (
    "epochs", "max_epochs", "backbone", "encoder_parameters", "pruning_scope", "pruning_granularity",
    "pruning_targets", "num_classes", "oneshot_mode",
)  # fmt: skip
#: Table 6 averages prediction depth over this many models per cell, as the paper (REFERENCE §3)
PD_MODELS = 5
#: per-sample columns read only from the first ``pd_models`` seeds of a population
PD_COLUMNS = ("pd_score",)


# ---------------------------------------------------------------------------------------------
# grouping and checks
# ---------------------------------------------------------------------------------------------
def check_test_sets(runs: Sequence[Run], *, show: Any = str) -> None:
    """All runs of one dataset must share one test set: equal ``index`` arrays (size and order) and labels.

    The reference test set is the one most runs have; the message names every run that differs.
    """
    by_dataset: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_dataset[run.setting.dataset].append(run)
    problems: list[str] = []
    for dataset, members in sorted(by_dataset.items()):
        keys = [(r.arrays["index"].tobytes(), r.arrays["label"].tobytes()) for r in members]
        reference_key, count = Counter(keys).most_common(1)[0]
        reference = members[keys.index(reference_key)]
        ref_index = reference.arrays["index"]
        for run, key in zip(members, keys):
            if key == reference_key:
                continue
            index = run.arrays["index"]
            if len(index) != len(ref_index):
                why = f"{len(index)} samples"
            elif not np.array_equal(index, ref_index):
                why = "different sample indices/order"
            else:
                why = "different labels for the same indices"
            problems.append(f"{show(run.path)} ({why})")
        if len(problems):
            raise AnalysisError(
                f"runs of dataset {dataset!r} do not share one test set ({count} of {len(members)} runs have "
                f"{len(ref_index)} samples, e.g. {show(reference.path)}); differing: {', '.join(problems)}"
            )


def group_runs(runs: Sequence[Run]) -> dict[Setting, Population]:
    """Populations keyed by setting (sorted), runs in each sorted by (seed, folder)."""
    groups: dict[Setting, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.setting].append(run)
    out: dict[Setting, Population] = {}
    for setting in sorted(groups):
        members = sorted(groups[setting], key=lambda r: (r.seed is None, r.seed or 0, str(r.path)))
        out[setting] = Population(setting, members)
    return out


def check_population_sizes(populations: dict[Setting, Population], *, allow_single: bool, show: Any = str) -> list[str]:
    """Refuse (or, with ``allow_single``, warn about) populations of one model.

    Table 1 reports accuracy as mean ± std over the models of a population; one model has no std.
    """
    single = [p for p in populations.values() if p.n < 2]
    if not single:
        return []
    names = "; ".join(f"{p.setting.label()}: {show(p.runs[0].path)}" for p in single)
    if not allow_single:
        raise AnalysisError(
            f"{len(single)} population(s) have only one model, so the accuracy std over models is undefined "
            f"({names}); add runs with other seeds, or pass --allow-single to report them with n=1 and std '–'"
        )
    return [f"population(s) of one model, reported with n=1 and std '–': {names}"]


def _achieved(summary: dict[str, Any]) -> float | None:
    """The sparsity the schedule reached over the tensors it pruned (``achieved_sparsity_targets``,
    else ``achieved_sparsity``: the encoder's Conv2d/Linear weights)."""
    for key in ("achieved_sparsity_targets", "achieved_sparsity"):
        value = summary.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            return float(value)
    return None


def completeness_problems(populations: dict[Setting, Population], *, pd_models: int = PD_MODELS) -> list[Problem]:
    """Everything that makes a readable run half-done (:mod:`analysis.runs` docstring), one :class:`Problem` per run and reason."""
    problems: list[Problem] = []
    for setting, pop in populations.items():
        label = setting.label()
        columns: Counter[str] = Counter(name for r in pop.runs for name in r.arrays)
        for i, run in enumerate(pop.runs):
            if run.status != COMPLETE:
                problems.append(Problem(run.path, _status_text(run.summary)))
            if not setting.is_dense:
                achieved = _achieved(run.summary)
                if achieved is None:
                    problems.append(Problem(run.path, "pruned, but run.json records no achieved sparsity"))
                elif abs(achieved - setting.sparsity) > SPARSITY_TOLERANCE:
                    problems.append(
                        Problem(run.path, f"achieved sparsity {achieved:.3f}, target {setting.sparsity:g} (schedule did not finish?)")
                    )
            for name in sorted(columns):
                if run.has(name):
                    continue
                if name in PD_COLUMNS:
                    if i < pd_models:
                        problems.append(
                            Problem(run.path, f"{PER_SAMPLE_FILE} has no {name}, which Table 6 needs from the first "
                                              f"{pd_models} seeds of {label} ({columns[name]} of {pop.n} runs have it)")
                        )  # fmt: skip
                    continue
                problems.append(
                    Problem(run.path, f"{PER_SAMPLE_FILE} has no {name}, which {columns[name]} other run(s) of {label} have")
                )
    return problems


def incomplete_error(problems: Sequence[Problem], *, show: Any = str) -> AnalysisError:
    """One line naming every refused run folder and why."""
    folders = {p.path for p in problems}
    detail = "; ".join(f"{show(p.path)} ({p.what})" for p in problems)
    return AnalysisError(
        f"{len(folders)} run(s) are not complete or not usable, so nothing was analysed: {detail}; "
        "finish them (python cli.py fit ... --run.resume auto), leave them out of --runs, or pass --allow-incomplete "
        "to analyse them anyway"
    )


def population_warnings(populations: dict[Setting, Population], *, show: Any = str) -> list[str]:
    """Warnings about mixed runs that do not stop the analysis."""
    warnings: list[str] = []
    for setting, pop in populations.items():
        label = setting.label()
        if not setting.is_dense and setting.dense not in populations:
            warnings.append(f"{label}: no dense population of {setting.dataset} · {method_name(setting.method)}; its PIEs are left empty")
        # mixed training setups inside one population
        for key in CONSISTENT_KEYS:
            values = {json.dumps(r.summary.get(key), sort_keys=True) for r in pop.runs}
            if len(values) > 1:
                detail = ", ".join(f"{show(r.path)} ({r.summary.get(key)})" for r in pop.runs)
                warnings.append(f"{label}: runs mix {key}: {detail}")
        seeds = [s for s in pop.seeds if s is not None]
        repeated = sorted(s for s, c in Counter(seeds).items() if c > 1)
        if repeated:
            detail = ", ".join(show(r.path) for r in pop.runs if r.seed in repeated)
            warnings.append(f"{label}: seed(s) {repeated} appear more than once (not independent models): {detail}")
        no_test = [show(r.path) for r in pop.runs if "test_acc" not in r.summary]
        if no_test:
            warnings.append(f"{label}: run.json has no test_acc (test stage did not finish?): {', '.join(no_test)}")
        disagree = [
            f"{show(r.path)} (run.json {100 * float(r.summary['test_acc']):.2f}%, per-sample {r.accuracy:.2f}%)"
            for r in pop.runs
            if isinstance(r.summary.get("test_acc"), (int, float))
            and math.isfinite(float(r.summary["test_acc"]))
            and abs(100 * float(r.summary["test_acc"]) - r.accuracy) > 0.05
        ]
        if disagree:
            warnings.append(
                f"{label}: test_acc in run.json differs from the per-sample file (the per-sample value is used): "
                f"{', '.join(disagree)}"
            )
    return warnings


__all__ = [
    "CONSISTENT_KEYS",
    "PD_COLUMNS",
    "PD_MODELS",
    "SPARSITY_TOLERANCE",
    "check_population_sizes",
    "check_test_sets",
    "completeness_problems",
    "group_runs",
    "incomplete_error",
    "population_warnings",
]
