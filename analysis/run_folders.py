"""Run folders: find them, read ``run.json`` + ``per_sample/test.npz``, and the records they become.

A run folder (DESIGN.md "How data flows", step 5) holds ``run.json`` (method, dataset, seed,
``pruning``/``target_sparsity``/``achieved_sparsity`` when pruned, ``test_acc``) and
``per_sample/test.npz`` (``index``, ``label``, ``pred``; optional ``q_score``, ``z_score``,
``l1_norm``, ``pd_score``, ``logits``, ``features``; one row per test sample, sorted by index).

A run without a ``pruning`` entry, or pruned to a target of 0, is *dense* (``pruning="dense"``,
sparsity 0). The checks on what is read, and how bad input is reported, are described in
:mod:`analysis.runs`; grouping runs into populations and the checks across runs are in
:mod:`analysis.populations`.
"""

from __future__ import annotations

import glob
import json
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.run_folder import COMPLETE, DENSE, PER_SAMPLE_TEST, RUN_JSON, WANDB_DIR, method_name, pruning_name

PER_SAMPLE_FILE = PER_SAMPLE_TEST
REQUIRED_ARRAYS = ("index", "label", "pred")
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


__all__ = [
    "AnalysisError",
    "COMPLETE",
    "DENSE",
    "PER_SAMPLE_FILE",
    "Population",
    "Problem",
    "REQUIRED_ARRAYS",
    "Run",
    "Setting",
    "find_run_dirs",
    "load_runs",
    "method_name",
    "no_file_error",
    "pruning_name",
]
