"""How many optimiser steps each phase of a run has: pure arithmetic, no Lightning import.

A run's phases (``supervised``; or ``contrastive`` -> ``head`` -> ``finetune``) train on their own
loaders (batch size, views), so their steps per epoch differ. :class:`TrainingPlan` lays them end
to end in ``trainer.global_step`` units, so a pruning schedule can be checked against the phase it
runs in before any training (``cli.py``), and step-driven schedules (BYOL's EMA coefficient, a
classifier's pruning counted from the head phase's first step) know where a phase starts.

Steps per epoch follow Lightning: ``batches = min(per-device batches, limit)`` for an integer
``limit_train_batches``, ``int(batches * limit)`` for a fraction, then
``ceil(batches / accumulate_grad_batches)`` optimiser steps; ``max_steps`` (if set) caps the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def limited_batches(batches: int, limit: int | float | None) -> int:
    """Training batches per epoch after Lightning's ``limit_train_batches``."""
    if limit is None:
        return batches
    if isinstance(limit, bool):  # a bool is an int in Python; Lightning rejects it anyway
        return batches
    if isinstance(limit, int) or (isinstance(limit, float) and limit > 1.0):
        return min(batches, int(limit))
    return int(batches * float(limit))


def optimizer_steps(batches: int, accumulate: int) -> int:
    """Optimiser steps of an epoch of ``batches`` (Lightning also steps on an incomplete window)."""
    return math.ceil(batches / max(1, accumulate)) if batches > 0 else 0


@dataclass(frozen=True)
class PhasePlan:
    """One phase: ``epochs`` epochs of ``steps_per_epoch`` optimiser steps from ``first_step`` on."""

    name: str
    epochs: int
    steps_per_epoch: int
    first_step: int
    first_epoch: int

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def end_step(self) -> int:
        """The global step right after the phase's last optimiser step."""
        return self.first_step + self.steps


@dataclass(frozen=True)
class TrainingPlan:
    """The phases of one run in order, and the run's step cap (``trainer.max_steps``)."""

    phases: tuple[PhasePlan, ...]
    max_steps: int | None = None

    @classmethod
    def build(cls, phases: list[tuple[str, int, int]], max_steps: int | None = None) -> TrainingPlan:
        """From ``[(name, epochs, steps_per_epoch), ...]`` in training order."""
        out, step, epoch = [], 0, 0
        for name, epochs, spe in phases:
            out.append(PhasePlan(name, int(epochs), int(spe), step, epoch))
            step += int(epochs) * int(spe)
            epoch += int(epochs)
        cap = None if max_steps is None or max_steps < 0 else int(max_steps)
        return cls(tuple(out), cap)

    @property
    def total_steps(self) -> int:
        planned = sum(p.steps for p in self.phases)
        return planned if self.max_steps is None else min(planned, self.max_steps)

    def phase(self, name: str) -> PhasePlan | None:
        return next((p for p in self.phases if p.name == name and p.epochs > 0), None)

    def describe(self) -> str:
        """``contrastive 500 epochs x 49 steps, head 100 x 196`` for error messages."""
        parts = [f"{p.name} {p.epochs} epochs x {p.steps_per_epoch} steps" for p in self.phases if p.epochs > 0]
        cap = f", capped at trainer.max_steps={self.max_steps}" if self.max_steps is not None else ""
        return ", ".join(parts) + cap


__all__ = ["PhasePlan", "TrainingPlan", "limited_batches", "optimizer_steps"]
