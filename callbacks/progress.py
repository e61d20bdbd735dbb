"""Lightning's progress bar without a device read per step.

A value logged with ``prog_bar=True, on_step=True`` is converted to a Python number (``.item()``) by
Lightning's logger connector at the end of every batch, whether or not a bar shows it: on a GPU a
device-to-host synchronisation per step, so the host never queues the next step while the GPU runs
this one. The training modules therefore log their step losses with ``prog_bar=False``, and
:class:`SyncFreeProgressBar` shows them anyway: it moves the bar at every batch as before, and every
``trainer.log_every_n_steps`` optimiser steps (when the loggers read them too) and at the ends of
epochs it reads the logged ``train/..._step`` values and the epoch values; in between it shows the
last values read. ``training/lightning_cli.py`` uses it unless the config names a progress bar of its own or
``trainer.enable_progress_bar`` is false.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from typing_extensions import override


class SyncFreeProgressBar(TQDMProgressBar):
    """:class:`~lightning.pytorch.callbacks.TQDMProgressBar` whose numbers are read every
    ``log_every_n_steps`` optimiser steps (see the module doc)."""

    def __init__(self, refresh_rate: int = 1, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._shown: dict[str, Any] = {}
        self._read_at: int | None = None

    @override
    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        step = int(trainer.global_step)
        every = max(1, int(trainer.log_every_n_steps))
        if not trainer.training or self._read_at is None or (step % every == 0 and step != self._read_at):
            steps = {k: float(v) for k, v in trainer.logged_metrics.items() if k.startswith("train/") and k.endswith("_step")}
            self._shown = {**super().get_metrics(trainer, pl_module), **steps}
            self._read_at = step
        return self._shown

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._read_at = None  # the epoch's numbers: read them now
        super().on_train_epoch_end(trainer, pl_module)


__all__ = ["SyncFreeProgressBar"]
