"""Logging helpers of the metric callbacks: epoch scalars through ``pl_module.log`` and W&B media.

The W&B helpers do nothing when no :class:`~lightning.pytorch.loggers.WandbLogger` is attached
(or off global rank 0), so no callback fails without W&B.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.loggers import WandbLogger


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


__all__ = ["log_artifact_file", "log_histogram", "log_image", "log_scalars", "log_table", "log_wandb", "wandb_logger"]
