"""SyncCP's target (momentum) encoder masks and sparse random start: the :class:`TargetEncoderMasks` mixin.

Part of :class:`~callbacks.pruning.synccp.SynchronizedPruning`, split out of
:mod:`callbacks.pruning.synccp` by job (its module docstring says what SyncCP does). It reads the
callback's ``self.target`` (a second :class:`~sparsity.tracker.MaskTracker`), ``self._target_names``
(online name -> target name, set in ``setup``), ``self.density_gap``, ``self.revival`` and the
ERK options, and calls the base class's ``_bind``, ``_log`` and ``_log_dynamics``.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn

from callbacks.pruning.agreement import agree_across_ranks
from sparsity.erk import erk_densities, random_masks
from sparsity.masks import layer_sparsities, sparsity_of


class TargetEncoderMasks:
    """The target encoder's masks of :class:`~callbacks.pruning.synccp.SynchronizedPruning` and its ERK start."""

    def _target_params(self, pl_module: pl.LightningModule) -> dict[str, nn.Parameter]:
        return {target: pl_module.get_parameter(target) for target in self._target_names.values()}

    # ------------------------------------------------------------------------------------------
    # target masks
    # ------------------------------------------------------------------------------------------
    def _bind_target(self, pl_module: pl.LightningModule) -> None:
        if self.target_masks and self.synchronized:  # names checked; shapes were checked in setup
            params = self._target_params(pl_module)
            self.target.bind(params, kind="target-encoder", of="target parameters", check_shapes=False)
        else:
            self.target.unbind()

    def target_schedule(self, online_sparsity: float) -> float:
        """The target encoder's sparsity for an online sparsity: ``max(0, online - density_gap)``."""
        return max(0.0, float(online_sparsity) - self.density_gap)

    def update_target_masks(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sparsity: float) -> None:
        """Recompute the target encoder's masks for ``sparsity`` from its own weights; apply them."""
        params = self._target_params(pl_module)
        weights = {name: p.detach() for name, p in params.items()}
        dense = {name: self._dense(name, w).clone() for name, w in weights.items()} if self.revival else None
        previous = self.target_masks
        new = self.options.compute(
            self._scores(dense if dense is not None else weights), sparsity,
            current_masks=None if self.revival else (self.target_masks or None), allow_regrowth=self.revival,
        )  # fmt: skip
        self.target.masks = agree_across_ranks(trainer, new)
        self._bind_target(pl_module)
        self.target.apply()
        if self.revival:
            self._keep_aside(params, self.target_masks, previous, dense)
        measured = sparsity_of(weights)
        step = int(trainer.global_step)
        change = self.target.record(previous, step=step, target=float(sparsity), measured=measured)
        metrics = {"sparsity/target_encoder": measured, "sparsity/target_encoder_scheduled": float(sparsity)}
        metrics.update({f"sparsity/{name}": value for name, value in layer_sparsities(weights).items()})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        self._log_dynamics(trainer, pl_module, change, prefix="pruning/target_encoder/")

    def target_achieved_sparsity(self, pl_module: pl.LightningModule) -> float:
        """Zeros / size over the target encoder's copies of the prunable weights, measured."""
        return sparsity_of({name: p.detach() for name, p in self._target_params(pl_module).items()})

    # ------------------------------------------------------------------------------------------
    # the sparse random start (initial_mask="erk")
    # ------------------------------------------------------------------------------------------
    def _erk_start_due(self, trainer: pl.Trainer) -> bool:
        """Whether this fit starts from ERK masks: asked for, and a fresh run (no restored masks)."""
        return self.initial_mask == "erk" and not self.masks and int(trainer.global_step) == 0

    @torch.no_grad()
    def _erk_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Random ERK masks at density 1 - initial_sparsity (online) and + density_gap (target)."""
        params = self.prunable(pl_module)
        shapes = {name: tuple(p.shape) for name, p in params.items()}
        online = random_masks(params, erk_densities(shapes, 1.0 - self.initial_sparsity), seed=self.mask_seed)
        self._dense_online = {n: p.detach().clone() for n, p in params.items()} if self.revival else None
        self.tracker.masks = agree_across_ranks(trainer, online)
        self._bind(pl_module)
        self.tracker.apply()
        self.after_mask_change(trainer, pl_module, {})
        self._dense_online = None
        measured = sparsity_of({n: p.detach() for n, p in params.items()})
        change = self.tracker.record({}, step=0, target=self.initial_sparsity, measured=measured)
        self._log(trainer, {n: p.detach() for n, p in params.items()}, self.initial_sparsity, measured)
        self._log_dynamics(trainer, pl_module, change)
        if self.synchronized:
            target_density = min(1.0, 1.0 - self.initial_sparsity + self.density_gap)
            targets = self._target_params(pl_module)
            if target_density < 1.0:
                t_shapes = {name: tuple(p.shape) for name, p in targets.items()}
                masks = random_masks(targets, erk_densities(t_shapes, target_density), seed=self.mask_seed + 1)
            else:
                masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in targets.items()}
            self.target.masks = agree_across_ranks(trainer, masks)
            self._bind_target(pl_module)
            self.target.apply()
            if self.revival:
                self._keep_aside(targets, self.target_masks, {}, {n: p.detach().clone() for n, p in targets.items()})
            t_measured = sparsity_of({n: p.detach() for n, p in targets.items()})
            self.target.record({}, step=0, target=1.0 - target_density, measured=t_measured)
        self.tracker.last_event = self.event_key(trainer, 0)  # the start is this event: no magnitude masks on top


__all__ = ["TargetEncoderMasks"]
