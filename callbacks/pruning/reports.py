"""Mask dynamics, training cost, logging and run.json summary: the :class:`PruningReports` mixin.

Part of :class:`~callbacks.pruning.base.PruningCallback`, split out of :mod:`callbacks.pruning.base`
by job (see its module docstring for what is logged and summarised). It reads the callback's
``self.tracker`` (:class:`~sparsity.tracker.MaskTracker`), ``self.options``, ``self.events`` and
``self.mask_sha256_per_rank``, and calls its ``prunable``, ``final_sparsity`` and
``target_densities``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from callbacks.pruning import module_api
from sparsity.dynamics import TRAIN_FORWARD_MULTIPLIER, Branches, MaskChange
from sparsity.masks import layer_sparsities, sparsity_of
from sparsity.tracker import MaskTracker


class PruningReports:
    """What :class:`~callbacks.pruning.base.PruningCallback` logs and reports about its masks."""

    # ------------------------------------------------------------------------------------------
    # mask dynamics and training cost
    # ------------------------------------------------------------------------------------------
    def branch_costs(self, pl_module: pl.LightningModule) -> Branches:
        """``(forward passes per image, layer densities)`` of every copy of the prunable layers that a
        training image goes through: the trained encoder (3 passes: forward and two backward) and,
        when the module has a momentum encoder (``target_pairs()``), its forward pass."""
        costs: Branches = [(TRAIN_FORWARD_MULTIPLIER, self.tracker.densities())]
        if module_api.has_momentum_encoder(pl_module):
            costs.append((1.0, self.target_densities()))
        return costs

    def _log_dynamics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, change: MaskChange, prefix: str = "pruning/"
    ) -> None:
        metrics = MaskTracker.change_metrics(change, prefix)
        if prefix == "pruning/":
            metrics.update(self.tracker.cost.metrics(self.branch_costs(pl_module), getattr(trainer, "world_size", 1)))
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=int(trainer.global_step))

    def dynamics_summary(self) -> dict[str, Any]:
        """run.json fields: oscillation at the last mask change and on average over the changes after the
        first (the first one is measured against the dense network), cumulative FLOPs saving."""
        return self.tracker.dynamics_summary()

    # ------------------------------------------------------------------------------------------
    # logging and summary
    # ------------------------------------------------------------------------------------------
    def _log(self, trainer: pl.Trainer, weights: dict[str, Tensor], target: float, measured: float) -> None:
        per_layer = layer_sparsities(weights)
        metrics = {"sparsity/global": measured, "sparsity/target": target}
        metrics.update({f"sparsity/{name}": value for name, value in per_layer.items()})
        step = int(trainer.global_step)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
            if isinstance(logger, WandbLogger):
                rows = [[step, name, weights[name].numel(), target, value] for name, value in per_layer.items()]
                logger.log_table(
                    key="pruning/layers", columns=["step", "layer", "numel", "target", "sparsity"], data=rows, step=None
                )

    def achieved_sparsity(self, pl_module: pl.LightningModule) -> float:
        """Zeros / size over all of ``pl_module.prunable_parameters()``, measured from the weights."""
        params = module_api.prunable_parameters(pl_module, caller=type(self).__name__)
        return sparsity_of({name: p.detach() for name, p in params.items()})

    def mask_sha256(self) -> str:
        """SHA-256 (hex) of the masks: for each name in sorted order, the name, the shape and the
        mask's bytes (one byte per entry, True = kept). Equal digests = identical masks."""
        return self.tracker.sha256()

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """``pruning``, ``target_sparsity``, ``achieved_sparsity`` (+ options, the event table and
        :meth:`dynamics_summary`)."""
        return {
            "pruning": self.schedule_name,
            "target_sparsity": self.final_sparsity,
            "achieved_sparsity": self.achieved_sparsity(pl_module),
            "achieved_sparsity_targets": sparsity_of({n: p.detach() for n, p in self.prunable(pl_module).items()}),
            "pruning_targets": self.options.targets,
            "pruning_scope": self.options.scope,
            "pruning_granularity": self.options.granularity,
            "mask_sha256_per_rank": self.mask_sha256_per_rank,
            "pruning_events": [[e["step"], e["target"], e["measured"]] for e in self.events],
            **self.dynamics_summary(),
        }


__all__ = ["PruningReports"]
