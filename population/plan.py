"""A population plan: configs x sparsities x seeds, One-Shot children after their parents.

A plan is a YAML file::

    name: table1                        # shown in progress lines
    root: runs/table1                   # --run.root of every run (run folders: <root>/<group>/<name>-<hash>)
    seeds: [0, 1, 2]                    # or "0-29"
    args: [--config, configs/metrics/table6.yaml]   # appended to every run (optional)
    cells:
      sup_dense:   {config: configs/experiments/sup_dense.yaml}
      sup_gmp:     {config: configs/experiments/sup_gmp.yaml, sparsities: [0.3, 0.5, 0.7, 0.9]}
      sup_oneshot: {config: configs/experiments/sup_oneshot.yaml, sparsities: [0.9], parent: sup_dense}
      ...                               # each cell may add its own `args` and `seeds`

Every run is ``python cli.py fit --config <config> <plan args> <cell args>
[--pruning.init_args.final_sparsity s] --seed_everything n --run.root <root> --run.resume auto``,
and a child cell also gets ``--pruning.init_args.parent <root>/<parent cell's run.group>`` (the
One-Shot parent of the same seed is found there). ``--run.resume auto`` names each run folder by a
hash of its config — so a W&B sweep agent running the same command (the sweeps in configs/sweeps/
pass ``--run.resume=auto`` too) writes the same folder, and a run found complete is never trained
twice.

Pure data handling, no Lightning import: :func:`load_plan` validates (one-line
:class:`PlanError`), :func:`expand` lists the runs in an order where every parent cell comes first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class PlanError(ValueError):
    """A plan file that cannot be run: one line naming the key and what is allowed."""


@dataclass(frozen=True)
class Cell:
    name: str
    config: str
    sparsities: tuple[float | None, ...] = (None,)
    seeds: tuple[int, ...] = ()
    args: tuple[str, ...] = ()
    parent: str | None = None


@dataclass(frozen=True)
class PlannedRun:
    """One run of a plan: its cell, sparsity (None = dense), seed and CLI arguments (after ``fit``)."""

    cell: str
    sparsity: float | None
    seed: int
    args: tuple[str, ...]
    parent_cell: str | None = None

    @property
    def label(self) -> str:
        sparsity = "" if self.sparsity is None else f" {100 * self.sparsity:g}%"
        return f"{self.cell}{sparsity} seed {self.seed}"


@dataclass
class Plan:
    name: str
    root: str
    seeds: tuple[int, ...]
    args: tuple[str, ...]
    cells: dict[str, Cell] = field(default_factory=dict)
    path: Path | None = None


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", value):
        low, high = (int(v) for v in value.split("-"))
        if high < low:
            raise PlanError(f"{where}={value!r}: the range must go up, e.g. '0-29'")
        return tuple(range(low, high + 1))
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise PlanError(f"{where}={value!r} is not allowed; give a list of integers or a range like '0-29'")


def _args(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise PlanError(f"{where} must be a list of command-line arguments, e.g. [--trainer.max_epochs, 10]")


def _sparsities(value: Any, where: str) -> tuple[float | None, ...]:
    if value is None:
        return (None,)
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and 0 <= v < 1 for v in value):
        return tuple(float(v) for v in value)
    raise PlanError(f"{where}={value!r} is not allowed; give a list of sparsities in [0, 1)")


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file (see the module docstring)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise PlanError(f"--plan {str(path)!r} cannot be read ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise PlanError(f"--plan {str(path)!r} is not valid YAML{at}") from err
    if not isinstance(data, dict):
        raise PlanError(f"--plan {str(path)!r} must be a mapping with name, root, seeds and cells")
    unknown = sorted(set(data) - {"name", "root", "seeds", "args", "cells"})
    if unknown:
        raise PlanError(f"plan key {unknown[0]!r} is not allowed; the keys are name, root, seeds, args, cells")
    for key in ("root", "seeds", "cells"):
        if key not in data:
            raise PlanError(f"plan {str(path)!r} has no {key!r}")
    seeds = _seeds(data["seeds"], "seeds")
    plan = Plan(
        name=str(data.get("name") or path.stem), root=str(data["root"]), seeds=seeds,
        args=_args(data.get("args"), "args"), path=path,
    )  # fmt: skip
    cells = data["cells"]
    if not isinstance(cells, dict) or not cells:
        raise PlanError("cells must map cell names to {config: ..., sparsities: [...], parent: ...}")
    for name, spec in cells.items():
        where = f"cells.{name}"
        if not isinstance(spec, dict) or "config" not in spec:
            raise PlanError(f"{where} needs a config (the experiment YAML of that cell)")
        extra = sorted(set(spec) - {"config", "sparsities", "seeds", "args", "parent"})
        if extra:
            raise PlanError(f"{where}.{extra[0]} is not allowed; a cell has config, sparsities, seeds, args, parent")
        config = Path(str(spec["config"]))
        if not config.is_file():
            raise PlanError(f"{where}.config={str(config)!r} does not exist")
        plan.cells[str(name)] = Cell(
            name=str(name), config=str(config), sparsities=_sparsities(spec.get("sparsities"), f"{where}.sparsities"),
            seeds=_seeds(spec["seeds"], f"{where}.seeds") if "seeds" in spec else seeds,
            args=_args(spec.get("args"), f"{where}.args"), parent=spec.get("parent"),
        )  # fmt: skip
    for cell in plan.cells.values():
        if cell.parent is not None and cell.parent not in plan.cells:
            raise PlanError(f"cells.{cell.name}.parent={cell.parent!r} is not a cell of this plan; choose one of {', '.join(plan.cells)}")
        if cell.parent is not None and plan.cells[cell.parent].parent is not None:
            raise PlanError(f"cells.{cell.name}.parent={cell.parent!r} is itself a child; a parent must be a dense cell")
        if cell.parent is not None and not set(cell.seeds) <= set(plan.cells[cell.parent].seeds):
            raise PlanError(f"cells.{cell.name} has seeds its parent cell {cell.parent!r} does not train")
    return plan


def run_args(plan: Plan, cell: Cell, sparsity: float | None, seed: int, parent_dir: str | None = None) -> tuple[str, ...]:
    """The CLI arguments (after ``fit``) of one run."""
    args = ["--config", cell.config, *plan.args, *cell.args]
    if sparsity is not None:
        args += ["--pruning.init_args.final_sparsity", f"{sparsity:g}"]
    if parent_dir is not None:
        args += ["--pruning.init_args.parent", parent_dir]
    args += ["--seed_everything", str(seed), "--run.root", plan.root, "--run.resume", "auto"]
    return tuple(args)


def expand(plan: Plan, parent_dirs: dict[str, str] | None = None, *, only: set[str] | None = None) -> list[PlannedRun]:
    """Every run of ``plan``: parent cells first, then the others; within a stage by seed, then cell
    order, then sparsity. ``parent_dirs`` maps a parent cell to the folder holding its runs
    (``<root>/<its run.group>``); ``only`` restricts to those cells."""
    parent_dirs = parent_dirs or {}
    stages = [[c for c in plan.cells.values() if c.parent is None], [c for c in plan.cells.values() if c.parent is not None]]
    runs: list[PlannedRun] = []
    for stage in stages:
        seeds = sorted({s for c in stage for s in c.seeds})
        for seed in seeds:
            for cell in stage:
                if (only and cell.name not in only) or seed not in cell.seeds:
                    continue
                for sparsity in cell.sparsities:
                    parent = parent_dirs.get(cell.parent) if cell.parent else None
                    runs.append(PlannedRun(cell.name, sparsity, seed, run_args(plan, cell, sparsity, seed, parent), cell.parent))
    return runs


__all__ = ["Cell", "Plan", "PlanError", "PlannedRun", "expand", "load_plan", "run_args"]
