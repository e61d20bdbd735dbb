"""One-Shot pruning: train dense, prune once to the final sparsity, fine-tune with masks fixed.

REFERENCE §2 ([CORTI] code): prune globally (one threshold over all prunable weights) at the end of
training, then fine-tune the whole network with cross-entropy for 30 epochs, SGD lr 1e-3, nesterov,
momentum 0.9. The run's length is ``trainer.max_epochs``; the last ``finetune_epochs`` of it are the
fine-tuning phase, so the dense phases take ``max_epochs - finetune_epochs`` epochs.

Contract with the LightningModule: in ``setup`` this callback sets ``pl_module.finetune_epochs``;
the module's ``phase`` is then ``"finetune"`` in those last epochs and its ``training_step`` uses
cross-entropy on encoder + classifier (for SupCon: contrastive phase, head phase, then this).
At the start of the first fine-tuning epoch the callback prunes and replaces the optimiser by
SGD over all the module's parameters (those that receive no gradient are left alone by SGD) with no
LR scheduler. When a fit is resumed inside the fine-tuning phase the same optimiser is installed
before Lightning restores the optimiser state from the checkpoint.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from callbacks.pruning.base import PruningCallback
from lightning_modules.errors import ConfigError, check_range


class OneShotPruning(PruningCallback):
    """Prune once at epoch ``max_epochs - finetune_epochs``, then fine-tune with fixed masks.

    Args:
        final_sparsity: fraction of prunable weights set to zero, in ``[0, 1)``.
        finetune_epochs: epochs of fine-tuning at the end of the run, in ``[1, max_epochs - 1]``.
        finetune_lr: SGD learning rate of the fine-tuning phase (> 0, constant).
        finetune_momentum: SGD momentum in ``[0, 1)``.
        finetune_nesterov: Nesterov momentum (needs ``finetune_momentum > 0``).
        finetune_weight_decay: L2 weight decay (>= 0).
        scope, granularity, n, m, norm, nm_indivisible, min_layer_density: see
            :class:`callbacks.pruning.base.PruningCallback` (the paper: global, unstructured).
    """

    schedule_name = "oneshot"

    def __init__(
        self,
        final_sparsity: float,
        finetune_epochs: int = 30,
        finetune_lr: float = 1e-3,
        finetune_momentum: float = 0.9,
        finetune_nesterov: bool = True,
        finetune_weight_decay: float = 5e-4,
        scope: str = "global",
        granularity: str = "unstructured",
        n: int = 2,
        m: int = 4,
        norm: int = 1,
        nm_indivisible: str = "error",
        min_layer_density: float = 0.0,
    ) -> None:
        super().__init__(
            final_sparsity, scope=scope, granularity=granularity, n=n, m=m, norm=norm,
            nm_indivisible=nm_indivisible, min_layer_density=min_layer_density,
        )
        check_range("finetune_epochs", finetune_epochs, low=1)
        check_range("finetune_lr", finetune_lr, low=0.0, low_inclusive=False)
        check_range("finetune_momentum", finetune_momentum, low=0.0, high=1.0, high_inclusive=False)
        check_range("finetune_weight_decay", finetune_weight_decay, low=0.0)
        if finetune_nesterov and finetune_momentum == 0:
            raise ConfigError(
                "finetune_nesterov=True needs momentum; finetune_momentum=0 must be in (0, 1) or set finetune_nesterov=False"
            )
        self.finetune_epochs = int(finetune_epochs)
        self.finetune_lr = float(finetune_lr)
        self.finetune_momentum = float(finetune_momentum)
        self.finetune_nesterov = bool(finetune_nesterov)
        self.finetune_weight_decay = float(finetune_weight_decay)

    def prune_epoch(self, trainer: pl.Trainer) -> int:
        """The epoch at whose start the model is pruned: ``max_epochs - finetune_epochs``."""
        return int(trainer.max_epochs) - self.finetune_epochs

    @property
    def pruned(self) -> bool:
        """Whether the one pruning event has happened (restored from checkpoints)."""
        return self._last_event is not None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        self.check_fit_config(trainer.max_epochs, pl_module)
        pl_module.finetune_epochs = self.finetune_epochs

    def check_fit_config(self, max_epochs: int | None, pl_module: pl.LightningModule) -> None:
        """Raise :class:`ConfigError` when ``max_epochs`` (``trainer.max_epochs``) cannot hold the
        fine-tuning phase or the module has none. Called from ``setup``; a CLI can call it before the
        Trainer and its loggers exist, with the configured ``trainer.max_epochs``."""
        if max_epochs is None or max_epochs < 2 or self.finetune_epochs >= max_epochs:
            high = "max_epochs - 1" if max_epochs is None or max_epochs < 2 else f"{max_epochs - 1:g}"
            raise ConfigError(
                f"finetune_epochs={self.finetune_epochs} is out of range for trainer.max_epochs={max_epochs!r}; "
                f"it must be in [1, {high}]"
            )
        if not hasattr(pl_module, "finetune_epochs"):
            raise ConfigError(
                f"OneShotPruning needs a model with a fine-tuning phase; {type(pl_module).__name__} has no "
                "finetune_epochs attribute"
            )
        # hand the fine-tune length to the module now, so its own phase checks (e.g. SupCon's
        # head_epochs + finetune_epochs < max_epochs) also run before any Trainer or logger exists
        pl_module.finetune_epochs = self.finetune_epochs
        if hasattr(pl_module, "check_fit_config"):
            pl_module.check_fit_config(max_epochs, None)

    def finetune_optimizer(self, pl_module: pl.LightningModule) -> torch.optim.Optimizer:
        """SGD over the whole network for the fine-tuning phase (REFERENCE §2)."""
        return torch.optim.SGD(
            list(pl_module.parameters()),
            lr=self.finetune_lr,
            momentum=self.finetune_momentum,
            nesterov=self.finetune_nesterov,
            weight_decay=self.finetune_weight_decay,
        )

    def _install_finetune_optimizer(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.strategy.optimizers = [self.finetune_optimizer(pl_module)]
        trainer.strategy.lr_scheduler_configs = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # resumed inside the fine-tuning phase: install the fine-tuning optimiser before Lightning
        # loads the checkpoint's optimiser state into it
        if self.pruned:
            self._install_finetune_optimizer(trainer, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pruned or trainer.current_epoch < self.prune_epoch(trainer):
            return
        self.update_masks(trainer, pl_module, self.final_sparsity)
        self._last_event = 0
        self._install_finetune_optimizer(trainer, pl_module)
