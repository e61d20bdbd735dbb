"""Sparsity schedules: the Zhu & Gupta (2017) cubic staircase used by GMP and ΔGMP.

Pure functions of the optimiser step (Lightning's ``trainer.global_step``); no Lightning import, so
the schedule can be tested and plotted on its own.

The schedule has *events* at ``t_k = begin_step + k * frequency`` for every ``t_k <= end_step``, and a
last event at ``end_step`` itself when ``end_step - begin_step`` is not a multiple of ``frequency``.
At an event the target is

    s(t) = final + (initial - final) * (1 - (t - begin_step) / (end_step - begin_step)) ** 3

and it is held constant until the next event. Before ``begin_step`` the target is ``initial``;
from ``end_step`` on it is ``final``.
"""

from __future__ import annotations

import math

from common.errors import ConfigError, check_range


def validate_schedule(
    *, initial: float, final: float, begin_step: int, end_step: int, frequency: int
) -> None:
    """Raise :class:`ConfigError` (one line naming the parameter) for an impossible schedule.

    Sparsities are fractions of zeroed weights in ``[0, 1)``; steps are optimiser steps.
    """
    check_range("initial_sparsity", initial, low=0.0, high=1.0, high_inclusive=False)
    check_range("final_sparsity", final, low=0.0, high=1.0, high_inclusive=False)
    if final < initial:
        raise ConfigError(
            f"final_sparsity={final!r} is below initial_sparsity={initial!r}; it must be in [{initial:g}, 1)"
        )
    check_range("begin_step", begin_step, low=0)
    if begin_step >= end_step:
        raise ConfigError(
            f"begin_step={begin_step!r} must be smaller than end_step={end_step!r}; "
            f"begin_step must be in [0, {end_step})"
        )
    if frequency <= 0:
        raise ConfigError(f"frequency={frequency!r} is out of range; it must be in [1, inf) optimiser steps")


def event_index(step: int, *, begin_step: int, end_step: int, frequency: int) -> int:
    """Index of the schedule event that is in force at optimiser step ``step``.

    ``-1`` before ``begin_step``; ``k`` for ``begin_step + k*frequency <= step`` (the latest event not
    after ``step``); ``ceil((end_step - begin_step) / frequency)`` from ``end_step`` on. A callback
    changes its masks exactly when this index changes, which makes "is this an event?" robust to
    resuming from a checkpoint at any step.
    """
    if step < begin_step:
        return -1
    if step >= end_step:
        return math.ceil((end_step - begin_step) / frequency)
    return (step - begin_step) // frequency


def event_steps(*, begin_step: int, end_step: int, frequency: int) -> list[int]:
    """All event steps: ``begin_step, begin_step + frequency, ... <= end_step``, plus ``end_step``."""
    steps = list(range(begin_step, end_step + 1, frequency))
    if steps[-1] != end_step:
        steps.append(end_step)
    return steps


def cubic_sparsity(
    step: int, *, initial: float, final: float, begin_step: int, end_step: int, frequency: int
) -> float:
    """Target sparsity (fraction of zeros, in ``[0, 1)``) at optimiser step ``step``.

    The Zhu & Gupta staircase described in the module docstring: ``initial`` before ``begin_step``,
    the cubic value of the latest event ``t <= step`` in between, and ``final`` from ``end_step`` on.
    """
    validate_schedule(initial=initial, final=final, begin_step=begin_step, end_step=end_step, frequency=frequency)
    if step < begin_step:
        return float(initial)
    if step >= end_step:
        return float(final)
    t = begin_step + (step - begin_step) // frequency * frequency
    progress = (t - begin_step) / (end_step - begin_step)
    return float(final + (initial - final) * (1.0 - progress) ** 3)
