"""Gradual magnitude pruning (Zhu & Gupta 2017) and ΔGMP (the same schedule started later).

At the events ``begin_step, begin_step + frequency, ..., end_step`` of ``trainer.global_step``
(optimiser steps) the masks are recomputed from the current |w| for the cubic target of
:func:`callbacks.pruning.schedules.cubic_sparsity`; between events they are fixed, after
``end_step`` they stay at ``final_sparsity``. Pruned weights never come back.

ΔGMP: give ``begin_epoch`` and the schedule starts at ``begin_epoch * steps_per_epoch`` (real optimiser
steps per epoch, known when training starts). Choice made here: the schedule keeps its *length*
``end_step - begin_step`` (and its ``frequency``) — so "ΔGMP from epoch 50" is the GMP schedule of
the same config shifted later — unless ``end_epoch`` is also given, in which case it ends at
``end_epoch * steps_per_epoch``.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn

from callbacks.pruning.base import PruningCallback
from callbacks.pruning.schedules import cubic_sparsity, event_index, validate_schedule
from lightning_modules.errors import ConfigError, check_range


def optimizer_steps_per_epoch(trainer: pl.Trainer) -> int:
    """Optimiser steps in one training epoch on this rank: ``ceil(batches / accumulate_grad_batches)``.

    Lightning also steps on an epoch's last batch when it does not complete an accumulation window,
    hence the ceiling (``//`` would undercount by one step per epoch in that case).
    """
    batches = trainer.num_training_batches
    if not math.isfinite(batches):
        raise ConfigError(
            "begin_epoch/end_epoch need a training loader with a length (trainer.num_training_batches is inf); "
            "give begin_step/end_step in optimiser steps instead"
        )
    return max(1, math.ceil(int(batches) / trainer.accumulate_grad_batches))


class GradualMagnitudePruning(PruningCallback):
    """GMP / ΔGMP: cubic sparsity staircase driven by ``trainer.global_step``.

    Args:
        final_sparsity: fraction of prunable weights that are zero at the end, in ``[0, 1)``.
        begin_step: optimiser step of the first event (REFERENCE §2: Sup 1000, SCL 125).
        end_step: optimiser step of the last event, where ``final_sparsity`` is reached
            (Sup 20000, SCL 2476); must be ``> begin_step``.
        frequency: optimiser steps between events, ``>= 1`` (Sup 500, SCL 62).
        initial_sparsity: target before/at ``begin_step``, in ``[0, final_sparsity]``; if > 0 the
            model is pruned to it when training starts.
        scope, granularity, n, m, norm, nm_indivisible, min_layer_density: see
            :class:`callbacks.pruning.base.PruningCallback`.
        begin_epoch: ΔGMP: start at this epoch instead of ``begin_step`` (``>= 0``); the schedule
            keeps its length ``end_step - begin_step`` unless ``end_epoch`` is given.
        end_epoch: end at this epoch instead of ``end_step`` (``> begin_epoch``).
    """

    def __init__(
        self,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        frequency: int,
        initial_sparsity: float = 0.0,
        scope: str = "global",
        granularity: str = "unstructured",
        n: int = 2,
        m: int = 4,
        norm: int = 1,
        nm_indivisible: str = "error",
        begin_epoch: int | None = None,
        end_epoch: int | None = None,
        min_layer_density: float = 0.0,
    ) -> None:
        validate_schedule(
            initial=initial_sparsity, final=final_sparsity, begin_step=begin_step, end_step=end_step,
            frequency=frequency,
        )
        if begin_epoch is not None:
            check_range("begin_epoch", begin_epoch, low=0)
        if end_epoch is not None:
            low = 0 if begin_epoch is None else begin_epoch
            if end_epoch <= low:
                raise ConfigError(f"end_epoch={end_epoch!r} is out of range; it must be in [{low + 1}, inf)")
        super().__init__(
            final_sparsity, scope=scope, granularity=granularity, n=n, m=m, norm=norm,
            nm_indivisible=nm_indivisible, min_layer_density=min_layer_density,
        )
        self.initial_sparsity = float(initial_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)
        self.begin_epoch = begin_epoch
        self.end_epoch = end_epoch
        # the schedule in optimiser steps actually used (epochs resolved at train start)
        self.schedule_begin = self.begin_step
        self.schedule_end = self.end_step
        self.schedule_name = "delta_gmp" if begin_epoch is not None else "gmp"

    # -- schedule ------------------------------------------------------------------------------
    def resolve_schedule(self, trainer: pl.Trainer) -> tuple[int, int]:
        """``(begin, end)`` in optimiser steps, converting ``begin_epoch``/``end_epoch`` if given."""
        begin, end = self.begin_step, self.end_step
        if self.begin_epoch is None and self.end_epoch is None:
            return begin, end
        spe = optimizer_steps_per_epoch(trainer)
        if self.begin_epoch is not None:
            begin = self.begin_epoch * spe
            end = begin + (self.end_step - self.begin_step)
        if self.end_epoch is not None:
            end = self.end_epoch * spe
        if end <= begin:
            raise ConfigError(
                f"end_epoch={self.end_epoch!r} gives end step {end} <= begin step {begin}; "
                f"with {spe} optimiser steps per epoch end_step must be in [{begin + 1}, inf)"
            )
        return begin, end

    def event_key(self, trainer: pl.Trainer, step: int) -> int | None:
        key = event_index(step, begin_step=self.schedule_begin, end_step=self.schedule_end, frequency=self.frequency)
        if key < 0 and self.initial_sparsity == 0.0:
            return None  # dense before the schedule: no masks, no work
        return key

    def target_sparsity(self, trainer: pl.Trainer, step: int) -> float:
        return cubic_sparsity(
            step, initial=self.initial_sparsity, final=self.final_sparsity, begin_step=self.schedule_begin,
            end_step=self.schedule_end, frequency=self.frequency,
        )

    # -- hooks ---------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.schedule_begin, self.schedule_end = self.resolve_schedule(trainer)
        total = trainer.estimated_stepping_batches
        if math.isfinite(total) and self.schedule_end > total:
            rank_zero_warn(
                f"the pruning schedule ends at optimiser step {self.schedule_end} but this run has about "
                f"{int(total)} steps; final_sparsity={self.final_sparsity:g} will not be reached"
            )
        super().on_train_start(trainer, pl_module)

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        out = super().run_summary(trainer, pl_module)
        out["pruning_schedule"] = {
            "begin_step": self.schedule_begin, "end_step": self.schedule_end, "frequency": self.frequency,
            "initial_sparsity": self.initial_sparsity,
        }
        return out
