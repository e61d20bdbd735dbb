"""Gradual magnitude pruning (Zhu & Gupta 2017) and ΔGMP (the same schedule started later).

At the events ``begin_step, begin_step + frequency, ..., end_step`` of ``trainer.global_step``
(optimiser steps) the masks are recomputed from the current |w| for the cubic target of
:func:`callbacks.pruning.schedules.cubic_sparsity`; between events they are fixed, after
``end_step`` they stay at ``final_sparsity``. Pruned weights never come back.

ΔGMP: give ``begin_epoch`` and the schedule starts at ``begin_epoch * steps_per_epoch`` (the
optimiser steps per epoch of the phase the encoder trains in, from the run's
:class:`~lightning_modules.plan.TrainingPlan`). Choice made here: the schedule keeps its *length*
``end_step - begin_step`` (and its ``frequency``) — so "ΔGMP from epoch 50" is the GMP schedule of
the same config shifted later — unless ``end_epoch`` is also given, in which case it ends at
``end_epoch * steps_per_epoch``.

**The classifier of a phased method** (Corti et al., ``clr_training.py``): with ``head_begin_step``,
``head_end_step`` and ``head_frequency`` the linear classifier (weight and bias, each tensor to the
scheduled sparsity) is pruned during the head phase on the same cubic schedule to
``final_sparsity``, its steps counted from the head phase's first optimiser step (the authors: 500
to 10000 every 250).

The schedule must fit the run: ``end_step`` at most the last step of the phase the encoder trains in
(the ``supervised`` or ``contrastive`` phase) and ``head_end_step`` at most the head phase's steps —
otherwise a :class:`ConfigError` before training, naming the step, the run's steps and the fix.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from callbacks.pruning.base import PruningCallback
from callbacks.pruning.masks import compute_masks, sparsity_of
from callbacks.pruning.schedules import cubic_sparsity, event_index, validate_schedule
from common.errors import ConfigError, check_range
from lightning_modules.plan import TrainingPlan

#: the phases in which an encoder trains (GMP prunes in the first of them that a run has)
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
        scope, granularity, n, m, norm, nm_indivisible, min_layer_density, targets: see
            :class:`callbacks.pruning.base.PruningCallback`.
        begin_epoch: ΔGMP: start at this epoch instead of ``begin_step`` (``>= 0``); the schedule
            keeps its length ``end_step - begin_step`` unless ``end_epoch`` is given.
        end_epoch: end at this epoch instead of ``end_step`` (``> begin_epoch``).
        head_begin_step, head_end_step, head_frequency: prune the linear classifier (weight + bias,
            layer-wise) during the head phase of a phased method on this schedule, in optimiser
            steps counted from the head phase's start (Corti et al.: 500 / 10000 / 250); all three
            or none.
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
            final_sparsity, scope=scope, granularity=granularity, n=n, m=m, norm=norm,
            nm_indivisible=nm_indivisible, min_layer_density=min_layer_density, targets=targets,
        )
        self.initial_sparsity = float(initial_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)
        self.begin_epoch = begin_epoch
        self.end_epoch = end_epoch
        self.head_schedule = None if head_begin_step is None else (int(head_begin_step), int(head_end_step), int(head_frequency))  # type: ignore[arg-type]
        # the schedule in optimiser steps actually used (epochs resolved at train start)
        self.schedule_begin = self.begin_step
        self.schedule_end = self.end_step
        self.schedule_name = "delta_gmp" if begin_epoch is not None else "gmp"
        #: classifier masks of the head phase (name -> BoolTensor) and their bookkeeping
        self.head_masks: dict[str, Tensor] = {}
        self.head_events: list[dict[str, float]] = []
        self.head_start_step: int | None = None
        self._head_event: int | None = None
        self._head_bound: list[tuple[nn.Parameter, Tensor]] = []

    # -- schedule ------------------------------------------------------------------------------
    def _steps_per_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule | None) -> int:
        plan = getattr(pl_module, "plan", None)
        if callable(plan):
            phase = training_phase(plan())
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
        if self.head_schedule is not None:
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

    def unfinished_reason(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str | None:
        if not any(e["target"] == self.final_sparsity for e in self.events):
            return f"the pruning schedule did not reach final_sparsity={self.final_sparsity:g} (its end step {self.schedule_end})"
        if self.head_schedule is not None and not any(e["target"] == self.final_sparsity for e in self.head_events):
            return f"the classifier's pruning schedule did not reach final_sparsity (head step {self.head_schedule[1]})"
        return None

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

    # -- the classifier in the head phase --------------------------------------------------------
    def _head_params(self, pl_module: pl.LightningModule) -> dict[str, nn.Parameter]:
        return dict(pl_module.prunable_parameters("classifier"))

    def _bind_head(self, pl_module: pl.LightningModule) -> None:
        params = self._head_params(pl_module) if self.head_masks else {}
        self._head_bound = []
        for name, p in params.items():
            self.head_masks[name] = self.head_masks[name].to(device=p.device, dtype=torch.bool)
            self._head_bound.append((p, self.head_masks[name].to(p.dtype)))

    @torch.no_grad()
    def _apply_head(self) -> None:
        if self._head_bound:
            torch._foreach_mul_([p for p, _ in self._head_bound], [f for _, f in self._head_bound])

    def _maybe_update_head(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.head_schedule is None or getattr(pl_module, "phase", None) != "head" or self.head_start_step is None:
            return
        begin, end, freq = self.head_schedule
        step = int(trainer.global_step) - self.head_start_step
        key = event_index(step, begin_step=begin, end_step=end, frequency=freq)
        if key < 0 or key == self._head_event:
            return
        target = cubic_sparsity(step, initial=0.0, final=self.final_sparsity, begin_step=begin, end_step=end, frequency=freq)
        params = self._head_params(pl_module)
        weights = {name: p.detach() for name, p in params.items()}
        new = compute_masks(weights, target, scope="layerwise", granularity="unstructured", current_masks=self.head_masks or None)
        self.head_masks = self._agree_across_ranks(trainer, new)
        self._bind_head(pl_module)
        self._apply_head()
        for optimizer in trainer.optimizers:
            for p, f in self._head_bound:
                for value in optimizer.state.get(p, {}).values():
                    if isinstance(value, Tensor) and value.shape == p.shape:
                        value.mul_(f.to(value.dtype))
        measured = sparsity_of(weights)
        self.head_events.append({"step": int(trainer.global_step), "head_step": step, "target": float(target), "measured": measured})
        self._head_event = key
        for logger in trainer.loggers:
            logger.log_metrics({"sparsity/classifier": measured, "sparsity/classifier_target": float(target)}, step=int(trainer.global_step))

    # -- hooks ---------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.schedule_begin, self.schedule_end = self.resolve_schedule(trainer, pl_module)
        plan = getattr(pl_module, "plan", None)
        if callable(plan) and getattr(trainer, "datamodule", None) is not None:
            self.check_plan(plan(), pl_module)
        self._bind_head(pl_module)
        self._apply_head()
        super().on_train_start(trainer, pl_module)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        if self.head_schedule is not None and self.head_start_step is None and getattr(pl_module, "phase", None) == "head":
            self.head_start_step = int(trainer.global_step)  # head steps are counted from here

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        super().on_before_optimizer_step(trainer, pl_module, optimizer)
        pairs = [(p.grad, f) for p, f in self._head_bound if p.grad is not None]
        if pairs:
            with torch.no_grad():
                torch._foreach_mul_([g for g, _ in pairs], [f for _, f in pairs])

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        stepped = int(trainer.global_step) != self._applied_step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if stepped:
            self._apply_head()
            self._maybe_update_head(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.head_schedule is not None:
            state.update(
                head_masks={n: m.detach().cpu().clone() for n, m in self.head_masks.items()}, head_events=[dict(e) for e in self.head_events],
                head_start_step=self.head_start_step, head_event=self._head_event,
            )  # fmt: skip
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.head_masks = {n: m.to(torch.bool) for n, m in state_dict.get("head_masks", {}).items()}
        self.head_events = [dict(e) for e in state_dict.get("head_events", [])]
        self.head_start_step = state_dict.get("head_start_step")
        self._head_event = state_dict.get("head_event")
        self._head_bound = []

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        out = super().run_summary(trainer, pl_module)
        out["pruning_schedule"] = {
            "begin_step": self.schedule_begin, "end_step": self.schedule_end, "frequency": self.frequency,
            "initial_sparsity": self.initial_sparsity,
        }
        if self.head_schedule is not None:
            begin, end, freq = self.head_schedule
            out["pruning_schedule"].update(head_begin_step=begin, head_end_step=end, head_frequency=freq)
            out["classifier_sparsity"] = sparsity_of({n: p.detach() for n, p in self._head_params(pl_module).items()})
            out["classifier_pruning_events"] = [[e["step"], e["head_step"], e["target"], e["measured"]] for e in self.head_events]
        return out
