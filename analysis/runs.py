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

import glob
import json
import math
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.run_folder import COMPLETE, DENSE, PER_SAMPLE_TEST, RUN_JSON, WANDB_DIR, method_name, pruning_name

PER_SAMPLE_FILE = PER_SAMPLE_TEST
REQUIRED_ARRAYS = ("index", "label", "pred")
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
#: what can go wrong reading a per-sample file (np.load of a truncated or foreign file)
_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)



class AnalysisError(ValueError):
    """Bad input to ``analyze``: one line naming what is wrong and where; exit code 2."""


@dataclass(frozen=True, order=True)
class Setting:
    """One cell of the study: (dataset, method, pruning schedule, target sparsity in [0, 1))."""

    dataset: str
    method: str
    pruning: str
    sparsity: float

    @property
    def is_dense(self) -> bool:
        return self.pruning == DENSE

    @property
    def dense(self) -> Setting:
        """The dense setting this one is compared against (same dataset and method)."""
        return Setting(self.dataset, self.method, DENSE, 0.0)

    @property
    def percent(self) -> int:
        return int(round(self.sparsity * 100))

    def label(self, *, dataset: bool = True) -> str:
        """``synthetic · Sup · GMP 50%`` (``Sup · dense`` for the dense setting)."""
        what = f"{method_name(self.method)} · " + (
            "dense" if self.is_dense else f"{pruning_name(self.pruning)} {self.percent}%"
        )
        return f"{self.dataset} · {what}" if dataset else what

    def slug(self) -> str:
        """File-name friendly ``synthetic_sup_gmp_50``."""
        return f"{self.dataset}_{self.method}_{self.pruning}_{self.percent}"


@dataclass
class Run:
    """One run folder: its ``run.json`` summary and its per-sample test arrays."""

    path: Path
    summary: dict[str, Any]
    arrays: dict[str, np.ndarray]
    setting: Setting

    @property
    def seed(self) -> int | None:
        seed = self.summary.get("seed")
        return int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None

    @property
    def n_samples(self) -> int:
        return int(len(self.arrays["index"]))

    @property
    def accuracy(self) -> float:
        """Test accuracy in %, from the per-sample predictions (one row per test image)."""
        return float(np.mean(self.arrays["pred"] == self.arrays["label"]) * 100.0)

    def has(self, name: str) -> bool:
        return name in self.arrays

    @property
    def status(self) -> str | None:
        status = self.summary.get("status")
        return str(status) if status is not None else None

    @property
    def parent(self) -> dict[str, Any] | None:
        """``parent_run`` of a One-Shot child (``path``, ``seed``, ...), None otherwise."""
        parent = self.summary.get("parent_run")
        return parent if isinstance(parent, dict) and parent.get("path") else None


@dataclass
class Population:
    """The runs of one :class:`Setting`, sorted by (seed, folder)."""

    setting: Setting
    runs: list[Run] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def index(self) -> np.ndarray:
        return self.runs[0].arrays["index"]

    @property
    def labels(self) -> np.ndarray:
        return self.runs[0].arrays["label"]

    @property
    def num_classes(self) -> int:
        declared = [r.summary.get("num_classes") for r in self.runs if isinstance(r.summary.get("num_classes"), int)]
        observed = max(int(r.arrays["label"].max()) for r in self.runs) + 1
        observed = max(observed, max(int(r.arrays["pred"].max()) for r in self.runs) + 1)
        return max([observed, *declared])

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]

    def accuracies(self) -> np.ndarray:
        """Per-model test accuracy in % ``[models]``."""
        return np.array([r.accuracy for r in self.runs], dtype=np.float64)

    def preds(self) -> np.ndarray:
        """Predicted classes ``[models, N]``."""
        return np.stack([r.arrays["pred"].astype(np.int64) for r in self.runs])

    def stack(self, name: str, *, first: int | None = None) -> tuple[np.ndarray, int] | None:
        """``(values [models_with_it, N] float64, models_with_it)`` of a per-sample array, or None if no run has it.

        ``first``: use only the first ``first`` runs (sorted by seed), as Table 6 does for ``pd_score``.
        """
        runs = self.runs if first is None else self.runs[:first]
        rows = [r.arrays[name].astype(np.float64) for r in runs if r.has(name)]
        if not rows:
            return None
        return np.stack(rows), len(rows)

    def first_seeds(self, count: int) -> list[int | None]:
        """Seeds of the first ``count`` runs (the models Table 6 averages)."""
        return [r.seed for r in self.runs[:count]]


# ---------------------------------------------------------------------------------------------
# finding run folders
# ---------------------------------------------------------------------------------------------
def _runs_below(path: Path) -> list[Path]:
    if path.is_file():
        return [path.parent] if path.name == RUN_JSON else []
    if (path / RUN_JSON).is_file():
        return [path]
    if path.is_dir():
        return sorted(p.parent for p in path.rglob(RUN_JSON) if WANDB_DIR not in p.parent.parts)
    return []


def find_run_dirs(patterns: Sequence[str]) -> list[Path]:
    """Run folders named by ``patterns`` (folders, ``run.json`` files or globs; ``**`` recurses).

    A pattern may name a run folder, a folder of run folders (searched recursively for
    ``run.json``), or a glob of either. The result is de-duplicated and sorted.

    Raises:
        AnalysisError: naming every pattern that matches no run folder.
    """
    if not patterns:
        raise AnalysisError("--runs needs at least one run folder or glob")
    found: dict[Path, None] = {}
    empty: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        dirs = [d for m in matches for d in _runs_below(Path(m))]
        if not dirs:
            empty.append(pattern)
        for d in dirs:
            found[d.resolve()] = None
    if empty:
        names = ", ".join(repr(p) for p in empty)
        raise AnalysisError(f"--runs {names} matches no run folder (no run.json at or below it)")
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def _setting_of(summary: dict[str, Any]) -> Setting:
    pruning = summary.get("pruning")
    target = summary.get("target_sparsity")
    sparsity = float(target) if isinstance(target, (int, float)) else 0.0
    if not pruning or sparsity == 0.0:
        return Setting(str(summary["dataset"]), str(summary["method"]), DENSE, 0.0)
    return Setting(str(summary["dataset"]), str(summary["method"]), str(pruning), round(sparsity, 4))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


@dataclass(frozen=True)
class Problem:
    """Why a run is not (fully) analysable: its folder, a short reason, and whether it could be read at all."""

    path: Path
    what: str
    readable: bool = True


def _short(text: Any, limit: int = 90) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def load_runs(paths: Iterable[Path], *, show: Any = str) -> tuple[list[Run], list[Problem], list[Path]]:
    """Read ``run.json`` + ``per_sample/test.npz`` of every folder.

    Args:
        paths: run folders.
        show: how a folder is named in messages (default ``str``).

    Returns:
        ``(runs, unreadable, no_file)``: the runs read; a :class:`Problem` (``readable=False``) per
        unreadable or truncated per-sample file; the folders without a per-sample file.

    Raises:
        AnalysisError: listing every folder whose ``run.json`` is unreadable or has no dataset/method.
    """
    runs: list[Run] = []
    bad_json: list[str] = []
    no_file: list[Path] = []
    unreadable: list[Problem] = []
    for path in paths:
        try:
            summary = json.loads((path / RUN_JSON).read_text())
            if not isinstance(summary, dict) or "dataset" not in summary or "method" not in summary:
                raise ValueError("no dataset/method")
        except (OSError, ValueError):
            bad_json.append(show(path))
            continue
        npz = path / PER_SAMPLE_FILE
        if not npz.is_file():
            no_file.append(path)
            continue
        try:
            arrays = _read_npz(npz)
        except _NPZ_ERRORS as err:
            unreadable.append(Problem(path, f"{PER_SAMPLE_FILE} unreadable or truncated: {type(err).__name__}", readable=False))
            continue
        missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
        rows = {len(v) for v in arrays.values() if np.ndim(v) >= 1}
        if missing or len(rows) != 1 or not len(arrays["index"]):
            why = f"no {'/'.join(missing)}" if missing else "arrays of different lengths (truncated?) or empty"
            unreadable.append(Problem(path, f"{PER_SAMPLE_FILE} unusable: {why}", readable=False))
            continue
        runs.append(Run(path=path, summary=summary, arrays=arrays, setting=_setting_of(summary)))
    if bad_json:
        raise AnalysisError(
            f"{len(bad_json)} run folder(s) have no readable run.json with 'dataset' and 'method': {', '.join(bad_json)}"
        )
    return runs, unreadable, no_file


def _status_text(summary: dict[str, Any] | None) -> str:
    summary = summary or {}
    status = summary.get("status")
    if status is None:
        return "no status in run.json (made before the run-status contract)"
    reason = summary.get("status_reason")
    return f"status {status}" + (f": {_short(reason)}" if reason else "")


def no_file_error(no_file: Sequence[Path], *, show: Any = str) -> AnalysisError:
    """The one-line error for run folders without a per-sample file (their status, when not complete)."""

    def name(path: Path) -> str:
        try:
            summary = json.loads((path / RUN_JSON).read_text())
        except (OSError, ValueError):
            summary = None
        status = summary.get("status") if isinstance(summary, dict) else None
        return show(path) if status == COMPLETE else f"{show(path)} ({_status_text(summary if isinstance(summary, dict) else None)})"

    return AnalysisError(
        f"{len(no_file)} run folder(s) have no per-sample file {PER_SAMPLE_FILE} (train with the "
        f"callbacks.metrics.PerSamplePredictions callback and let the test stage finish): {', '.join(name(p) for p in no_file)}"
    )


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
    """Everything that makes a readable run half-done (module docstring), one :class:`Problem` per run and reason."""
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
    "DENSE",
    "PD_MODELS",
    "PER_SAMPLE_FILE",
    "Population",
    "Problem",
    "Run",
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
    "population_warnings",
    "pruning_name",
]
