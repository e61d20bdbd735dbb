"""A plan's runs on a cluster through submitit: SLURM job arrays that requeue, or the same tasks here.

``python cli.py population --plan P --launcher slurm --partition gpu --gpus-per-task 1
--runs-per-device 4 --time 24:00:00`` cuts the runs left into tasks of ``gpus-per-task x
runs-per-device`` runs, in the plan's order, and submits them with submitit
(https://github.com/facebookincubator/submitit) as one job array per stage: the dense and GMP cells
first, then the One-Shot children in a second array that starts after the first has ended
(``--dependency=afterany``), so every child finds its parent. Each array task is a
:class:`PopulationTask`: the same :class:`~population.execute.Runner` as the plain runner, on the
task's GPUs (``CUDA_VISIBLE_DEVICES`` from SLURM), K runs on each, every run ``python cli.py fit ...
--run.resume auto``. When the task nears its time limit or is preempted, SLURM signals it (submitit
asks for ``--signal=USR2@90``); submitit calls :meth:`PopulationTask.checkpoint`, which stops the
task's runs (each checkpoints at its next batch boundary) and requeues the task, which then skips
what is complete and resumes the rest. The run folders are the plain runner's and a sweep's.

``--launcher local`` submits the same tasks with submitit's local executor, on this machine, and
waits for them (stage by stage): a way to try a plan's submission before a cluster sees it, and what
the tests use. (Its tasks run at the same time, each on GPUs ``0..gpus-per-task-1``: on one GPU
machine the plain runner's ``--devices auto --runs-per-device K`` is the better tool.)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callbacks.run_summary import read_run_json
from population.devices import DeviceSlots, visible_gpus
from population.execute import REPO, Job, Runner
from population.plan import Plan, PlanError

LAUNCHERS = ("local", "slurm")


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("submitit: --launcher slurm | local")
    group.add_argument("--launcher", default=None, choices=LAUNCHERS,
                       help="submit through submitit: 'slurm' (job arrays that requeue on preemption and timeout) or "
                            "'local' (the same tasks on this machine); default: run here")  # fmt: skip
    group.add_argument("--partition", default=None, help="SLURM partition (--launcher slurm)")
    group.add_argument("--gpus-per-task", type=int, default=None,
                       help="GPUs of each array task (default 1 with slurm, 0 with local); it runs gpus x --runs-per-device runs")
    group.add_argument("--time", default="24:00:00", help="time limit of each task, [D-]HH:MM:SS or minutes (default 24:00:00)")
    group.add_argument("--cpus-per-task", type=int, default=None, help="CPU cores of each task (default: SLURM's)")
    group.add_argument("--mem-gb", type=float, default=None, help="memory of each task in GB (default: SLURM's)")
    group.add_argument("--array-parallelism", type=int, default=None, help="tasks of an array running at once (default: all)")
    group.add_argument("--submitit-folder", default=None, help="submitit's scripts and logs (default <plan root>/submitit)")
    group.add_argument("--slurm-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. --slurm-arg account=proj --slurm-arg qos=high (repeatable)")


def parse_minutes(text: str) -> int:
    """``--time``: ``[D-]HH:MM:SS``, ``HH:MM`` or whole minutes -> minutes (at least 1).

    Raises:
        PlanError: anything else.
    """
    text = str(text).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?", text)
    if m:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
        total = (days * 24 + hours) * 60 + minutes + (1 if seconds else 0)
    elif text.isdigit():
        total = int(text)
    else:
        total = 0
    if total < 1:
        raise PlanError(f"--time {text!r} is not allowed; give [D-]HH:MM:SS (e.g. 24:00:00) or whole minutes >= 1")
    return total


def _slurm_args(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PlanError(f"--slurm-arg {item!r} is not allowed; give KEY=VALUE, e.g. account=myproject")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def check_launcher_arguments(args: argparse.Namespace) -> None:
    """One-line :class:`PlanError` for launcher options that cannot be used."""
    if args.launcher is None:
        used = [f"--{name.replace('_', '-')}" for name in ("partition", "gpus_per_task", "cpus_per_task", "mem_gb",
                                                            "array_parallelism", "submitit_folder") if getattr(args, name) is not None]  # fmt: skip
        if args.slurm_arg:
            used.append("--slurm-arg")
        if used:
            raise PlanError(f"{used[0]} needs --launcher slurm (or local)")
        return
    if args.jobs is not None or args.devices is not None:
        raise PlanError(f"--{'jobs' if args.jobs is not None else 'devices'} does not go with --launcher; each task uses "
                        "its own GPUs (--gpus-per-task) with --runs-per-device runs on each")  # fmt: skip
    for name in ("gpus_per_task", "cpus_per_task", "array_parallelism"):
        value = getattr(args, name)
        low = 0 if name == "gpus_per_task" else 1
        if value is not None and value < low:
            raise PlanError(f"--{name.replace('_', '-')} {value} is out of range; it must be >= {low}")
    if args.runs_per_device < 1:
        raise PlanError(f"--runs-per-device {args.runs_per_device} is out of range; it must be >= 1")
    if args.mem_gb is not None and args.mem_gb <= 0:
        raise PlanError(f"--mem-gb {args.mem_gb} is out of range; it must be > 0")
    if args.launcher == "slurm" and shutil.which("srun") is None:
        raise PlanError("--launcher slurm: this machine has no SLURM (no srun on PATH); submit from a login node, "
                        "or try the plan here with --launcher local")  # fmt: skip
    if args.launcher == "slurm" and args.gpus_per_task == 0:
        raise PlanError("--gpus-per-task 0 with --launcher slurm: the runs need a GPU each; give 1 or more")
    parse_minutes(args.time)
    _slurm_args(args.slurm_arg)


class PopulationTask:
    """One array task: its runs, ``per_device`` at a time on each of the task's GPUs (or
    ``per_device`` at a time unpinned without GPUs), children after parents, resumable.

    A submitit *checkpointable* callable: on preemption or timeout, :meth:`checkpoint` stops the
    running runs (each writes its checkpoint) and returns a fresh task for submitit to requeue.
    """

    def __init__(self, jobs: Sequence[Job], per_device: int, use_gpus: bool, cwd: str) -> None:
        self.jobs = list(jobs)
        self.per_device = per_device
        self.use_gpus = use_gpus
        self.cwd = cwd
        self._runner: Runner | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_runner"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._runner = None

    def __call__(self) -> dict[str, str]:
        os.chdir(self.cwd)
        for job in self.jobs:
            job.status = str((read_run_json(job.folder) or {}).get("status", "new"))
        todo = [j for j in self.jobs if j.status != "complete"]
        devices = visible_gpus() if self.use_gpus else []
        slots = DeviceSlots(devices, self.per_device, self.per_device)
        print(f"task: {len(self.jobs)} runs, {len(todo)} to run, {slots.describe()}", flush=True)
        self._runner = Runner(todo, len(self.jobs) - len(todo), len(self.jobs), slots, handle_signals=False)
        self._runner.run()
        return {j.run.label: str((read_run_json(j.folder) or {}).get("status", "new")) for j in self.jobs}

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Stop the runs (each checkpoints at its next batch boundary), then requeue this task."""
        from submitit.helpers import DelayedSubmission

        if self._runner is not None:
            print("task: preempted or timed out; stopping the runs (each checkpoints) and requeueing", flush=True)
            self._runner.stop(signal.SIGTERM)
        return DelayedSubmission(PopulationTask(self.jobs, self.per_device, self.use_gpus, self.cwd))


def bundles(jobs: Sequence[Job], size: int) -> list[list[list[Job]]]:
    """The runs left, per stage (parents, then children), cut into tasks of ``size`` runs in plan order."""
    stages: list[list[Job]] = [[j for j in jobs if j.run.parent_cell is None], [j for j in jobs if j.run.parent_cell is not None]]
    out = []
    for stage in stages:
        left = [j for j in stage if j.status != "complete"]
        if left:
            out.append([left[i : i + size] for i in range(0, len(left), size)])
    return out


def _executor(args: argparse.Namespace, folder: Path, gpus: int) -> Any:
    import submitit

    minutes = parse_minutes(args.time)
    pythonpath = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    if args.launcher == "local":
        os.environ["PYTHONPATH"] = pythonpath  # the tasks unpickle population.launch.PopulationTask
        executor: Any = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=minutes, gpus_per_node=gpus)
        return executor
    executor = submitit.SlurmExecutor(folder=str(folder))
    params: dict[str, Any] = {"time": minutes, "job_name": "population", "setup": [f"export PYTHONPATH={pythonpath}"]}
    if gpus:
        params["gpus_per_task"] = gpus
    for key, value in (("partition", args.partition), ("cpus_per_task", args.cpus_per_task), ("array_parallelism", args.array_parallelism)):
        if value is not None:
            params[key] = value
    if args.mem_gb is not None:
        params["mem"] = f"{int(round(args.mem_gb * 1024))}M"
    extra = _slurm_args(args.slurm_arg)
    if extra:
        params["additional_parameters"] = extra
    executor.update_parameters(**params)
    return executor


def launch(args: argparse.Namespace, plan: Plan, jobs: list[Job]) -> int:
    """Submit the runs left (see the module doc); ``slurm`` returns after submitting, ``local`` waits."""
    gpus = args.gpus_per_task if args.gpus_per_task is not None else (1 if args.launcher == "slurm" else 0)
    size = max(1, gpus) * args.runs_per_device
    stages = bundles(jobs, size)
    if not stages:
        print("population: nothing to submit, every run is complete", flush=True)
        return 0
    folder = Path(args.submitit_folder or Path(plan.root) / "submitit").absolute()
    cwd = os.getcwd()
    previous_id: str | None = None
    for number, tasks in enumerate(stages):
        executor = _executor(args, folder, gpus)
        if args.launcher == "slurm" and previous_id is not None:
            executor.update_parameters(dependency=f"afterany:{previous_id}")
        with executor.batch():  # one job array: each task is its own checkpointable callable
            submitted = [executor.submit(PopulationTask(t, args.runs_per_device, gpus > 0, cwd)) for t in tasks]
        runs = sum(len(t) for t in tasks)
        array_id = str(submitted[0].job_id).split("_")[0]
        after = f", after job {previous_id}" if args.launcher == "slurm" and previous_id else ""
        print(f"stage {number + 1}: {runs} runs in {len(tasks)} task(s) of up to {size} -> "
              f"{'job array ' + array_id if args.launcher == 'slurm' else 'local jobs ' + ', '.join(j.job_id for j in submitted)}{after}", flush=True)  # fmt: skip
        for index, task in enumerate(tasks):
            print(f"  task {index}: " + ", ".join(j.run.label for j in task), flush=True)
        previous_id = array_id
        if args.launcher == "local":
            for job in submitted:
                try:
                    job.result()
                except Exception as err:  # noqa: BLE001 - a task that failed is reported with its log, the others go on
                    print(f"[fail] task {job.job_id}: {str(err).strip().splitlines()[-1] if str(err).strip() else err}; "
                          f"see {job.paths.stdout}", file=sys.stderr)  # fmt: skip
    if args.launcher == "slurm":
        print(f"submitted; watch with squeue -u $USER, logs in {folder}; `python cli.py population --plan {args.plan} --dry-run` "
              "shows what is complete", flush=True)  # fmt: skip
        return 0
    left = [j.run.label for j in jobs if (read_run_json(j.folder) or {}).get("status") != "complete"]
    if left:
        print(f"population: {len(left)} run(s) not complete: {', '.join(left)}", file=sys.stderr)
        return 1
    print(f"population: all {len(jobs)} runs complete", flush=True)
    return 0


__all__ = ["LAUNCHERS", "PopulationTask", "add_launcher_arguments", "bundles", "check_launcher_arguments", "launch", "parse_minutes"]
