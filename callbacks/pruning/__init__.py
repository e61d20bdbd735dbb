"""Pruning: pure mask maths and schedules, the mask tracker, and the thin callbacks that own the masks.

* :mod:`callbacks.pruning.schedules` — ``cubic_sparsity`` (Zhu & Gupta staircase), event steps.
* :mod:`callbacks.pruning.masks` — global / layer-wise magnitude, N:M, channel masks, ``sparsity_of``.
* :mod:`callbacks.pruning.dynamics` — mask oscillation, training FLOPs, drop-and-regrow maths.
* :mod:`callbacks.pruning.tracker` — :class:`~callbacks.pruning.tracker.MaskTracker`: one set of
  masks, its events, oscillation, training cost and checkpoint state (plain torch, no Lightning;
  the callbacks and SDCLR use it).
* :mod:`callbacks.pruning.options` — :class:`~callbacks.pruning.options.MaskOptions`: which weights
  a mask keeps (scope, granularity, N:M, targets, ...), validated once.
* :mod:`callbacks.pruning.agreement` — DDP: rank 0's masks everywhere, per-rank mask hashes.
* :mod:`callbacks.pruning.module_api` — everything the callbacks ask of the LightningModule.
* :class:`PruningCallback` (:mod:`~callbacks.pruning.base`) — the Lightning hooks around a tracker.
* :class:`GradualMagnitudePruning` — GMP and ΔGMP (``begin_epoch``), on the cubic schedule of
  :mod:`callbacks.pruning.cubic`.
* :class:`OneShotPruning` — train dense, prune once, fine-tune with masks fixed.
* :class:`SynchronizedPruning` — SyncCP: GMP of the online encoder, the momentum encoder in step.
* :class:`PruneAndRegrow` — GraNet-style gradual pruning with periodic drop-and-regrow
  (:mod:`callbacks.pruning.regrowth`).

The names below are imported on first use (:func:`common.lazy.lazy_exports`): the maths modules
and the tracker import no Lightning, and importing them must not run the callbacks' imports.
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
