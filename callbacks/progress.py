"""Lightning's progress bar without a device read per step.

A value logged with ``prog_bar=True, on_step=True`` is converted to a Python number (``.item()``) by
Lightning's logger connector at the end of every batch, whether or not a bar shows it: on a GPU a
device-to-host synchronisation per step, so the host never queues the next step while the GPU runs
this one. The training modules therefore log their step losses with ``prog_bar=False``, and
:class:`SyncFreeProgressBar` shows them anyway: it moves the bar at every batch as before, and every
``trainer.log_every_n_steps`` optimiser steps (when the loggers read them too) and at the ends of
epochs it reads the logged ``train/..._step`` values and the epoch values; in between it shows the
last values read. The bar itself is redrawn at most every ``min_interval`` seconds (0.1, tqdm's own
rate) and at the last batch: Lightning redraws it at every batch (``refresh_rate`` 1), ~0.3 ms of host
time a step, more than a small model's GPU step. ``training/lightning_cli.py`` uses it unless the
config names a progress bar of its own or ``trainer.enable_progress_bar`` is false.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from typing_extensions import override


class SyncFreeProgressBar(TQDMProgressBar):
    """:class:`~lightning.pytorch.callbacks.TQDMProgressBar` whose numbers are read every
    ``log_every_n_steps`` optimiser steps and drawn at most every ``min_interval`` seconds (see the
    module doc)."""

    def __init__(self, refresh_rate: int = 1, leave: bool = False, min_interval: float = 0.1) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self.min_interval = min_interval
        self._drawn_at = float("-inf")
        self._shown: dict[str, Any] = {}
        self._read_at: int | None = None

    @override
    def _should_update(self, current: int, total: int) -> bool:
        if not super()._should_update(current, total):
            return False
        now = time.monotonic()
        if current != total and now - self._drawn_at < self.min_interval:
            return False
        self._drawn_at = now
        return True

    @override
    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        step = int(trainer.global_step)
        every = max(1, int(trainer.log_every_n_steps))
        # a logging step passed since the last read (the bar may not be drawn at that very step)
        if not trainer.training or self._read_at is None or step // every != self._read_at // every:
            steps = {k: float(v) for k, v in trainer.logged_metrics.items() if k.startswith("train/") and k.endswith("_step")}
            self._shown = {**super().get_metrics(trainer, pl_module), **steps}
            self._read_at = step
        return self._shown

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._read_at = None  # the epoch's numbers: read them now
        super().on_train_epoch_end(trainer, pl_module)


__all__ = ["SyncFreeProgressBar"]
