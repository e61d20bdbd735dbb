"""Pruning: pure mask maths and schedules, and the thin callbacks that own the masks.

* :mod:`callbacks.pruning.schedules` — ``cubic_sparsity`` (Zhu & Gupta staircase), event steps.
* :mod:`callbacks.pruning.masks` — global / layer-wise magnitude, N:M, channel masks, ``sparsity_of``.
* :class:`GradualMagnitudePruning` — GMP and ΔGMP (``begin_epoch``).
* :class:`OneShotPruning` — train dense, prune once, fine-tune with masks fixed.
* :class:`SynchronizedPruning` — SyncCP: GMP of the online encoder, the momentum encoder in step.
* :class:`PruneAndRegrow` — GraNet-style gradual pruning with periodic drop-and-regrow.
* :mod:`callbacks.pruning.dynamics` — mask oscillation, training FLOPs, drop-and-regrow maths.

The names below are imported on first use (:func:`common.lazy.lazy_exports`): the maths modules
import no Lightning, and importing them must not run the callbacks' imports.
"""

from __future__ import annotations

from common.lazy import lazy_exports

_MASKS = "callbacks.pruning.masks"
_SCHEDULES = "callbacks.pruning.schedules"
_EXPORTS = {
    "GradualMagnitudePruning": "callbacks.pruning.gmp",
    "OneShotPruning": "callbacks.pruning.oneshot",
    "PruneAndRegrow": "callbacks.pruning.regrow",
    "PruningCallback": "callbacks.pruning.base",
    "SynchronizedPruning": "callbacks.pruning.synccp",
    "channel_masks": _MASKS,
    "compute_masks": _MASKS,
    "cubic_sparsity": _SCHEDULES,
    "event_index": _SCHEDULES,
    "event_steps": _SCHEDULES,
    "global_magnitude_masks": _MASKS,
    "layer_sparsities": _MASKS,
    "layerwise_magnitude_masks": _MASKS,
    "nm_masks": _MASKS,
    "sparsity_of": _MASKS,
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
