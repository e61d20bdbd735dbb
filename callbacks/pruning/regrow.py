"""Prune-and-regrow dynamic sparse training, GraNet-style (Liu et al. 2021; REFERENCE §5 baseline b).

Every ``update_frequency`` optimiser steps from ``begin_step`` until ``regrow_end_step``:

1. **gradual magnitude pruning** to the cubic GMP target of that step (Zhu & Gupta, the schedule
   of :class:`GradualMagnitudePruning` with ``frequency = update_frequency``; ``final_sparsity``
   from ``end_step`` on);
2. **drop and regrow** (:func:`sparsity.dynamics.drop_and_regrow`): in every tensor drop
   the fraction ``r`` of the active weights with the smallest |w| and regrow as many inactive
   weights with the largest |gradient| (the *dense* gradient of that step, captured in
   ``on_before_optimizer_step`` before the base class zeroes the gradients of pruned weights:
   :mod:`sparsity.regrowth`).
   ``r`` decays with a cosine from ``drop_fraction`` at ``begin_step`` to 0 at ``regrow_end_step``.

Regrown weights start at exactly 0 and their optimiser state (momentum buffers, Adam moments) is
reset. The sparsity after an update is the schedule's (regrowth replaces what it drops), but
weights regrown at 0 count as zeros in the *measured* sparsity until the next step moves them.

``regrow_end_step`` defaults to the end of the module's pretraining phase (``pretrain_end_step()``,
the SSL modules) or the end of training. No regrowth happens at a step without gradients (e.g. the
very first event when ``begin_step = 0``). Logged at each update besides the base class's metrics:
``pruning/drop_fraction`` and ``pruning/regrown`` (fraction of the prunable weights regrown).
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from callbacks.pruning import module_api
from callbacks.pruning.cubic import CubicSchedulePruning
from common.errors import ConfigError, check_range
from sparsity.dynamics import cosine_decay
from sparsity.regrowth import Regrowth
from sparsity.schedules import cubic_sparsity


class PruneAndRegrow(CubicSchedulePruning):
    """Gradual magnitude pruning + periodic drop-and-regrow (GraNet).

    Args:
        final_sparsity: fraction of prunable weights that are zero at the end, in ``[0, 1)``.
        begin_step, end_step: the cubic schedule's first event and the step where
            ``final_sparsity`` is reached (optimiser steps).
        update_frequency: optimiser steps between topology updates (= schedule events), ``>= 1``.
        drop_fraction: ``r`` at ``begin_step``, in ``(0, 1)`` (GraNet: 0.5); cosine-decayed to 0.
        regrow_end_step: last step (exclusive) of topology updates; ``None`` = the module's
            ``pretrain_end_step()`` if it has one, else the run's last step. Must be ``> end_step``.
        initial_sparsity, scope, min_layer_density, begin_epoch, end_epoch, targets: see
            :class:`~callbacks.pruning.gmp.GradualMagnitudePruning`. Granularity is unstructured
            (single weights regrow), so of the mask options only these three are taken.
    """

    schedule_name = "regrow"

    def __init__(
        self,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        update_frequency: int,
        drop_fraction: float = 0.5,
        regrow_end_step: int | None = None,
        initial_sparsity: float = 0.0,
        scope: str = "global",
        min_layer_density: float = 0.0,
        begin_epoch: int | None = None,
        end_epoch: int | None = None,
        targets: str = "encoder",
    ) -> None:
        super().__init__(
            final_sparsity, begin_step, end_step, update_frequency, initial_sparsity=initial_sparsity, scope=scope,
            begin_epoch=begin_epoch, end_epoch=end_epoch, min_layer_density=min_layer_density, targets=targets,
        )
        check_range("drop_fraction", drop_fraction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        if regrow_end_step is not None and regrow_end_step <= end_step:
            raise ConfigError(
                f"regrow_end_step={regrow_end_step!r} is out of range; it must be in [{end_step + 1}, inf) "
                "(after end_step, where the schedule reaches final_sparsity)"
            )
        self.update_frequency = int(update_frequency)
        self.drop_fraction = float(drop_fraction)
        self.regrow_end_step = regrow_end_step
        self.regrow_end = regrow_end_step if regrow_end_step is not None else end_step + 1
        #: the dense gradients of an update's step and one record per topology update
        self.regrowth = Regrowth()

    @property
    def regrow_events(self) -> list[dict[str, Any]]:
        """One record per topology update: ``{"step", "drop_fraction", "regrown"}``."""
        return self.regrowth.events

    # -- schedule ------------------------------------------------------------------------------
    def _resolve_regrow_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> int:
        if self.regrow_end_step is not None:
            end = self.regrow_end_step
            if self.begin_epoch is not None:  # ΔGMP: the regrow window shifts with the schedule
                end += self.schedule_begin - self.begin_step
            return end
        pretrain_end = module_api.pretrain_end_step(pl_module)
        if pretrain_end is not None:
            return pretrain_end
        total = trainer.estimated_stepping_batches
        return int(total) if math.isfinite(total) else self.schedule_end + 1

    @override
    def event_key(self, trainer: pl.Trainer, step: int) -> int | None:
        if step < self.schedule_begin:
            return None if self.initial_sparsity == 0.0 else -1
        last = max(0, (self.regrow_end - 1 - self.schedule_begin) // self.update_frequency)
        return min((step - self.schedule_begin) // self.update_frequency, last)

    @override
    def target_sparsity(self, trainer: pl.Trainer, step: int) -> float:
        return cubic_sparsity(
            step, initial=self.initial_sparsity, final=self.final_sparsity, begin_step=self.schedule_begin,
            end_step=self.schedule_end, frequency=self.update_frequency,
        )

    def drop_fraction_at(self, step: int) -> float:
        """``r`` at optimiser step ``step``: cosine from ``drop_fraction`` to 0 over the regrow window."""
        return cosine_decay(self.drop_fraction, step, begin_step=self.schedule_begin, end_step=self.regrow_end)

    # -- topology update -----------------------------------------------------------------------
    @override
    def compute_new_masks(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, weights: dict[str, Tensor], sparsity: float
    ) -> dict[str, Tensor]:
        masks = super().compute_new_masks(trainer, pl_module, weights, sparsity)  # gradual magnitude step
        step = int(trainer.global_step)
        return self.regrowth.regrow(step, weights, masks, self.drop_fraction_at(step))

    @override
    def update_masks(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sparsity: float) -> None:
        before = {name: mask.clone() for name, mask in self.masks.items()}
        super().update_masks(trainer, pl_module, sparsity)
        # weights that were pruned before this update and are alive now: start at 0, no momentum
        revived = {name: self.masks[name] & ~before[name].to(self.masks[name].device) for name in before}
        self._reset_revived(trainer, pl_module, revived)
        total = sum(m.numel() for m in self.masks.values())
        metrics = {
            "pruning/drop_fraction": self.drop_fraction_at(int(trainer.global_step)),
            "pruning/regrown": self.regrow_events[-1]["regrown"] / total if total else 0.0,
        }
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=int(trainer.global_step))

    @torch.no_grad()
    def _reset_revived(self, trainer: pl.Trainer, pl_module: pl.LightningModule, revived: dict[str, Tensor]) -> None:
        params = self.prunable(pl_module)
        for name, where in revived.items():
            if not bool(where.any()):
                continue
            p = params[name]
            p.masked_fill_(where, 0.0)
            for optimizer in trainer.optimizers:
                for value in optimizer.state.get(p, {}).values():
                    if isinstance(value, Tensor) and value.shape == p.shape:
                        value.masked_fill_(where.to(value.device), 0)

    # -- hooks ---------------------------------------------------------------------------------
    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.schedule_begin, self.schedule_end = self.resolve_schedule(trainer, pl_module)
        self.regrow_end = self._resolve_regrow_end(trainer, pl_module)
        if self.regrow_end <= self.schedule_end:
            rank_zero_warn(
                f"prune-and-regrow updates stop at step {self.regrow_end}, before the schedule's end step "
                f"{self.schedule_end}: final_sparsity={self.final_sparsity:g} will not be reached"
            )
        super().on_train_start(trainer, pl_module)

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self.regrowth.gradients = self.dense_gradients_before_event(trainer, pl_module)
        super().on_before_optimizer_step(trainer, pl_module, optimizer)  # masks the gradients

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self.regrowth.gradients = None  # used by this step's update, or not needed: never reuse old gradients

    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["regrow_events"] = [dict(e) for e in self.regrow_events]
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.regrowth.events = [dict(e) for e in state_dict.get("regrow_events", [])]

    @override
    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        out = super().run_summary(trainer, pl_module)
        out["pruning_schedule"].update(
            {"update_frequency": self.update_frequency, "drop_fraction": self.drop_fraction, "regrow_end_step": self.regrow_end}
        )
        out["regrown_total"] = int(sum(e["regrown"] for e in self.regrow_events))
        return out


__all__ = ["PruneAndRegrow"]
