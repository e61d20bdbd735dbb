"""Pruning: the thin Lightning callbacks that own the masks, on the maths of :mod:`sparsity`.

* The pure maths they run on lives one room down, in :mod:`sparsity` (masks, schedules, dynamics,
  regrowth and the Lightning-free :class:`~sparsity.tracker.MaskTracker`, which SDCLR uses too); the
  mask functions are re-exported here for convenience.
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
  (:mod:`sparsity.regrowth`).

The names below are imported on first use (:func:`common.lazy.lazy_exports`): importing one of the
mask functions must not run the callbacks' Lightning imports.
"""

from __future__ import annotations

from common.lazy import lazy_exports

_MASKS = "sparsity.masks"
_SCHEDULES = "sparsity.schedules"
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
