"""Gradual magnitude pruning (Zhu & Gupta 2017) and ΔGMP (the same schedule started later).

The cubic staircase of :mod:`callbacks.pruning.cubic` (events ``begin_step, begin_step + frequency,
..., end_step`` of ``trainer.global_step``, or from ``begin_epoch`` for ΔGMP) with masks from the
current |w|: pruned weights never come back.

**The classifier of a phased method** (Corti et al., ``clr_training.py``): with ``head_begin_step``,
``head_end_step`` and ``head_frequency`` the linear classifier (weight and bias, each tensor to the
scheduled sparsity) is pruned during the head phase on the same cubic schedule to
``final_sparsity``, its steps counted from the head phase's first optimiser step (the authors: 500
to 10000 every 250). Its masks are a second :class:`~sparsity.tracker.MaskTracker`
(``self.head``), checkpointed as ``head_masks``/``head_events``/``head_event``.

The schedule must fit the run: ``end_step`` at most the last step of the phase the encoder trains in
(the ``supervised`` or ``contrastive`` phase) and ``head_end_step`` at most the head phase's steps —
otherwise a :class:`ConfigError` before training, naming the step, the run's steps and the fix.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch import Tensor, nn
from typing_extensions import override

from callbacks.pruning import module_api
from callbacks.pruning.agreement import agree_across_ranks
from callbacks.pruning.cubic import CubicSchedulePruning, training_phase, validate_cubic_schedule
from common.errors import ConfigError, check_choice
from lightning_modules.plan import TrainingPlan
from sparsity.masks import compute_masks, sparsity_of
from sparsity.schedules import cubic_sparsity, event_index, validate_schedule
from sparsity.tracker import MaskTracker

#: the names a GMP schedule can report (run.json ``pruning``)
SCHEDULES = ("gmp", "delta_gmp")
#: checkpoint keys of the classifier's masks (the field names of MaskTracker.state_dict -> these)
HEAD_STATE_KEYS = {"masks": "head_masks", "events": "head_events"}


class GradualMagnitudePruning(CubicSchedulePruning):
    """GMP / ΔGMP: cubic sparsity staircase driven by ``trainer.global_step``.

    Args:
        final_sparsity, begin_step, end_step, frequency, initial_sparsity, begin_epoch, end_epoch:
            the cubic schedule (see :class:`callbacks.pruning.cubic.CubicSchedulePruning`).
        head_begin_step, head_end_step, head_frequency: prune the linear classifier (weight + bias,
            layer-wise) during the head phase of a phased method on this schedule, in optimiser
            steps counted from the head phase's start (Corti et al.: 500 / 10000 / 250); all three
            or none.
        schedule: what ``run.json``'s ``pruning`` (and so ``analyze``'s populations) call this
            schedule: ``gmp`` or ``delta_gmp`` (ΔGMP, the same staircase started later). Default
            (``None``): ``delta_gmp`` when the schedule starts at ``begin_epoch``, else ``gmp`` — a
            ΔGMP config given in steps (the authors' ``--begin_step 2440``) must say so.
        scope, granularity, n, m, norm, nm_indivisible, min_layer_density, targets: the mask
            options (:class:`~callbacks.pruning.options.MaskOptions`, see
            :class:`callbacks.pruning.base.PruningCallback`). Named here, between the schedule's
            arguments, rather than taken as ``**kwargs``: the order of the parameters is the order
            in which ``--help`` and the "its options are" error list them.
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
        targets: str = "encoder",
        head_begin_step: int | None = None,
        head_end_step: int | None = None,
        head_frequency: int | None = None,
        schedule: str | None = None,
    ) -> None:
        # checked in this order: the schedule, the classifier's schedule, then the mask options
        # (CubicSchedulePruning checks the schedule again: it is its own, and pure)
        validate_cubic_schedule(
            final_sparsity=final_sparsity, begin_step=begin_step, end_step=end_step, frequency=frequency,
            initial_sparsity=initial_sparsity, begin_epoch=begin_epoch, end_epoch=end_epoch,
        )  # fmt: skip
        head = (head_begin_step, head_end_step, head_frequency)
        if any(v is not None for v in head):
            if any(v is None for v in head):
                raise ConfigError(
                    f"head_begin_step={head_begin_step!r}, head_end_step={head_end_step!r}, head_frequency={head_frequency!r}: "
                    "give all three (the classifier's schedule in the head phase) or none"
                )
            validate_schedule(initial=0.0, final=final_sparsity, begin_step=head_begin_step, end_step=head_end_step,
                              frequency=head_frequency)  # fmt: skip
        super().__init__(
            final_sparsity, begin_step, end_step, frequency, initial_sparsity=initial_sparsity, begin_epoch=begin_epoch,
            end_epoch=end_epoch, scope=scope, granularity=granularity, n=n, m=m, norm=norm, nm_indivisible=nm_indivisible,
            min_layer_density=min_layer_density, targets=targets,
        )  # fmt: skip
        if schedule is not None:
            check_choice("pruning.schedule", schedule, SCHEDULES)
        self._schedule = schedule
        self.head_schedule = None if head_begin_step is None else (int(head_begin_step), int(head_end_step), int(head_frequency))  # type: ignore[arg-type]
        #: the classifier's masks in the head phase; ``head.last_event`` is its schedule's event index
        self.head = MaskTracker()
        #: global step of the head phase's first batch (head steps are counted from it)
        self.head_start_step: int | None = None

    @override
    @property
    def schedule_name(self) -> str:  # type: ignore[override]
        """run.json's ``pruning``: ``schedule`` when given, else ``delta_gmp`` when the schedule starts
        at ``begin_epoch``, else ``gmp``."""
        if self._schedule is not None:
            return self._schedule
        return "delta_gmp" if self.begin_epoch is not None else "gmp"

    @property
    def head_masks(self) -> dict[str, Tensor]:
        """The classifier's masks (name -> BoolTensor, True = kept); empty outside a head schedule."""
        return self.head.masks

    @property
    def head_events(self) -> list[dict[str, Any]]:
        """One record per classifier mask change: ``{"step", "head_step", "target", "measured"}``."""
        return self.head.events

    # -- the schedule must fit the run -----------------------------------------------------------
    @override
    def check_plan(self, plan: TrainingPlan, pl_module: pl.LightningModule) -> None:
        super().check_plan(plan, pl_module)
        if self.head_schedule is None or training_phase(plan) is None:
            return  # no classifier schedule, or nothing trains the encoder: nothing more to check
        head = plan.phase("head")
        if head is None:
            raise ConfigError(
                f"head_begin_step/head_end_step prune the classifier in the head phase, which "
                f"{type(pl_module).__name__} does not have; remove them"
            )
        head_end = self.head_schedule[1]
        head_last = min(head.steps, max(0, plan.total_steps - head.first_step))
        if head_end > head_last:
            raise ConfigError(
                f"pruning.init_args.head_end_step={head_end} is after the head phase's last optimiser step "
                f"({head_last}; this run: {plan.describe()}); lower head_end_step (and head_begin_step/head_frequency) "
                "or train the head longer"
            )

    @override
    def unfinished_reason(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str | None:
        reason = super().unfinished_reason(trainer, pl_module)
        if reason is None and self.head_schedule is not None and not any(e["target"] == self.final_sparsity for e in self.head_events):
            return f"the classifier's pruning schedule did not reach final_sparsity (head step {self.head_schedule[1]})"
        return reason

    # -- the classifier in the head phase --------------------------------------------------------
    def _head_params(self, pl_module: pl.LightningModule) -> dict[str, nn.Parameter]:
        return module_api.prunable_parameters(pl_module, "classifier", caller=type(self).__name__)

    def _bind_head(self, pl_module: pl.LightningModule) -> None:
        self.head.bind(self._head_params(pl_module) if self.head_masks else {})

    def _in_head_phase(self, pl_module: pl.LightningModule) -> bool:
        """Whether a classifier schedule is given and the module is in its head phase."""
        return self.head_schedule is not None and module_api.phase_attribute(pl_module) == "head"

    def _maybe_update_head(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._in_head_phase(pl_module) or self.head_start_step is None:
            return
        assert self.head_schedule is not None
        begin, end, freq = self.head_schedule
        step = int(trainer.global_step) - self.head_start_step
        key = event_index(step, begin_step=begin, end_step=end, frequency=freq)
        if key < 0 or key == self.head.last_event:
            return
        target = cubic_sparsity(step, initial=0.0, final=self.final_sparsity, begin_step=begin, end_step=end, frequency=freq)
        weights = {name: p.detach() for name, p in self._head_params(pl_module).items()}
        new = compute_masks(weights, target, scope="layerwise", granularity="unstructured", current_masks=self.head_masks or None)
        self.head.masks = agree_across_ranks(trainer, new)
        self._bind_head(pl_module)
        self.head.apply()
        self.head.mask_optimizer_state(trainer.optimizers)
        measured = sparsity_of(weights)
        self.head_events.append({"step": int(trainer.global_step), "head_step": step, "target": float(target), "measured": measured})
        self.head.last_event = key
        for logger in trainer.loggers:
            logger.log_metrics({"sparsity/classifier": measured, "sparsity/classifier_target": float(target)}, step=int(trainer.global_step))

    # -- hooks ---------------------------------------------------------------------------------
    @override
    def restore_masks(self, pl_module: pl.LightningModule) -> None:
        self._bind_head(pl_module)  # after a checkpoint restore: the classifier's masks hold again
        self.head.apply()
        super().restore_masks(pl_module)

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        if self.head_start_step is None and self._in_head_phase(pl_module):
            self.head_start_step = int(trainer.global_step)  # head steps are counted from here

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        super().on_before_optimizer_step(trainer, pl_module, optimizer)
        self.head.mask_gradients()

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        stepped = self._optimizer_stepped(trainer)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if stepped:
            self.head.apply()
            self._maybe_update_head(trainer, pl_module)

    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.head_schedule is not None:
            state.update(self.head.state_dict(HEAD_STATE_KEYS), head_start_step=self.head_start_step, head_event=self.head.last_event)
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.head.load_state_dict(state_dict, {**HEAD_STATE_KEYS, "last_event": "head_event"})
        self.head_start_step = state_dict.get("head_start_step")

    @override
    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        out = super().run_summary(trainer, pl_module)
        if self.head_schedule is not None:
            begin, end, freq = self.head_schedule
            out["pruning_schedule"].update(head_begin_step=begin, head_end_step=end, head_frequency=freq)
            out["classifier_sparsity"] = sparsity_of({n: p.detach() for n, p in self._head_params(pl_module).items()})
            out["classifier_pruning_events"] = [[e["step"], e["head_step"], e["target"], e["measured"]] for e in self.head_events]
        return out


__all__ = ["GradualMagnitudePruning"]
