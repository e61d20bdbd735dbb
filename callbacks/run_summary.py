"""The run folder and its ``run.json`` summary, with a status that says whether the run is complete.

Every run owns one folder, ``trainer.default_root_dir`` (``training/lightning_cli.py`` makes it unique per run):
resolved config, checkpoints, CSV and W&B offline logs, ``per_sample/`` files and ``run.json``.

``run.json`` is assembled by :class:`RunSummary` from
 * every :class:`~common.protocols.RunSummaryContributor` — the LightningModule (method, backbone,
   ...), the datamodule (dataset, ...) and every callback, all with the one signature
   ``run_summary(trainer, pl_module) -> dict`` (pruning adds ``pruning``, ``target_sparsity``,
   ``achieved_sparsity``; metric callbacks add their means),
 * the final ``test/*`` metrics (``test_acc`` = ``test/acc``),
 * what was trained: ``epochs`` (= ``epochs_trained``, completed training epochs),
   ``steps_trained`` (optimiser steps), ``max_epochs`` (configured), and ``segments`` — one entry
   per ``fit`` call of this run folder (a resumed run has several): start/end step and epoch,
   times, the checkpoint it resumed from, how it ended.

**Status** (written last, on every write): ``running`` from the start of training; at the end
``complete`` — only after fit trained every configured epoch (at least one optimiser step), the
test stage and every per-sample callback finished, and a pruning schedule (if any) ran to its end
— otherwise ``incomplete`` (``status_reason`` says why: e.g. ``trainer.max_steps`` stopped it, no
test stage, pruning target not reached); ``failed`` (an exception; ``status_reason`` is its first
line) or ``interrupted`` (Ctrl-C, SIGTERM). A killed process (``kill -9``) leaves ``running``.
``analyze`` reads only ``complete`` runs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from callbacks.resume import STOP, now_iso, worker_died_of_stop
from common.io import atomic_write_bytes
from common.protocols import PlannedModule, ReportsCompletion, RunSummaryContributor
from common.run_folder import RUN_JSON, STATUSES, RunJson


def run_dir(trainer: pl.Trainer) -> Path:
    """This run's folder (``trainer.default_root_dir``)."""
    return Path(trainer.default_root_dir)


def read_run_json(folder: Path) -> RunJson | None:
    """``<folder>/run.json`` as a dict (keys: :class:`common.run_folder.RunJson`), ``None`` if absent or unreadable."""
    try:
        data = json.loads((Path(folder) / RUN_JSON).read_text())
    except (OSError, ValueError):
        return None
    return cast(RunJson, data) if isinstance(data, dict) else None


def write_run_json(folder: Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into ``<folder>/run.json`` (created if absent), ``status`` written last."""
    summary = read_run_json(folder) or {}
    summary.update(_jsonable(updates))
    status = summary.pop("status", None)
    if status is not None:
        summary["status"] = status  # dict order: the last key of the file
    atomic_write_bytes(Path(folder) / RUN_JSON, (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _first_line(exception: BaseException) -> str:
    text = str(exception).strip().splitlines()
    return f"{type(exception).__name__}: {text[0]}" if text else type(exception).__name__


class RunSummary(pl.Callback):
    """Write ``<run_dir>/run.json`` at the start and end of training, after ``test`` and on errors.

    Args:
        extra: fixed entries written at the start (``training/lightning_cli.py`` passes ``wandb_run_id``,
            ``parent_run``, the resolved run options).
    """

    def __init__(self, extra: dict[str, Any] | None = None) -> None:
        self.extra = dict(extra or {})
        self._fit_started: float | None = None
        self._fit_seconds: float | None = None
        self._segment: dict[str, Any] | None = None

    # -- what a run trained ---------------------------------------------------------------------
    def collect(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> dict[str, Any]:
        summary: dict[str, Any] = dict(self.extra)
        contributors = [pl_module, trainer.datamodule, *(cb for cb in trainer.callbacks if cb is not self)]
        for contributor in contributors:
            if isinstance(contributor, RunSummaryContributor):
                summary.update(contributor.run_summary(trainer, pl_module))
        summary["seed"] = _seed()
        summary["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")  # the GPU(s) a runner pinned it to
        summary["max_epochs"] = trainer.max_epochs
        if trainer.state.fn == "fit" or stage == "fit":
            summary["epochs"] = summary["epochs_trained"] = epochs_trained(trainer, pl_module)
            summary["steps_trained"] = summary["global_step"] = int(trainer.global_step)
            summary["planned_steps"] = planned_steps(trainer, pl_module)
        summary["run_dir"] = str(run_dir(trainer).resolve())
        if self._fit_seconds is not None:
            summary["fit_seconds"] = round(self._fit_seconds, 3)
        if stage == "test":
            metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
            summary["test_metrics"] = metrics
            if "test/acc" in metrics:
                summary["test_acc"] = metrics["test/acc"]
        return summary

    @rank_zero_only
    def _write(self, trainer: pl.Trainer, updates: dict[str, Any]) -> None:
        write_run_json(run_dir(trainer), updates)

    def _segments(self, trainer: pl.Trainer) -> list[dict[str, Any]]:
        previous = read_run_json(run_dir(trainer)) or {}
        segments = [s for s in previous.get("segments", []) if isinstance(s, dict)]
        for seg in segments:
            if "ended" not in seg and seg.get("started") != (self._segment or {}).get("started"):
                seg["ended_as"] = "lost"  # killed (kill -9, node failure): it wrote nothing at its end
        if self._segment is not None:
            segments = [s for s in segments if s.get("started") != self._segment["started"]] + [self._segment]
        return segments

    def _end_segment(self, trainer: pl.Trainer, how: str) -> None:
        if self._segment is not None and "ended" not in self._segment:
            self._segment.update(
                ended=now_iso(), end_step=int(trainer.global_step), end_epoch=int(trainer.current_epoch), ended_as=how
            )

    # -- hooks ------------------------------------------------------------------------------------
    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.perf_counter()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after any checkpoint restore: global_step / current_epoch are where this segment starts
        self._segment = {
            "started": now_iso(), "start_step": int(trainer.global_step), "start_epoch": int(trainer.current_epoch),
            "resumed_from": str(trainer.ckpt_path) if trainer.ckpt_path else None,
        }  # fmt: skip
        updates = self.collect(trainer, pl_module, "fit")
        updates.update(status="running", status_reason=None, segments=self._segments(trainer))
        self._write(trainer, updates)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fit_started is not None:
            self._fit_seconds = time.perf_counter() - self._fit_started
        self._end_segment(trainer, "fit_end")
        updates = self.collect(trainer, pl_module, "fit")
        updates["segments"] = self._segments(trainer)
        self._write(trainer, updates)

    @override
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, self.collect(trainer, pl_module, "test"))

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        interrupted = isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or worker_died_of_stop(exception)
        status = "interrupted" if interrupted else "failed"
        self._end_segment(trainer, status)
        reason = _first_line(exception)
        if interrupted and STOP.signum is not None:
            reason += f" ({signal.Signals(STOP.signum).name} received)"
        updates: dict[str, Any] = {"status": status, "status_reason": reason}
        if trainer.state.fn == "fit":
            trained = epochs_trained(trainer, pl_module)
            updates.update(
                epochs=trained, epochs_trained=trained,
                steps_trained=int(trainer.global_step), global_step=int(trainer.global_step),
                segments=self._segments(trainer),
            )  # fmt: skip
        self._write(trainer, updates)

    # -- the verdict -----------------------------------------------------------------------------
    def finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, tested: bool) -> str:
        """Decide and write the final status of a ``fit`` (called by ``training/lightning_cli.py`` after the test stage)."""
        reasons: list[str] = []
        if trainer.interrupted:
            reasons.append("training was interrupted")
        max_epochs = trainer.max_epochs
        trained = epochs_trained(trainer, pl_module)
        planned = planned_steps(trainer, pl_module)
        if max_epochs is not None and (trained < max_epochs or (planned is not None and trainer.global_step < planned)):
            why = f"trained {trained} of trainer.max_epochs={max_epochs} epochs"
            if planned is not None:
                why += f" ({trainer.global_step} of {planned} optimiser steps)"
            if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
                why += f" (stopped by trainer.max_steps={trainer.max_steps})"
            reasons.append(why)
        if trainer.global_step < 1:
            reasons.append("no optimiser step was taken (trainer.limit_train_batches=0?)")
        if not tested:
            reasons.append("no test stage (test_after_fit=false)")
        for cb in trainer.callbacks:
            if isinstance(cb, ReportsCompletion) and (why := cb.unfinished_reason(trainer, pl_module)):
                reasons.append(why)
        status = "incomplete" if reasons else "complete"
        self._write(trainer, {"status": status, "status_reason": "; ".join(reasons) or None})
        return status


def planned_steps(trainer: pl.Trainer, pl_module: pl.LightningModule) -> int | None:
    """Optimiser steps the configured epochs have (without ``max_steps``), from the module's plan."""
    if not isinstance(pl_module, PlannedModule) or trainer.datamodule is None:
        return None
    return sum(p.steps for p in pl_module.plan().phases)


def epochs_trained(trainer: pl.Trainer, pl_module: pl.LightningModule) -> int:
    """Training epochs completed: the epochs of the plan whose every step was taken (Lightning's
    ``current_epoch`` also counts an epoch cut short by ``max_steps``)."""
    if not isinstance(pl_module, PlannedModule) or trainer.datamodule is None:
        return int(trainer.current_epoch)
    done, step = 0, int(trainer.global_step)
    for phase in pl_module.plan().phases:
        for epoch in range(phase.epochs):
            if phase.first_step + (epoch + 1) * phase.steps_per_epoch > step:
                return min(done, int(trainer.current_epoch))
            done += 1
    return min(done, int(trainer.current_epoch))


def _seed() -> int | None:
    seed = os.environ.get("PL_GLOBAL_SEED")
    return int(seed) if seed is not None else None


__all__ = ["RUN_JSON", "STATUSES", "RunSummary", "atomic_write_bytes", "read_run_json", "run_dir", "write_run_json"]
