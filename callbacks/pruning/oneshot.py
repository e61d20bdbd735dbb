"""One-Shot pruning: prune a trained model once to the final sparsity, fine-tune with the masks fixed.

REFERENCE §2 and the authors' code (``sup_pruning_finetune.py`` / ``clr_pruning_finetune.py``):
the trained **dense** models are pruned globally (one |w| threshold over every Conv2d weight and
every Linear weight and bias, the classifier included: ``targets: network``) and fine-tuned with
cross-entropy for 30 epochs on the supervised augmentation at batch 128, SGD lr 1e-3, Nesterov,
momentum 0.9, no weight decay, the whole model in train mode (``model.train()``).

Two modes:

* **child of a dense run** (``parent``: a finished dense run folder, its checkpoint, or a folder of
  dense runs from which the one with this run's seed is taken): the parent's final weights are
  loaded, pruned at once and fine-tuned; ``trainer.max_epochs`` = ``finetune_epochs`` is the whole
  run. ``run.json`` records ``parent_run`` (path, W&B id, seed, test accuracy) and ``analyze``
  pairs each child with its parent. This is the paper's protocol: the One-Shot models *are* the
  dense population's models, pruned.
* **retrain from scratch** (no ``parent``): train dense for ``max_epochs - finetune_epochs``
  epochs in the same fit (Sup: 205 + 30; SCL: 500 contrastive + 100 head + 30), then prune and
  fine-tune.

Contract with the LightningModule: :meth:`configure_model` sets ``pl_module.finetune_epochs``,
``finetune_spec`` (the fine-tune loader) and, with a parent, ``finetune_only`` and the weights;
the module's ``phase`` is then ``"finetune"`` in those epochs and its training step uses
cross-entropy on encoder + classifier. At the start of the first fine-tuning epoch the callback
prunes and replaces the optimiser by SGD over all the module's parameters with no LR scheduler.
When a fit is resumed inside the fine-tuning phase the same optimiser is installed before
Lightning restores the optimiser state from the checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from callbacks.pruning import module_api
from callbacks.pruning.base import PruningCallback
from callbacks.run_summary import read_run_json
from common.data_spec import AUGMENTATIONS, TrainDataSpec
from common.errors import ConfigError, check_choice, check_range


def _seed() -> int | None:
    seed = os.environ.get("PL_GLOBAL_SEED")
    return int(seed) if seed not in (None, "") else None


def resolve_parent(parent: str, seed: int | None) -> tuple[Path, Path]:
    """``(run folder, checkpoint)`` of a One-Shot parent given as a run folder, a ``.ckpt`` inside
    one, or a folder of run folders (the complete dense one whose seed is ``seed``).

    Raises:
        ConfigError: nothing usable there (one line naming what was looked for).
    """
    path = Path(parent)
    if path.is_file():
        folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return folder, path
    if not path.is_dir():
        raise ConfigError(f"pruning.init_args.parent={parent!r} does not exist; give a dense run folder, its checkpoint, or a folder of dense runs")
    if (path / "run.json").is_file():
        return path, path / "checkpoints" / "last.ckpt"
    matches = []
    for candidate in sorted(p.parent for p in path.rglob("run.json") if "wandb" not in p.parts):
        summary = read_run_json(candidate) or {}
        if summary.get("seed") == seed and summary.get("status") == "complete" and not summary.get("pruning"):
            matches.append(candidate)
    if len(matches) != 1:
        found = "none" if not matches else f"{len(matches)} ({', '.join(str(m) for m in matches[:3])})"
        raise ConfigError(
            f"pruning.init_args.parent={parent!r}: found {found} complete dense run(s) with seed {seed} below it; "
            "give the parent run folder itself, or keep exactly one dense run per seed there"
        )
    return matches[0], matches[0] / "checkpoints" / "last.ckpt"


class OneShotPruning(PruningCallback):
    """Prune once (at the start of the fine-tune phase), then fine-tune with fixed masks.

    Args:
        final_sparsity: fraction of prunable weights set to zero, in ``[0, 1)``.
        finetune_epochs: epochs of fine-tuning (``parent`` given: equals ``trainer.max_epochs``;
            otherwise the last ``finetune_epochs`` of the run, in ``[1, max_epochs - 1]``).
        finetune_lr: SGD learning rate of the fine-tuning phase (> 0, constant).
        finetune_momentum: SGD momentum in ``[0, 1)``.
        finetune_nesterov: Nesterov momentum (needs ``finetune_momentum > 0``).
        finetune_weight_decay: L2 weight decay (>= 0; the authors: none).
        finetune_batch_size: per-device batch size of the fine-tune loader (``None`` = the
            datamodule's ``batch_size``; the authors: 128).
        finetune_augmentation: its augmentation (the authors: ``supervised``, crop + flips).
        parent: a finished dense run to prune (its folder, its checkpoint, or a folder of dense runs
            holding one with this run's seed); ``None`` = train dense first in this fit.
        **kwargs: the mask options (scope, granularity, n, m, norm, nm_indivisible,
            min_layer_density, targets) of :class:`callbacks.pruning.base.PruningCallback` (the
            paper's configs: global, unstructured, ``targets: network``; the default stays the
            encoder's weights).
    """

    schedule_name = "oneshot"

    def __init__(
        self,
        final_sparsity: float,
        finetune_epochs: int = 30,
        finetune_lr: float = 1e-3,
        finetune_momentum: float = 0.9,
        finetune_nesterov: bool = True,
        finetune_weight_decay: float = 0.0,
        finetune_batch_size: int | None = 128,
        finetune_augmentation: str = "supervised",
        parent: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(final_sparsity, **kwargs)
        check_range("finetune_epochs", finetune_epochs, low=1)
        check_range("finetune_lr", finetune_lr, low=0.0, low_inclusive=False)
        check_range("finetune_momentum", finetune_momentum, low=0.0, high=1.0, high_inclusive=False)
        check_range("finetune_weight_decay", finetune_weight_decay, low=0.0)
        if finetune_batch_size is not None:
            check_range("finetune_batch_size", finetune_batch_size, low=1)
        check_choice("finetune_augmentation", finetune_augmentation, AUGMENTATIONS)
        if finetune_nesterov and finetune_momentum == 0:
            raise ConfigError(
                "finetune_nesterov=True needs momentum; finetune_momentum=0 must be in (0, 1) or set finetune_nesterov=False"
            )
        self.finetune_epochs = int(finetune_epochs)
        self.finetune_lr = float(finetune_lr)
        self.finetune_momentum = float(finetune_momentum)
        self.finetune_nesterov = bool(finetune_nesterov)
        self.finetune_weight_decay = float(finetune_weight_decay)
        self.finetune_batch_size = finetune_batch_size
        self.finetune_augmentation = finetune_augmentation
        self.parent = parent
        self._parent: dict[str, Any] | None = None  # resolved parent run (path, checkpoint, summary)

    def prune_epoch(self, trainer: pl.Trainer) -> int:
        """The epoch at whose start the model is pruned: ``max_epochs - finetune_epochs``."""
        return int(trainer.max_epochs) - self.finetune_epochs

    @property
    def pruned(self) -> bool:
        """Whether the one pruning event has happened (restored from checkpoints)."""
        return self.tracker.last_event is not None

    # -- the module ---------------------------------------------------------------------------------
    @override
    def configure_model(self, pl_module: pl.LightningModule) -> None:
        if not module_api.has_finetune_phase(pl_module):
            raise ConfigError(
                f"OneShotPruning needs a model with a fine-tuning phase; {type(pl_module).__name__} has no "
                "finetune_epochs attribute"
            )
        pl_module.finetune_epochs = self.finetune_epochs
        batch_size = self.finetune_batch_size
        if batch_size is not None:
            pl_module.finetune_spec = TrainDataSpec(self.finetune_augmentation, 1, batch_size)
        if self.parent is not None:
            pl_module.finetune_only = True
            if self._parent is None:
                self._parent = self._load_parent(pl_module)

    def _load_parent(self, pl_module: pl.LightningModule) -> dict[str, Any]:
        assert self.parent is not None
        folder, ckpt = resolve_parent(self.parent, _seed())
        summary = read_run_json(folder) or {}
        if summary.get("status") != "complete":
            raise ConfigError(
                f"pruning.init_args.parent: {folder} is not a complete run (status {summary.get('status', 'unknown')}); "
                "finish (or --run.resume auto) the dense run first"
            )
        if summary.get("pruning"):
            raise ConfigError(f"pruning.init_args.parent: {folder} is a pruned run ({summary['pruning']}); One-Shot prunes a dense parent")
        method = module_api.method(pl_module)
        if summary.get("method") not in (None, method):
            raise ConfigError(f"pruning.init_args.parent: {folder} trained method {summary.get('method')!r}, this model is {method!r}")
        if not ckpt.is_file():
            raise ConfigError(f"pruning.init_args.parent: {ckpt} does not exist (the parent's final checkpoint)")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        missing, unexpected = pl_module.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(
                f"pruning.init_args.parent: {ckpt} does not fit this model (missing {list(missing)[:3]}, unexpected "
                f"{list(unexpected)[:3]}); use the same model.init_args as the parent"
            )
        return {
            "path": str(folder.resolve()), "checkpoint": str(ckpt.resolve()), "run_id": summary.get("wandb_run_id") or folder.name,
            "seed": summary.get("seed"), "test_acc": summary.get("test_acc"),
        }  # fmt: skip

    def parent_summary(self) -> dict[str, Any] | None:
        """``parent_run`` of run.json (a child of a dense run), ``None`` otherwise."""
        return None if self._parent is None else dict(self._parent)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)  # configure_model, check_model
        if stage == "fit":
            self.check_fit_config(trainer.max_epochs, pl_module)

    @override
    def check_max_epochs(self, max_epochs: int | None) -> None:
        """Raise :class:`ConfigError` when ``max_epochs`` (``trainer.max_epochs``) cannot hold the
        fine-tuning phase (a child of a parent fine-tunes for all of them)."""
        if self.parent is None and (max_epochs is None or max_epochs < 2 or self.finetune_epochs >= max_epochs):
            high = "max_epochs - 1" if max_epochs is None or max_epochs < 2 else f"{max_epochs - 1:g}"
            raise ConfigError(
                f"finetune_epochs={self.finetune_epochs} is out of range for trainer.max_epochs={max_epochs!r}; "
                f"it must be in [1, {high}] (or give pruning.init_args.parent to fine-tune a trained dense run)"
            )

    def check_fit_config(self, max_epochs: int | None, pl_module: pl.LightningModule) -> None:
        """:meth:`check_max_epochs`, then the module's own ``check_fit_config``. Only checks: the
        module must have been configured first (:meth:`configure_model`; ``setup`` and ``training/lightning_cli.py`` do
        that), as the module's check needs its fine-tune phase."""
        self.check_max_epochs(max_epochs)
        module_api.check_fit_config(pl_module, max_epochs)

    @override
    def unfinished_reason(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str | None:
        return None if self.pruned else "the One-Shot pruning event never happened"

    # -- training -------------------------------------------------------------------------------
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

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # resumed inside the fine-tuning phase (or a child, which is all fine-tune): install the
        # fine-tuning optimiser before Lightning loads the checkpoint's optimiser state into it
        if self.pruned or self.parent is not None:
            self._install_finetune_optimizer(trainer, pl_module)

    def _prune_now(self, trainer: pl.Trainer) -> bool:
        """Whether this epoch starts the fine-tune phase and the one pruning event is still to come."""
        return not self.pruned and trainer.current_epoch >= self.prune_epoch(trainer)

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._prune_now(trainer):
            return
        self.update_masks(trainer, pl_module, self.final_sparsity)
        self.tracker.last_event = 0
        if self.parent is None:
            self._install_finetune_optimizer(trainer, pl_module)

    @override
    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        out = super().run_summary(trainer, pl_module)
        out["oneshot_mode"] = "child" if self.parent is not None else "retrain"
        return out
