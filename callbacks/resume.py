"""Fault tolerance: periodic atomic checkpoints, RNG state in checkpoints, a CSV log that survives resumes.

A run of the paper is 205–600 epochs on shared, preemptible machines; one that dies must cost
minutes. What ``training/lightning_cli.py`` attaches to every ``fit``:

* :class:`ResumeCheckpoint` writes ``<run>/checkpoints/last.ckpt`` at the end of every training
  epoch, after every ``every_minutes`` of training inside an epoch, and when the run is stopped by
  SIGTERM (preemption, ``scancel``; Lightning raises at the next clean batch boundary), plus a
  small ``last.json`` beside it (epoch, global step, time) that resuming reads without loading the
  checkpoint. The training loader is resumable (:class:`datamodules.base.ResumableLoader`), so a
  mid-epoch checkpoint continues with the next batch of the same epoch. (Epoch-aggregated training
  metrics of an epoch resumed mid-way average only the batches after the resume; step metrics,
  weights, masks and predictions are those of the uninterrupted run.)
* :class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the same folder,
  flushes it to disk and renames it over the old one: a full disk or a kill during the write
  leaves the previous checkpoint intact, never a truncated one.
* :class:`RngState` carries the Python, NumPy and torch (CPU and CUDA) RNG states in the checkpoint
  and puts them back when a fit resumes from it. (The data stream itself does not depend on them:
  shuffling and augmentation are seeded by (seed, epoch, sample).)
* :class:`StopSignals` makes SIGINT (Ctrl-C) stop a fit the way SIGTERM does — at the next batch
  boundary, with a checkpoint — and records which stop signal came first, so ``cli.py`` exits with
  128 + its number (143 for SIGTERM, 130 for SIGINT). Loader workers ignore both
  (:func:`datamodules.base.ignore_stop_signals`), so a signal sent to the whole process group — as
  SLURM, ``timeout`` and a terminal send it — reaches the main process alone in effect; a worker that
  died of it anyway (signalled before it could ignore it) ends the run ``interrupted`` too, resumed
  from the last checkpoint (:func:`worker_died_of_stop`).
* :class:`ResumableCSVLogger` never deletes an existing ``metrics.csv``: a resumed run drops the
  rows logged after its checkpoint (they are logged again) and appends.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from common.io import atomic_open, atomic_write_text
from common.run_folder import LAST_CKPT as LAST
from common.run_folder import LAST_INFO


def now_iso() -> str:
    """UTC time, ISO 8601, seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file beside ``path``, ``fsync``, then ``os.replace`` onto ``path``
    (:func:`common.io.atomic_open`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        with atomic_open(path, "wb", fsync=True) as fh:
            torch.save(checkpoint, fh)


def read_last_info(checkpoints: Path) -> dict[str, Any] | None:
    """``last.json`` of a checkpoint folder (``None`` if absent or unreadable)."""
    try:
        info = json.loads((Path(checkpoints) / LAST_INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


class ResumeCheckpoint(pl.Callback):
    """``last.ckpt`` at every epoch end, every ``every_minutes`` of training and on SIGTERM.

    A checkpoint is written where Lightning's own checkpointing writes it (``on_train_batch_end``,
    ``on_train_epoch_end``: a state Lightning resumes exactly) but to ``.last.ckpt.pending``, and
    becomes ``last.ckpt`` (rename, then ``last.json``) only at the next hook — after Lightning has
    logged that batch's / epoch's metrics and the loggers have been flushed. So every CSV row up to
    the checkpoint is on disk before the checkpoint counts, and a kill at any moment leaves a
    ``last.ckpt`` whose logged history is complete (a resumed run drops later rows and logs them again).

    Args:
        dirpath: the run's checkpoint folder.
        every_minutes: longest stretch of training time between two checkpoints inside an epoch
            (``0`` = only at epoch ends).
    """

    def __init__(self, dirpath: str | Path, every_minutes: float = 30.0) -> None:
        if every_minutes < 0:
            raise ValueError(f"every_minutes={every_minutes!r} must be >= 0")
        self.dirpath = Path(dirpath)
        self.every_seconds = float(every_minutes) * 60.0
        self._last_save = time.monotonic()
        self._saved_step: int | None = None
        self._pending: dict[str, Any] | None = None

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    @property
    def pending_path(self) -> Path:
        return self.dirpath / f".{LAST}.pending"

    def _fitting(self, trainer: pl.Trainer) -> bool:
        return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run

    def save(self, trainer: pl.Trainer, reason: str) -> None:
        """Write the pending checkpoint (atomically, through the strategy's checkpoint IO)."""
        trainer.save_checkpoint(self.pending_path, weights_only=False)
        self._last_save = time.monotonic()
        self._saved_step = int(trainer.global_step)
        self._pending = {
            "epoch": int(trainer.current_epoch), "global_step": int(trainer.global_step), "reason": reason,
            "saved_at": now_iso(),
        }  # fmt: skip

    def commit(self, trainer: pl.Trainer) -> None:
        """Flush the loggers, then make the pending checkpoint ``last.ckpt`` (and ``last.json``)."""
        if self._pending is None:
            return
        info, self._pending = self._pending, None
        for logger in trainer.loggers:
            logger.save()
        if trainer.is_global_zero and self.pending_path.exists():
            os.replace(self.pending_path, self.last_path)
            atomic_write_text(self.dirpath / LAST_INFO, json.dumps(info) + "\n")

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_save = time.monotonic()

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.commit(trainer)

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.commit(trainer)

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_seconds > 0 and self._fitting(trainer) and time.monotonic() - self._last_save >= self.every_seconds:
            self.save(trainer, "time")

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fitting(trainer) and self._saved_step != int(trainer.global_step):
            self.save(trainer, "epoch")
        elif self._fitting(trainer) and self._pending is not None:
            self._pending["reason"] = "epoch"  # the time-based one of the last batch is this epoch's

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # training stopped inside an epoch (trainer.max_steps, should_stop): last.ckpt holds the final weights too
        if self._fitting(trainer) and self._saved_step != int(trainer.global_step):
            self.save(trainer, "end")
        self.commit(trainer)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # SIGTERM is raised at a clean batch boundary, after the batch's metrics were logged
        if isinstance(exception, SIGTERMException) and self._fitting(trainer):
            if self._saved_step != int(trainer.global_step):
                self.save(trainer, STOP.reason())
            self.commit(trainer)
        elif worker_died_of_stop(exception) and self._fitting(trainer):
            # raised wherever the main process was (maybe mid-step): no new checkpoint, the last one counts
            self.commit(trainer)


class RngState(pl.Callback):
    """Python / NumPy / torch / CUDA RNG states in every checkpoint, restored on resume.

    Restored when the checkpoint is loaded and again after the sanity check (whose validation loader
    draws from the RNG), so the resumed fit continues with the states the checkpoint had.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @override
    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss],  # plain types: weights_only loads
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict
        self._restore()

    def _restore(self) -> None:
        state = self._pending
        if state is None:
            return
        random.setstate(_as_python_state(state["python"]))
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.asarray(keys), pos, has_gauss, gauss))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    @override
    def on_sanity_check_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pending = None


class _StopState:
    """The first stop signal this process received during a fit (``None``: none)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def record(self, signum: int) -> None:
        if self.signum is None:
            self.signum = int(signum)

    def reason(self) -> str:
        """``sigterm`` / ``sigint``: the ``reason`` of the checkpoint written at the stop."""
        return "sigint" if self.signum == signal.SIGINT else "sigterm"

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it (143, 130)."""
        return 128 + int(self.signum if self.signum is not None else signal.SIGTERM)


#: the stop signal of this process's fit (read by cli.py for the exit code and the message)
STOP = _StopState()


def worker_died_of_stop(exception: BaseException) -> bool:
    """A loader worker's death that a stop signal caused: the interruption it is, not a failure."""
    return STOP.signum is not None and isinstance(exception, RuntimeError) and "DataLoader worker" in str(exception)


class StopSignals(pl.Callback):
    """SIGINT stops a fit like SIGTERM (checkpoint at the next batch boundary), and the first stop
    signal is recorded in :data:`STOP`.

    Installed in ``setup``, before Lightning registers its SIGTERM handler (which then calls this
    one too) and removed in ``teardown``. The first Ctrl-C re-sends SIGTERM to this process, so
    Lightning stops at its own batch-boundary check (and, under DDP, signals its ranks); a second
    Ctrl-C raises ``KeyboardInterrupt`` at once.
    """

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        STOP.record(signum)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if STOP.signum == signal.SIGINT:
            raise KeyboardInterrupt
        STOP.record(signum)
        print("interrupted (SIGINT): stopping at the next batch boundary with a checkpoint; Ctrl-C again stops at once",
              flush=True)  # fmt: skip
        os.kill(os.getpid(), signal.SIGTERM)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in ((signal.SIGTERM, self._on_sigterm), (signal.SIGINT, self._on_sigint)):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}


def _as_python_state(state: Any) -> tuple:
    """``random.setstate`` needs ``(version, tuple_of_ints, gauss)``; checkpoints may return lists."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


# ----------------------------------------------------------------------------------------------
# CSV log that survives resumes
# ----------------------------------------------------------------------------------------------
class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, minus deleting an existing ``metrics.csv``: it appends to it."""

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if path.is_file():
            with path.open(newline="") as fh:
                header = next(csv.reader(fh), [])
            self.metrics_keys = sorted(header)


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that appends to an existing ``metrics.csv`` instead of deleting it."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def truncate_csv(path: Path, after_step: int) -> int:
    """Drop the rows of a Lightning ``metrics.csv`` whose ``step`` is > ``after_step`` (atomic
    rewrite); returns how many rows were dropped. A resumed run logs those steps again."""
    path = Path(path)
    if not path.is_file():
        return 0
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)

    def keep(row: dict[str, str]) -> bool:
        step = row.get("step") or ""
        try:
            return float(step) <= after_step
        except ValueError:
            return True

    kept = [row for row in rows if keep(row)]
    if len(kept) == len(rows):
        return 0
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    return len(rows) - len(kept)


__all__ = [
    "AtomicCheckpointIO",
    "LAST",
    "LAST_INFO",
    "ResumableCSVLogger",
    "ResumeCheckpoint",
    "RngState",
    "STOP",
    "StopSignals",
    "now_iso",
    "read_last_info",
    "truncate_csv",
    "worker_died_of_stop",
]
