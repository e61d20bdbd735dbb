"""The one cosine schedule: every cosine-shaped quantity of the project is a function of it.

``cosine_factor(progress)`` falls from 1 at ``progress = 0`` to 0 at ``progress = 1`` along half a
cosine (``progress`` clipped to ``[0, 1]``). Its users scale and shift it:

* the encoder learning rate of the phased methods (:func:`lightning_modules.phased.cosine_annealing_factors`),
* BYOL's EMA coefficient ``tau`` (:func:`lightning_modules.byol.momentum_tau`),
* GraNet's / SyncCP's drop-and-regrow fraction (:func:`sparsity.dynamics.cosine_decay`).

Pure Python, no torch: one formula, so the schedules cannot drift apart.
"""

from __future__ import annotations

import math


def cosine_factor(progress: float) -> float:
    """``0.5 * (1 + cos(pi * progress))`` with ``progress`` clipped to ``[0, 1]``: 1 -> 0."""
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


__all__ = ["cosine_factor"]
