"""``python cli.py population --plan <yaml>``: run a population, resumably, with progress and an ETA.

The plain alternative to W&B sweeps (same commands, same run folders; see :mod:`population.plan`):

1. expand the plan into runs (parent cells first: One-Shot children after the dense runs they prune);
2. find each run's folder the way the CLI does (``--run.resume auto``: a hash of the config) and read
   its ``run.json``: a ``complete`` run is skipped, anything else is (re)started — ``--run.resume
   auto`` continues a killed run from its last checkpoint;
3. run the rest one after another (``--jobs N``: N at a time; a child waits for its parent), each as
   ``python cli.py fit ...`` in a subprocess, its output in ``<root>/logs/<cell>/<run>.log``, and
   print one line per finished run with the time it took and an ETA for the rest.

Stopping it at any moment (Ctrl-C, SIGTERM, a killed machine) loses at most the runs' time since
their last checkpoint: calling it again skips what is complete and resumes the rest. Exit status 0
when every run is complete, 1 when some failed (their logs are named), 2 for a bad plan.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from callbacks.run_summary import read_run_json
from population.plan import Plan, PlanError, PlannedRun, expand, load_plan

REPO = Path(__file__).resolve().parents[1]


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
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--only", default=None, help="comma-separated cells to run (default: all)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds to run (default: the plan's)")
    parser.add_argument("--dry-run", action="store_true", help="print each run's status and command, run nothing")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments appended to every run")
    return parser


@dataclass
class Job:
    run: PlannedRun
    folder: Path
    status: str

    @property
    def log(self) -> Path:
        return self.folder.parent.parent / "logs" / self.run.cell / f"{self.folder.name}.log"


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _plan_jobs(plan: Plan, extra: list[str], only: set[str] | None) -> list[Job]:
    import cli  # the CLI's own parser decides every run folder

    if extra:
        plan.args = (*plan.args, *extra)
    parent_dirs = {}
    for cell in plan.cells.values():
        if cell.parent is not None and cell.parent not in parent_dirs:
            parent = plan.cells[cell.parent]
            probe = next(r for r in expand(plan, only={parent.name}) if r.cell == parent.name)
            parent_dirs[parent.name] = str(cli.run_dir_for(["fit", *probe.args]).parent)
    jobs = []
    for run in expand(plan, parent_dirs, only=only):
        try:
            folder = cli.run_dir_for(["fit", *run.args])
        except cli.ConfigError as err:
            raise PlanError(f"{run.label}: {err}") from err
        summary = read_run_json(folder) or {}
        jobs.append(Job(run, folder, str(summary.get("status", "new"))))
    return jobs


class _Eta:
    """Mean seconds per run of each cell, from the runs that finished in this call."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def add(self, cell: str, seconds: float) -> None:
        self.seconds[cell].append(seconds)

    def remaining(self, jobs: list[Job], parallel: int) -> float | None:
        if not self.seconds:
            return None
        every = [s for values in self.seconds.values() for s in values]
        overall = sum(every) / len(every)
        total = sum(sum(self.seconds[j.run.cell]) / len(self.seconds[j.run.cell]) if self.seconds.get(j.run.cell) else overall for j in jobs)
        return total / max(1, parallel)


def run_population(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    extra = [a for a in (args.extra or []) if a != "--"]
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(plan.cells):
        raise PlanError(f"--only {args.only!r}: unknown cell(s) {', '.join(sorted(only - set(plan.cells)))}; the cells are {', '.join(plan.cells)}")
    if args.jobs < 1:
        raise PlanError(f"--jobs {args.jobs} is out of range; it must be >= 1")
    jobs = _plan_jobs(plan, extra, only)
    if args.seeds:
        try:
            keep = {int(v) for v in args.seeds.split(",")}
        except ValueError as err:
            raise PlanError(f"--seeds {args.seeds!r} is not allowed; give comma-separated integers, e.g. 0,1,2") from err
        jobs = [j for j in jobs if j.run.seed in keep]
    done = [j for j in jobs if j.status == "complete"]
    todo = [j for j in jobs if j.status != "complete"]
    print(f"population {plan.name}: {len(jobs)} runs, {len(done)} complete, {len(todo)} to run "
          f"({sum(j.status not in ('new',) for j in todo)} to resume) under {plan.root}", flush=True)  # fmt: skip
    if args.dry_run:
        for job in jobs:
            command = " ".join([sys.executable, str(REPO / "cli.py"), "fit", *job.run.args])
            print(f"{job.status:>11}  {job.run.label:<32} {job.folder}\n             {command}")
        return 0
    return _execute(todo, len(done), len(jobs), args.jobs)


def _execute(todo: list[Job], finished: int, total: int, parallel: int) -> int:
    eta = _Eta()
    pending = list(todo)
    running: dict[subprocess.Popen, tuple[Job, float]] = {}
    failed: list[Job] = []

    def parent_state(job: Job) -> str:
        """complete / waiting / failed for the parent (same seed) of a child run."""
        if job.run.parent_cell is None:
            return "complete"
        summaries = [read_run_json(p) or {} for p in _parent_folders(job)]
        if any(s.get("status") == "complete" for s in summaries):
            return "complete"
        if any(f.run.cell == job.run.parent_cell and f.run.seed == job.run.seed for f in failed):
            return "failed"
        return "waiting"

    def start(job: Job) -> None:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with job.log.open("a") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} python cli.py fit {' '.join(job.run.args)}\n")
        proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "fit", *job.run.args], cwd=os.getcwd(),
                                stdout=job.log.open("a"), stderr=subprocess.STDOUT)  # fmt: skip
        running[proc] = (job, time.monotonic())
        print(f"[{finished + len(running)}/{total}] start {job.run.label} ({job.status}) -> {job.folder}", flush=True)

    def stop_all(signum: int, frame: Any) -> None:
        for proc in running:
            proc.send_signal(signal.SIGTERM)  # each run checkpoints and exits; the next call resumes it
        for proc in running:
            proc.wait()
        print("population: stopped; run the same command again to continue (complete runs are skipped, the rest resume)",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(130)

    previous = signal.signal(signal.SIGTERM, stop_all)
    try:
        while pending or running:
            for job in list(pending):
                if len(running) >= parallel:
                    break
                state = parent_state(job)
                if state == "failed":
                    pending.remove(job)
                    failed.append(job)
                    print(f"[skip] {job.run.label}: its parent run failed", flush=True)
                elif state == "complete":
                    pending.remove(job)
                    start(job)
            if not running:
                if pending:  # children whose parents are neither complete nor running
                    for job in pending:
                        failed.append(job)
                        print(f"[skip] {job.run.label}: its parent run is not complete", flush=True)
                    pending.clear()
                break
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                job, started = running.pop(proc)
                seconds = time.monotonic() - started
                summary = read_run_json(job.folder) or {}
                status = summary.get("status", "no run.json")
                if proc.returncode == 0 and status == "complete":
                    finished += 1
                    eta.add(job.run.cell, seconds)
                    acc = summary.get("test_acc")
                    left = eta.remaining(pending + [j for j, _ in running.values()], parallel)
                    print(f"[{finished}/{total}] done  {job.run.label} in {_fmt(seconds)}"
                          + (f" (test_acc {float(acc):.4f})" if isinstance(acc, (int, float)) else "")
                          + (f"; {len(pending) + len(running)} left, ETA {_fmt(left)}" if left is not None and (pending or running) else ""),
                          flush=True)  # fmt: skip
                else:
                    failed.append(job)
                    print(f"[fail] {job.run.label}: exit {proc.returncode}, status {status}; see {job.log}", flush=True)
    except KeyboardInterrupt:
        stop_all(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failed:
        print(f"population: {len(failed)} run(s) not complete: " + ", ".join(j.run.label for j in failed), file=sys.stderr)
        return 1
    print(f"population: all {total} runs complete", flush=True)
    return 0


def _parent_folders(job: Job) -> list[Path]:
    """Run folders of the parent cell with this child's seed (below ``--pruning.init_args.parent``)."""
    args = list(job.run.args)
    root = Path(args[args.index("--pruning.init_args.parent") + 1])
    out = []
    for path in root.glob("*/run.json") if root.is_dir() else []:
        summary = read_run_json(path.parent) or {}
        if summary.get("seed") == job.run.seed and not summary.get("pruning"):
            out.append(path.parent)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run_population(args)
    except PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


__all__ = ["build_parser", "main", "run_population"]
