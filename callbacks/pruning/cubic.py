"""The cubic sparsity staircase in optimiser steps, shared by GMP, SyncCP and prune-and-regrow.

At the events ``begin_step, begin_step + frequency, ..., end_step`` of ``trainer.global_step``
(optimiser steps) the masks are recomputed from the current |w| for the cubic target of
:func:`sparsity.schedules.cubic_sparsity`; between events they are fixed, after
``end_step`` they stay at ``final_sparsity``.

ΔGMP: give ``begin_epoch`` and the schedule starts at ``begin_epoch * steps_per_epoch`` (the
optimiser steps per epoch of the phase the encoder trains in, from the run's
:class:`~lightning_modules.plan.TrainingPlan`). Choice made here: the schedule keeps its *length*
``end_step - begin_step`` (and its ``frequency``) — so "ΔGMP from epoch 50" is the GMP schedule of
the same config shifted later — unless ``end_epoch`` is also given, in which case it ends at
``end_epoch * steps_per_epoch``.

The schedule must fit the run: ``end_step`` at most the last step of the phase the encoder trains in
(the ``supervised`` or ``contrastive`` phase) — otherwise a :class:`ConfigError` before training,
naming the step, the run's steps and the fix.

:class:`CubicSchedulePruning` is not a schedule to choose (``callbacks.pruning`` does not export
it): it is what :class:`~callbacks.pruning.GradualMagnitudePruning`,
:class:`~callbacks.pruning.SynchronizedPruning` and :class:`~callbacks.pruning.PruneAndRegrow`
build on, each adding its own arguments and passing the mask options on with ``**kwargs``.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from typing_extensions import override

from callbacks.pruning import module_api
from callbacks.pruning.base import PruningCallback
from common.errors import ConfigError, check_range
from lightning_modules.plan import TrainingPlan
from sparsity.schedules import cubic_sparsity, event_index, validate_schedule

#: the phases in which an encoder trains (the schedule prunes in the first of them that a run has)
TRAINING_PHASES = ("supervised", "contrastive")


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


def training_phase(plan: TrainingPlan) -> Any:
    """The phase of ``plan`` in which the encoder trains (``supervised`` or ``contrastive``), or None."""
    return next((plan.phase(name) for name in TRAINING_PHASES if plan.phase(name) is not None), None)


def validate_cubic_schedule(
    *, final_sparsity: float, begin_step: int, end_step: int, frequency: int, initial_sparsity: float,
    begin_epoch: int | None, end_epoch: int | None,
) -> None:
    """Raise :class:`ConfigError` (one line) for an impossible cubic schedule: the steps and
    sparsities (:func:`~sparsity.schedules.validate_schedule`), then the ΔGMP epochs."""
    validate_schedule(
        initial=initial_sparsity, final=final_sparsity, begin_step=begin_step, end_step=end_step, frequency=frequency,
    )  # fmt: skip
    if begin_epoch is not None:
        check_range("begin_epoch", begin_epoch, low=0)
    if end_epoch is not None:
        low = 0 if begin_epoch is None else begin_epoch
        if end_epoch <= low:
            raise ConfigError(f"end_epoch={end_epoch!r} is out of range; it must be in [{low + 1}, inf)")


class CubicSchedulePruning(PruningCallback):
    """The cubic staircase driven by ``trainer.global_step`` (module docstring).

    Args:
        final_sparsity: fraction of prunable weights that are zero at the end, in ``[0, 1)``.
        begin_step: optimiser step of the first event (REFERENCE §2: Sup 1000, SCL 125).
        end_step: optimiser step of the last event, where ``final_sparsity`` is reached
            (Sup 20000, SCL 2476); must be ``> begin_step``.
        frequency: optimiser steps between events, ``>= 1`` (Sup 500, SCL 62).
        initial_sparsity: target before/at ``begin_step``, in ``[0, final_sparsity]``; if > 0 the
            model is pruned to it when training starts.
        begin_epoch: ΔGMP: start at this epoch instead of ``begin_step`` (``>= 0``); the schedule
            keeps its length ``end_step - begin_step`` unless ``end_epoch`` is given.
        end_epoch: end at this epoch instead of ``end_step`` (``> begin_epoch``).
        **kwargs: the mask options of :class:`~callbacks.pruning.base.PruningCallback` (scope,
            granularity, n, m, norm, nm_indivisible, min_layer_density, targets).
    """

    def __init__(
        self,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        frequency: int,
        initial_sparsity: float = 0.0,
        begin_epoch: int | None = None,
        end_epoch: int | None = None,
        **kwargs: Any,
    ) -> None:
        validate_cubic_schedule(
            final_sparsity=final_sparsity, begin_step=begin_step, end_step=end_step, frequency=frequency,
            initial_sparsity=initial_sparsity, begin_epoch=begin_epoch, end_epoch=end_epoch,
        )  # fmt: skip
        super().__init__(final_sparsity, **kwargs)  # the mask options, validated after the schedule
        self.initial_sparsity = float(initial_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)
        self.begin_epoch = begin_epoch
        self.end_epoch = end_epoch
        # the schedule in optimiser steps actually used (epochs resolved at train start)
        self.schedule_begin = self.begin_step
        self.schedule_end = self.end_step

    # -- the schedule in steps -------------------------------------------------------------------
    def _steps_per_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule | None) -> int:
        plan = module_api.training_plan(pl_module)
        if plan is not None:
            phase = training_phase(plan)
            if phase is not None and phase.steps_per_epoch > 0:
                return phase.steps_per_epoch
        return optimizer_steps_per_epoch(trainer)

    def resolve_schedule(self, trainer: pl.Trainer, pl_module: pl.LightningModule | None = None) -> tuple[int, int]:
        """``(begin, end)`` in optimiser steps, converting ``begin_epoch``/``end_epoch`` if given."""
        if self.begin_epoch is None and self.end_epoch is None:
            return self.begin_step, self.end_step
        return self._epochs_to_steps(self._steps_per_epoch(trainer, pl_module))

    def _epochs_to_steps(self, spe: int) -> tuple[int, int]:
        begin, end = self.begin_step, self.end_step
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

    @override
    def check_plan(self, plan: TrainingPlan, pl_module: pl.LightningModule) -> None:
        phase = training_phase(plan)
        if phase is None:
            return  # nothing trains the encoder (e.g. a fine-tune-only run)
        by_epoch = self.begin_epoch is not None or self.end_epoch is not None
        _, end = self._epochs_to_steps(max(1, phase.steps_per_epoch)) if by_epoch else (self.begin_step, self.end_step)
        last = min(phase.end_step, plan.total_steps)
        if end > last:
            what = (
                f"the ΔGMP schedule (begin_epoch={self.begin_epoch}, end_step - begin_step={self.end_step - self.begin_step}) ends at step {end}"
                if by_epoch else f"pruning.init_args.end_step={end}"
            )
            raise ConfigError(
                f"{what}, after the last optimiser step of the {phase.name} phase ({last}; this run has {plan.total_steps} "
                f"steps: {plan.describe()}), so final_sparsity={self.final_sparsity:g} would not be reached; set "
                f"--pruning.init_args.end_step to at most {last} (begin_step and frequency below it) or train longer"
            )

    @override
    def unfinished_reason(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str | None:
        if not any(e["target"] == self.final_sparsity for e in self.events):
            return f"the pruning schedule did not reach final_sparsity={self.final_sparsity:g} (its end step {self.schedule_end})"
        return None

    @override
    def event_key(self, trainer: pl.Trainer, step: int) -> int | None:
        key = event_index(step, begin_step=self.schedule_begin, end_step=self.schedule_end, frequency=self.frequency)
        if key < 0 and self.initial_sparsity == 0.0:
            return None  # dense before the schedule: no masks, no work
        return key

    @override
    def target_sparsity(self, trainer: pl.Trainer, step: int) -> float:
        return cubic_sparsity(
            step, initial=self.initial_sparsity, final=self.final_sparsity, begin_step=self.schedule_begin,
            end_step=self.schedule_end, frequency=self.frequency,
        )

    # -- hooks and summary -------------------------------------------------------------------------
    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.schedule_begin, self.schedule_end = self.resolve_schedule(trainer, pl_module)
        if getattr(trainer, "datamodule", None) is not None and (plan := module_api.training_plan(pl_module)) is not None:
            self.check_plan(plan, pl_module)
        super().on_train_start(trainer, pl_module)

    @override
    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        out = super().run_summary(trainer, pl_module)
        out["pruning_schedule"] = {
            "begin_step": self.schedule_begin, "end_step": self.schedule_end, "frequency": self.frequency,
            "initial_sparsity": self.initial_sparsity,
        }  # fmt: skip
        return out


__all__ = ["CubicSchedulePruning", "TRAINING_PHASES", "optimizer_steps_per_epoch", "training_phase", "validate_cubic_schedule"]
