"""What a plan's remaining runs will cost, printed by ``population --dry-run``.

Per cell: the runs left, their epochs left (``trainer.max_epochs`` of each run minus the epochs a
resumable run has trained), the seconds per epoch and the hours. Seconds per epoch come from the
cell's complete runs (``run.json``: ``fit_seconds / epochs_trained`` — validation, checkpoints and
a two-phase run's mix of epochs included, as its remaining runs will have them), else from a
calibration (``--calibrate N``: N optimiser steps of one of the cell's runs, timed, times the run's
planned steps; start-up included, so a larger N is closer), else the cell is "unknown". The total
is in run-hours and, divided by the runs at a time, in wall-clock hours on the devices the runner
would use — with the per-epoch times as they were measured (runs that shared a GPU were slower each).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from callbacks.run_summary import read_run_json
from population.devices import DeviceSlots
from population.execute import REPO, Job
from population.plan import PlanError


@dataclass
class CellCost:
    cell: str
    runs_left: int
    epochs_left: int
    seconds_per_epoch: float | None
    source: str

    @property
    def hours(self) -> float | None:
        return None if self.seconds_per_epoch is None else self.epochs_left * self.seconds_per_epoch / 3600.0


def measured_seconds_per_epoch(jobs: Sequence[Job]) -> tuple[float, int] | None:
    """Mean ``fit_seconds / epochs_trained`` of the complete runs among ``jobs`` and how many there are."""
    rates = []
    for job in jobs:
        if job.status != "complete":
            continue
        summary = read_run_json(job.folder) or {}
        seconds, epochs = summary.get("fit_seconds"), summary.get("epochs_trained")
        if isinstance(seconds, (int, float)) and isinstance(epochs, int) and epochs > 0:
            rates.append(float(seconds) / epochs)
    return (sum(rates) / len(rates), len(rates)) if rates else None


def calibrate(job: Job, steps: int) -> float:
    """Seconds per epoch of ``job``'s run from ``steps`` timed optimiser steps (a throw-away run folder).

    Raises:
        PlanError: the calibration run failed (its last output line is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        folder = Path(tmp) / "run"
        args = [*job.run.args, "--run.dir", str(folder), "--run.resume", "never", "--run.wandb_mode", "disabled",
                "--test_after_fit", "false", "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
        done = subprocess.run([sys.executable, str(REPO / "cli.py"), "fit", *args], capture_output=True, text=True, check=False)
        summary = read_run_json(folder) or {}
        seconds, planned, trained = summary.get("fit_seconds"), summary.get("planned_steps"), summary.get("steps_trained")
        if done.returncode != 0 or not isinstance(seconds, (int, float)) or not planned or not trained:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise PlanError(f"--calibrate: the calibration run of {job.run.label} failed ({last})")
        max_epochs = job.max_epochs or 1
        return float(seconds) / int(trained) * int(planned) / max_epochs


def cell_costs(jobs: Sequence[Job], calibrate_steps: int = 0) -> list[CellCost]:
    """One :class:`CellCost` per cell with runs left, in plan order."""
    cells: dict[str, list[Job]] = {}
    for job in jobs:
        cells.setdefault(job.run.cell, []).append(job)
    out = []
    for cell, members in cells.items():
        left = [j for j in members if j.status != "complete"]
        if not left:
            continue
        epochs = sum(j.epochs_left or 0 for j in left)
        measured = measured_seconds_per_epoch(members)
        if measured is not None:
            rate, source = measured[0], f"{measured[1]} complete run(s)"
        elif calibrate_steps:
            try:
                rate, source = calibrate(left[0], calibrate_steps), f"calibrated, {calibrate_steps} steps"
            except PlanError as err:
                rate, source = None, f"unknown: {err}"
        else:
            rate, source = None, "unknown: no complete run (--calibrate N times N steps)"
        out.append(CellCost(cell, len(left), epochs, rate, source))
    return out


def _hours(value: float) -> str:
    return f"{value:.1f} h" if value >= 0.1 else f"{value * 60:.1f} min"


def print_cost(jobs: Sequence[Job], slots: DeviceSlots, *, calibrate_steps: int = 0) -> None:
    """The dry run's cost table: per cell, then the total in run-hours and wall-clock hours."""
    costs = cell_costs(jobs, calibrate_steps)
    if not costs:
        print("cost: nothing left to run")
        return
    print(f"cost of the runs left ({slots.describe()}):")
    print(f"  {'cell':<24} {'runs':>5} {'epochs':>8} {'s/epoch':>9} {'hours':>9}  from")
    for c in costs:
        rate = f"{c.seconds_per_epoch:.2f}" if c.seconds_per_epoch is not None else "?"
        hours = _hours(c.hours) if c.hours is not None else "?"
        print(f"  {c.cell:<24} {c.runs_left:>5} {c.epochs_left:>8} {rate:>9} {hours:>9}  {c.source}")
    known = [c.hours for c in costs if c.hours is not None]
    unknown = [c.cell for c in costs if c.hours is None]
    total_epochs = sum(c.epochs_left for c in costs)
    if not known:
        print(f"  total: {total_epochs} epochs; hours unknown (no complete run of any cell left; --calibrate N)")
        return
    run_hours = sum(known)
    wall = run_hours / max(1, slots.capacity)
    tail = f"; not counted: {', '.join(unknown)} (no complete run)" if unknown else ""
    print(f"  total: {total_epochs} epochs, {_hours(run_hours)} of runs, about {_hours(wall)} wall-clock at "
          f"{slots.capacity} at a time{tail}")  # fmt: skip


__all__ = ["CellCost", "calibrate", "cell_costs", "measured_seconds_per_epoch", "print_cost"]
