"""``python cli.py population --plan <yaml>``: run a population, resumably, with progress, an ETA and its cost.

The plain alternative to W&B sweeps (same commands, same run folders; see :mod:`population.plan`):

1. expand the plan into runs (parent cells first: One-Shot children after the dense runs they prune);
2. find each run's folder the way the CLI does (``--run.resume auto``: a hash of the config) and read
   its ``run.json``: a ``complete`` run is skipped, anything else is (re)started — ``--run.resume
   auto`` continues a killed run from its last checkpoint;
3. run the rest (:mod:`population.execute`): one after another, ``--jobs N`` at a time, or
   ``--devices 0,1,2,3 --runs-per-device K`` — K runs pinned to each GPU (``--devices auto``: every
   visible GPU); a child waits for its parent. Or submit them through submitit
   (:mod:`population.launch`): ``--launcher slurm`` as SLURM job arrays, ``--launcher local`` the
   same tasks on this machine.

``--dry-run`` prints each run's status and command and the projected cost (:mod:`population.cost`):
epochs left per cell and hours, from the per-epoch time of the plan's complete runs or of a few
timed steps (``--calibrate N``).

Stopping it at any moment (Ctrl-C, SIGTERM, a killed machine) loses at most the runs' time since
their last checkpoint: calling it again skips what is complete and resumes the rest. Exit status 0
when every run is complete, 1 when some failed (their logs are named), 2 for a bad plan or argument,
128 + the signal when stopped (143 SIGTERM, 130 Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from callbacks.run_summary import read_run_json
from common.errors import ConfigError
from population.cost import print_cost
from population.devices import DeviceSlots, parse_devices
from population.execute import REPO, Job, Runner
from population.launch import add_launcher_arguments, check_launcher_arguments, launch
from population.plan import Plan, PlanError, expand, load_plan


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"error: population: {message} (see python cli.py population --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python cli.py population",
        description="Run every run of a plan (configs x sparsities x seeds), skipping complete ones and resuming the rest.",
    )
    parser.add_argument("--plan", required=True, help="plan YAML (see population/plan.py)")
    parser.add_argument("--jobs", type=int, default=None, help="runs at a time without --devices (default 1)")
    parser.add_argument("--devices", default=None,
                        help="GPUs to pin runs to (CUDA_VISIBLE_DEVICES per run): 'auto' (every visible GPU) or e.g. 0,1,2,3")
    parser.add_argument("--runs-per-device", type=int, default=1, help="runs at a time on each GPU of --devices (default 1)")
    parser.add_argument("--only", default=None, help="comma-separated cells to run (default: all)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds to run (default: the plan's)")
    parser.add_argument("--dry-run", action="store_true", help="print each run's status and command, and the projected cost; run nothing")
    parser.add_argument("--calibrate", type=int, default=0, metavar="STEPS",
                        help="with --dry-run: time STEPS optimiser steps of one run of each cell with no complete run (default 0: off)")
    add_launcher_arguments(parser)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments appended to every run")
    return parser


def plan_jobs(plan: Plan, extra: list[str], only: set[str] | None) -> list[Job]:
    """Every run of ``plan`` (``only`` those cells) with its folder, status and epochs."""
    from training.target import run_dir_for, run_target_for  # the CLI's own parser decides every run folder

    if extra:
        plan.args = (*plan.args, *extra)
    parent_dirs = {}
    for cell in plan.cells.values():
        if cell.parent is not None and cell.parent not in parent_dirs:
            parent = plan.cells[cell.parent]
            probe = next(r for r in expand(plan, only={parent.name}) if r.cell == parent.name)
            parent_dirs[parent.name] = str(run_dir_for(["fit", *probe.args]).parent)
    jobs = []
    for run in expand(plan, parent_dirs, only=only):
        try:
            target = run_target_for(["fit", *run.args])
        except ConfigError as err:
            raise PlanError(f"{run.label}: {err}") from err
        summary = read_run_json(target.folder) or {}
        done = summary.get("epochs_trained")
        jobs.append(Job(run, target.folder, str(summary.get("status", "new")), target.max_epochs,
                        int(done) if isinstance(done, int) else 0))  # fmt: skip
    return jobs


def select_jobs(args: argparse.Namespace) -> tuple[Plan, list[Job]]:
    """The plan and its jobs after ``--only`` / ``--seeds``; ``PlanError`` for bad arguments."""
    plan = load_plan(args.plan)
    extra = [a for a in (args.extra or []) if a != "--"]
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(plan.cells):
        raise PlanError(f"--only {args.only!r}: unknown cell(s) {', '.join(sorted(only - set(plan.cells)))}; the cells are {', '.join(plan.cells)}")
    jobs = plan_jobs(plan, extra, only)
    if args.seeds:
        try:
            keep = {int(v) for v in args.seeds.split(",")}
        except ValueError as err:
            raise PlanError(f"--seeds {args.seeds!r} is not allowed; give comma-separated integers, e.g. 0,1,2") from err
        jobs = [j for j in jobs if j.run.seed in keep]
    return plan, jobs


def slots_from(args: argparse.Namespace) -> DeviceSlots:
    """``--jobs`` / ``--devices`` / ``--runs-per-device`` checked and turned into slots."""
    if args.jobs is not None and args.jobs < 1:
        raise PlanError(f"--jobs {args.jobs} is out of range; it must be >= 1")
    if args.runs_per_device < 1:
        raise PlanError(f"--runs-per-device {args.runs_per_device} is out of range; it must be >= 1")
    if args.devices is not None and args.jobs is not None:
        raise PlanError("--jobs and --devices do not go together; with --devices, --runs-per-device K sets the runs per GPU")
    if args.devices is None and args.runs_per_device != 1:
        raise PlanError("--runs-per-device needs --devices (e.g. --devices auto); without it, --jobs N sets the runs at a time")
    return DeviceSlots(parse_devices(args.devices), args.runs_per_device, args.jobs or 1)


def run_population(args: argparse.Namespace) -> int:
    if args.calibrate < 0:
        raise PlanError(f"--calibrate {args.calibrate} is out of range; it must be >= 0 (optimiser steps)")
    if args.calibrate and not args.dry_run:
        raise PlanError("--calibrate only goes with --dry-run (it times a few steps to project the cost)")
    check_launcher_arguments(args)
    if args.launcher is not None and args.dry_run:
        raise PlanError("--dry-run does not go with --launcher; run the dry run alone to see the plan and its cost")
    slots = slots_from(args) if args.launcher is None else None
    plan, jobs = select_jobs(args)
    done = [j for j in jobs if j.status == "complete"]
    todo = [j for j in jobs if j.status != "complete"]
    print(f"population {plan.name}: {len(jobs)} runs, {len(done)} complete, {len(todo)} to run "
          f"({sum(j.status not in ('new',) for j in todo)} to resume) under {plan.root}", flush=True)  # fmt: skip
    if args.dry_run:
        for job in jobs:
            command = " ".join([sys.executable, str(REPO / "cli.py"), "fit", *job.run.args])
            print(f"{job.status:>11}  {job.run.label:<32} {job.folder}\n             {command}")
        assert slots is not None
        print_cost(jobs, slots, calibrate_steps=args.calibrate)
        return 0
    if args.launcher is not None:
        return launch(args, plan, jobs)
    assert slots is not None
    return Runner(todo, len(done), len(jobs), slots).run()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run_population(args)
    except PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


__all__ = ["Job", "Runner", "build_parser", "main", "plan_jobs", "run_population", "select_jobs"]
