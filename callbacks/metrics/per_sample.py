"""Per-sample arrays keyed by dataset index: collect, gather across ranks, de-duplicate, merge to disk.

Several metric callbacks contribute columns to one file per stage, ``<run_dir>/per_sample/<stage>.npz``
(``test.npz``, ``val_epoch<k>.npz``): :class:`~callbacks.metrics.predictions.PerSamplePredictions`
writes ``index``, ``label``, ``pred`` (``logits``), :class:`~callbacks.metrics.q_score.QScore` adds
``q_score``, ``z_score``, ``l1_norm``, :class:`~callbacks.metrics.prediction_depth_callback.PredictionDepth`
adds ``pd_score``, and so on. Every array has one row per sample, rows sorted by ``index``.

Its jobs are split over five modules; this one holds the paths, the write on rank 0, the check of a step's
outputs and :class:`PerSampleCallback`, and re-exports the others' names:

* :mod:`callbacks.metrics.arrays` — de-duplicate, merge, read and write the ``.npz`` arrays;
* :mod:`callbacks.metrics.collector` — :class:`PerSampleCollector` (per batch, then across ranks);
* :mod:`callbacks.metrics.logs` — epoch scalars and W&B media;
* :mod:`common.timing` — the :class:`~common.timing.Stopwatch` the callbacks time their work with
  (``predictions_seconds``, ``q_score_seconds``, ``pd_seconds``, ``umap_seconds`` in ``run.json``).

How a callback uses them:

1. on each batch, :meth:`PerSampleCollector.add` the batch's ``index`` and its per-sample tensors
   (kept on CPU, this rank only);
2. at epoch end, **every rank** calls :meth:`PerSampleCollector.gather` (a collective): rows of all
   ranks are concatenated, duplicates removed by index (``DistributedSampler`` pads the last batch
   with repeated samples) and sorted by index, so the result has exactly one row per sample;
3. :func:`write_per_sample` merges the arrays into the stage's file on global rank 0 (atomic
   rename), keeping arrays other callbacks wrote, after checking the ``index`` columns are equal.

If the file already holds a *different* index set (a stale file from an earlier ``test`` on other
data in the same run folder), it is replaced with a warning instead of being mixed.

The W&B helpers (:func:`wandb_logger`, :func:`log_histogram`, ...) do nothing when no
:class:`~lightning.pytorch.loggers.WandbLogger` is attached, so no callback fails without W&B.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from torch import Tensor
from typing_extensions import override

from callbacks.metrics.arrays import dedup_sort, merge_arrays, merge_into_npz, read_npz
from callbacks.metrics.collector import PerSampleCollector
from callbacks.metrics.logs import log_artifact_file, log_histogram, log_image, log_scalars, log_table, log_wandb, wandb_logger
from callbacks.run_summary import run_dir
from common.distributed import all_gather_rows
from common.errors import ConfigError
from common.run_folder import FIGURES_DIR, per_sample_file
from common.timing import Stopwatch


# -- paths ------------------------------------------------------------------------------------
def per_sample_path(trainer: pl.Trainer, stage: str) -> Path:
    """``<run_dir>/per_sample/<stage>.npz``."""
    return run_dir(trainer) / per_sample_file(stage)


def figure_path(trainer: pl.Trainer, name: str) -> Path:
    """``<run_dir>/figures/<name>``."""
    return run_dir(trainer) / FIGURES_DIR / name


def write_per_sample(trainer: pl.Trainer, path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Merge ``arrays`` into ``path`` on global rank 0 (other ranks return at once)."""
    if trainer.is_global_zero:
        merge_into_npz(path, arrays)


def require_outputs(outputs: Any, keys: Iterable[str], *, who: str, hook: str) -> Mapping[str, Tensor]:
    """Check that a ``test_step`` / ``validation_step`` returned a dict with ``keys``."""
    keys = list(keys)
    if not isinstance(outputs, Mapping) or any(k not in outputs for k in keys):
        got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
        raise ConfigError(
            f"{who} needs the LightningModule's {hook} to return a dict with keys {keys}; got {got}"
        )
    return outputs


__all__ = [
    "PerSampleCollector",
    "all_gather_rows",
    "dedup_sort",
    "merge_arrays",
    "merge_into_npz",
    "read_npz",
    "per_sample_path",
    "figure_path",
    "write_per_sample",
    "require_outputs",
    "log_scalars",
    "wandb_logger",
    "log_wandb",
    "log_histogram",
    "log_image",
    "log_table",
    "log_artifact_file",
]


class PerSampleCallback(pl.Callback):
    """What every per-sample metric callback shares: collect at test time and, every
    ``every_n_val_epochs`` validation epochs (never in the sanity check), at validation time.

    Subclasses implement ``_collect(outputs, hook)`` (add one batch's columns to
    ``self._collector``) and ``_finish(trainer, pl_module, *, stage, prefix)`` (gather and write);
    validation results go to stage ``val_epoch<k>`` with metric prefix ``val``.
    """

    def __init__(self, every_n_val_epochs: int = 0) -> None:
        self.every_n_val_epochs = every_n_val_epochs
        self._collector = PerSampleCollector()
        self._active = False
        #: the callback's own time in this test (batches and epoch end), for its ``*_seconds`` in run.json
        self._timer = Stopwatch()

    def _collect(self, outputs: Any, hook: str) -> None:
        raise NotImplementedError

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, stage: str, prefix: str) -> Any:
        raise NotImplementedError

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collector.clear()
        self._timer.reset()

    @override
    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if dataloader_idx == 0:
            self._collect(outputs, "test_step")

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        n = self.every_n_val_epochs
        self._active = n > 0 and not trainer.sanity_checking and (trainer.current_epoch + 1) % n == 0
        self._collector.clear()

    @override
    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._active and dataloader_idx == 0:
            self._collect(outputs, "validation_step")

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._active:
            self._finish(trainer, pl_module, stage=f"val_epoch{trainer.current_epoch}", prefix="val")
            self._active = False
