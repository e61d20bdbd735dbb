"""Per-sample arrays keyed by dataset index: collect, gather across ranks, de-duplicate, merge to disk.

Several metric callbacks contribute columns to one file per stage, ``<run_dir>/per_sample/<stage>.npz``
(``test.npz``, ``val_epoch<k>.npz``): :class:`~callbacks.metrics.predictions.PerSamplePredictions`
writes ``index``, ``label``, ``pred`` (``logits``), :class:`~callbacks.metrics.q_score.QScore` adds
``q_score``, ``z_score``, ``l1_norm``, :class:`~callbacks.metrics.prediction_depth.PredictionDepth`
adds ``pd_score``, and so on. Every array has one row per sample, rows sorted by ``index``.

How a callback uses this module:

1. on each batch, :meth:`PerSampleCollector.add` the batch's ``index`` and its per-sample tensors
   (kept on CPU, this rank only);
2. at epoch end, **every rank** calls :meth:`PerSampleCollector.gather` (a collective): rows of all
   ranks are concatenated, duplicates removed by index (``DistributedSampler`` pads the last batch
   with repeated samples) and sorted by index, so the result has exactly one row per sample;
3. :func:`write_per_sample` merges the arrays into the stage's file on global rank 0 (atomic
   rename), keeping arrays other callbacks wrote, after checking the ``index`` columns are equal.

If the file already holds a *different* index set (a stale file from an earlier ``test`` on other
data in the same run folder), it is replaced with a warning instead of being mixed.

The W&B helpers at the end (:func:`wandb_logger`, :func:`log_histogram`, ...) do nothing when no
:class:`~lightning.pytorch.loggers.WandbLogger` is attached, so no callback fails without W&B.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from callbacks.run_summary import run_dir
from common.distributed import all_gather_columns, all_gather_rows
from common.errors import ConfigError
from common.io import atomic_write_bytes
from common.run_folder import FIGURES_DIR, per_sample_file

INDEX = "index"


# -- paths ------------------------------------------------------------------------------------
def per_sample_path(trainer: pl.Trainer, stage: str) -> Path:
    """``<run_dir>/per_sample/<stage>.npz``."""
    return run_dir(trainer) / per_sample_file(stage)


def figure_path(trainer: pl.Trainer, name: str) -> Path:
    """``<run_dir>/figures/<name>``."""
    return run_dir(trainer) / FIGURES_DIR / name


# -- pure array helpers -----------------------------------------------------------------------
def dedup_sort(arrays: Mapping[str, np.ndarray], key: str = INDEX) -> dict[str, np.ndarray]:
    """Keep the first row of every distinct ``arrays[key]`` value and sort all arrays by it.

    Args:
        arrays: equal-length arrays ``[N, ...]``; ``arrays[key]`` is an integer ``[N]``.

    Returns:
        The same keys with ``[M, ...]`` rows, ``M`` = number of distinct keys, ascending ``key``.
    """
    if key not in arrays:
        raise KeyError(f"per-sample arrays need an {key!r} column, got {sorted(arrays)}")
    index = np.asarray(arrays[key])
    _check_rows(arrays, len(index))
    _, first = np.unique(index, return_index=True)  # sorted unique values, first occurrence of each
    return {name: np.asarray(value)[first] for name, value in arrays.items()}


def merge_arrays(old: Mapping[str, np.ndarray], new: Mapping[str, np.ndarray], key: str = INDEX) -> dict[str, np.ndarray]:
    """Add ``new``'s arrays to ``old``'s (``new`` wins on equal names); both must have equal ``key`` columns.

    Raises:
        ValueError: if the ``key`` columns differ (different sample sets cannot be merged row-wise).
    """
    if key in old and not np.array_equal(np.asarray(old[key]), np.asarray(new[key])):
        raise ValueError(
            f"cannot merge per-sample arrays: {key!r} columns differ (existing {len(old[key])} rows, new {len(new[key])} rows)"
        )
    return {**old, **new}


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def merge_into_npz(path: Path, arrays: Mapping[str, np.ndarray], key: str = INDEX) -> dict[str, np.ndarray]:
    """Merge ``arrays`` into the ``.npz`` at ``path`` (created if absent) with an atomic rename.

    Arrays already in the file and not in ``arrays`` are kept when the ``key`` columns are equal;
    if they differ the file is replaced by ``arrays`` alone (with a warning). Returns what was written.
    """
    _check_rows(arrays, len(arrays[key]))
    merged = dict(arrays)
    if path.exists():
        old = read_npz(path)
        try:
            merged = merge_arrays(old, arrays, key)
        except ValueError as err:
            rank_zero_warn(f"{path}: {err}; replacing the file's arrays {sorted(old)} with {sorted(arrays)}")
    buffer = io.BytesIO()
    np.savez(buffer, **merged)
    atomic_write_bytes(path, buffer.getvalue())
    return merged


def _check_rows(arrays: Mapping[str, Any], n: int) -> None:
    for name, value in arrays.items():
        if len(value) != n:
            raise ValueError(f"per-sample array {name!r} has {len(value)} rows, expected {n}")


# -- distributed gathering: common.distributed.all_gather_columns -------------------------------


class PerSampleCollector:
    """Per-batch tensors of this rank, keyed by name, with an ``index`` column.

    ``add(index=..., name=tensor, ...)`` stores detached CPU copies; :meth:`gather` returns NumPy
    arrays of all ranks, one row per distinct index, sorted by index.
    """

    def __init__(self) -> None:
        self._parts: dict[str, list[Tensor]] = {}

    def add(self, **tensors: Tensor) -> None:
        if INDEX not in tensors:
            raise KeyError(f"PerSampleCollector.add needs an {INDEX!r} tensor, got {sorted(tensors)}")
        n = len(tensors[INDEX])
        for name, value in tensors.items():
            value = torch.as_tensor(value).detach()
            if value.ndim == 0 or value.shape[0] != n:
                raise ValueError(f"per-sample tensor {name!r} has shape {tuple(value.shape)}, expected {n} rows")
            self._parts.setdefault(name, []).append(value.cpu())
        missing = set(self._parts) - set(tensors)
        if missing:
            raise KeyError(f"per-sample tensors {sorted(missing)} were given before but not in this batch")

    def clear(self) -> None:
        self._parts = {}

    def __len__(self) -> int:
        return sum(len(t) for t in self._parts.get(INDEX, []))

    def local(self) -> dict[str, Tensor]:
        """This rank's rows (concatenated, not de-duplicated)."""
        return {name: torch.cat(parts) for name, parts in self._parts.items()}

    def gather(self, trainer: pl.Trainer) -> dict[str, np.ndarray] | None:
        """All ranks' rows, de-duplicated by index and sorted (a collective: call on every rank).

        Returns ``None`` when no rank collected anything.
        """
        gathered = all_gather_columns(trainer, self.local())
        if not gathered:
            return None
        return dedup_sort({k: v.numpy() for k, v in gathered.items()})


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


# -- logging helpers --------------------------------------------------------------------------
def log_scalars(pl_module: pl.LightningModule, scalars: Mapping[str, float]) -> None:
    """Log epoch-level scalars through ``pl_module.log`` (every logger; values equal on all ranks)."""
    for name, value in scalars.items():
        if np.isfinite(value):
            pl_module.log(name, float(value), on_step=False, on_epoch=True, sync_dist=True)


def wandb_logger(trainer: pl.Trainer) -> WandbLogger | None:
    """The first attached :class:`WandbLogger`, or ``None``."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger
    return None


def log_wandb(trainer: pl.Trainer, payload: Mapping[str, Any]) -> bool:
    """``payload`` (W&B media objects) to the W&B run on rank 0, at ``trainer.global_step``; False if no W&B."""
    logger = wandb_logger(trainer)
    if logger is None or not trainer.is_global_zero:
        return False
    logger.log_metrics(dict(payload), step=trainer.global_step)
    return True


def log_histogram(trainer: pl.Trainer, key: str, values: np.ndarray, *, bins: int = 64) -> None:
    """A ``wandb.Histogram`` of ``values`` (non-finite values dropped), when W&B is attached."""
    if wandb_logger(trainer) is None or not trainer.is_global_zero:
        return
    import wandb

    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        log_wandb(trainer, {key: wandb.Histogram(finite, num_bins=bins)})


def log_image(trainer: pl.Trainer, key: str, path: Path, caption: str | None = None) -> None:
    """A PNG file as ``wandb.Image``, when W&B is attached."""
    if wandb_logger(trainer) is None or not trainer.is_global_zero:
        return
    import wandb

    log_wandb(trainer, {key: wandb.Image(str(path), caption=caption)})


def log_table(trainer: pl.Trainer, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A ``wandb.Table``, when W&B is attached."""
    if wandb_logger(trainer) is None or not trainer.is_global_zero:
        return
    import wandb

    log_wandb(trainer, {key: wandb.Table(columns=list(columns), data=[list(r) for r in rows])})


def log_artifact_file(trainer: pl.Trainer, path: Path, *, name: str, artifact_type: str) -> None:
    """Log one file as a W&B artifact of the run, when W&B is attached."""
    logger = wandb_logger(trainer)
    if logger is None or not trainer.is_global_zero:
        return
    import wandb

    run = logger.experiment
    artifact = wandb.Artifact(name=f"{name}-{run.id}", type=artifact_type)
    artifact.add_file(str(path), name=path.name)
    run.log_artifact(artifact)


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
        self._seconds = 0.0

    def _collect(self, outputs: Any, hook: str) -> None:
        raise NotImplementedError

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, stage: str, prefix: str) -> Any:
        raise NotImplementedError

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collector.clear()
        self._seconds = 0.0

    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if dataloader_idx == 0:
            self._collect(outputs, "test_step")

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        n = self.every_n_val_epochs
        self._active = n > 0 and not trainer.sanity_checking and (trainer.current_epoch + 1) % n == 0
        self._collector.clear()

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._active and dataloader_idx == 0:
            self._collect(outputs, "validation_step")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._active:
            self._finish(trainer, pl_module, stage=f"val_epoch{trainer.current_epoch}", prefix="val")
            self._active = False
