"""Running a population's runs here: as many at a time as the slots allow, children after parents.

:class:`Runner` starts each run as ``python cli.py fit ...`` in a subprocess (its output in
``<root>/logs/<cell>/<run>.log``), pinned to a GPU when the slots have devices
(:mod:`population.devices`), starts a One-Shot child only once its parent run (same seed) is
complete, and prints one line per start and per end with the time it took and an ETA. The plain
runner (``python cli.py population``) and every submitit task (:mod:`population.launch`) use it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callbacks.run_summary import read_run_json
from population.devices import DeviceSlots, child_env
from population.plan import PlannedRun

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Job:
    """One run of a plan: what to run, its folder, its status when planned and its length."""

    run: PlannedRun
    folder: Path
    status: str
    max_epochs: int | None = None
    epochs_done: int = 0

    @property
    def log(self) -> Path:
        return self.folder.parent.parent / "logs" / self.run.cell / f"{self.folder.name}.log"

    @property
    def epochs_left(self) -> int | None:
        if self.status == "complete":
            return 0
        return None if self.max_epochs is None else max(0, self.max_epochs - self.epochs_done)


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


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


class Runner:
    """Runs ``todo`` as ``python cli.py fit`` subprocesses: as many at a time as ``slots`` allows (each
    pinned to its GPU when there are devices), a child only once its parent is complete, one line per
    start and end with an ETA.

    ``handle_signals``: SIGTERM/SIGINT stop every running run (each checkpoints and exits) and then
    this process (exit 128 + the signal). Off inside a submitit task, whose own handler calls
    :meth:`stop` before requeueing; there a run that ends interrupted (SLURM signalled the whole job:
    preemption) stops the task from starting more.
    """

    def __init__(self, todo: list[Job], finished: int, total: int, slots: DeviceSlots, *, handle_signals: bool = True) -> None:
        self.pending = list(todo)
        self.finished = finished
        self.total = total
        self.slots = slots
        self.handle_signals = handle_signals
        self.running: dict[subprocess.Popen, tuple[Job, float, str | None]] = {}
        self.failed: list[Job] = []
        self.eta = _Eta()
        self.stopping = False

    def parent_state(self, job: Job) -> str:
        """complete / waiting / failed for the parent (same seed) of a child run."""
        if job.run.parent_cell is None:
            return "complete"
        summaries = [read_run_json(p) or {} for p in _parent_folders(job)]
        if any(s.get("status") == "complete" for s in summaries):
            return "complete"
        if any(f.run.cell == job.run.parent_cell and f.run.seed == job.run.seed for f in self.failed):
            return "failed"
        return "waiting"

    def start(self, job: Job) -> None:
        device = self.slots.take()
        job.log.parent.mkdir(parents=True, exist_ok=True)
        where = f" on GPU {device}" if device is not None else ""
        with job.log.open("a") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}{where} python cli.py fit {' '.join(job.run.args)}\n")
        proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "fit", *job.run.args], cwd=os.getcwd(),
                                stdout=job.log.open("a"), stderr=subprocess.STDOUT, env=child_env(device))  # fmt: skip
        self.running[proc] = (job, time.monotonic(), device)
        print(f"[{self.finished + len(self.running)}/{self.total}] start {job.run.label} ({job.status}) -> {job.folder}{where}", flush=True)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """SIGTERM to every running run (each checkpoints at its next batch boundary and exits), then wait."""
        for proc in self.running:
            proc.send_signal(signal.SIGTERM)
        for proc in self.running:
            proc.wait()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop(signum)
        print("population: stopped; run the same command again to continue (complete runs are skipped, the rest resume)",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(128 + signum)

    def _start_what_can_start(self) -> None:
        if self.stopping:
            return
        for job in list(self.pending):
            if not self.slots.has_room():
                break
            state = self.parent_state(job)
            if state == "failed":
                self.pending.remove(job)
                self.failed.append(job)
                print(f"[skip] {job.run.label}: its parent run failed", flush=True)
            elif state == "complete":
                self.pending.remove(job)
                self.start(job)

    def _collect(self, proc: subprocess.Popen) -> None:
        job, started, device = self.running.pop(proc)
        self.slots.give_back(device)
        seconds = time.monotonic() - started
        summary = read_run_json(job.folder) or {}
        status = summary.get("status", "no run.json")
        if proc.returncode == 0 and status == "complete":
            self.finished += 1
            self.eta.add(job.run.cell, seconds)
            acc = summary.get("test_acc")
            left = self.eta.remaining(self.pending + [j for j, _, _ in self.running.values()], self.slots.capacity)
            print(f"[{self.finished}/{self.total}] done  {job.run.label} in {_fmt(seconds)}"
                  + (f" (test_acc {float(acc):.4f})" if isinstance(acc, (int, float)) else "")
                  + (f"; {len(self.pending) + len(self.running)} left, ETA {_fmt(left)}" if left is not None and (self.pending or self.running) else ""),
                  flush=True)  # fmt: skip
        else:
            self.failed.append(job)
            print(f"[fail] {job.run.label}: exit {proc.returncode}, status {status}; see {job.log}", flush=True)
            if status == "interrupted" and not self.handle_signals:
                self.stopping = True  # the job was signalled (preemption): start nothing more

    def run(self) -> int:
        """Run everything; 0 when every run is complete, 1 when some are not."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)} if self.handle_signals else {}
        try:
            while self.pending or self.running:
                self._start_what_can_start()
                if not self.running and self.stopping:
                    break
                if not self.running:
                    for job in self.pending:  # children whose parents are neither complete nor running
                        self.failed.append(job)
                        print(f"[skip] {job.run.label}: its parent run is not complete", flush=True)
                    self.pending.clear()
                    break
                time.sleep(0.2)
                for proc in [p for p in self.running if p.poll() is not None]:
                    self._collect(proc)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.failed or self.pending:
            left = self.failed + self.pending
            print(f"population: {len(left)} run(s) not complete: " + ", ".join(j.run.label for j in left), file=sys.stderr)
            return 1
        print(f"population: all {self.total} runs complete", flush=True)
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


__all__ = ["Job", "Runner", "REPO"]
