"""The ``run.*`` options of every command, and the config's way into the run folder and W&B.

:class:`RunOptions` is the ``run`` group of the parser; :class:`WandbConfigCallback` writes the
resolved ``config.yaml`` and the W&B run config; :func:`whole_batch_counts` reads ``--trainer.limit_*``
as the whole numbers they were written as.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

WANDB_PROJECT = "contrastive-pruning"
RESUME_MODES = ("never", "auto")


@dataclass
class RunOptions:
    """Run folder, W&B identity, resuming and checkpointing.

    Args:
        root: parent folder of all run folders.
        group: experiment name; the run folder's parent and the W&B ``group``.
        name: run name (default: the method, e.g. ``sup``/``supcon``, plus the seed).
        dir: use exactly this run folder (multi-node jobs: give every node the same path).
        tags: extra W&B tags (the pruning schedule and sparsity are added automatically).
        wandb_mode: ``offline`` (default; ``wandb sync`` later), ``online`` or ``disabled``;
            defaults to ``$WANDB_MODE`` when that is set.
        wandb_project: W&B project.
        resume: ``never`` (default: a folder that already holds a run is an error) or ``auto``:
            continue from ``<run folder>/checkpoints/last.ckpt`` when there is one (same W&B run,
            CSV appended), start in that folder otherwise, do nothing if the run is complete. Without
            ``dir``, ``auto`` names the folder by a hash of the config, so the same command finds it.
        checkpoint_minutes: longest stretch of training time between two ``last.ckpt`` writes inside
            an epoch (one is always written at every epoch end); 0 = only at epoch ends.
    """

    root: str = "runs"
    group: str = "default"
    name: str | None = None
    dir: str | None = None
    tags: list[str] = field(default_factory=list)
    wandb_mode: str | None = None
    wandb_project: str = WANDB_PROJECT
    resume: str = "never"
    checkpoint_minutes: float = 30.0


class WandbConfigCallback(SaveConfigCallback):
    """Save ``config.yaml`` in the run folder and put the whole resolved config into the W&B run config."""

    def save_config(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        # rank 0 only (Lightning calls this on global zero): always <run_dir>/config.yaml
        path = Path(trainer.default_root_dir) / self.config_filename
        path.parent.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, str(path), skip_none=False, overwrite=True, multifile=False)
        config = self.config.as_dict() if hasattr(self.config, "as_dict") else dict(self.config)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update(config, allow_val_change=True)


#: Trainer values that are a number of batches when whole, a fraction of the loader when in [0, 1]
BATCH_COUNTS = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches", "overfit_batches",
                 "val_check_interval")  # fmt: skip


def whole_batch_counts(trainer: Any) -> None:
    """``--trainer.limit_train_batches 20`` means 20 batches: some installs parse the flag's
    ``Union[int, float]`` as the float 20.0, which Lightning would reject; a whole float above 1 is
    made the int it was written as (1.0 stays 1.0: all batches)."""
    for key in BATCH_COUNTS:
        value = trainer.get(key)
        if isinstance(value, float) and value > 1 and value.is_integer():
            trainer[key] = int(value)
