"""Pruning: pure mask maths and schedules, and the thin callbacks that own the masks.

* :mod:`callbacks.pruning.schedules` — ``cubic_sparsity`` (Zhu & Gupta staircase), event steps.
* :mod:`callbacks.pruning.masks` — global / layer-wise magnitude, N:M, channel masks, ``sparsity_of``.
* :class:`GradualMagnitudePruning` — GMP and ΔGMP (``begin_epoch``).
* :class:`OneShotPruning` — train dense, prune once, fine-tune with masks fixed.
* :class:`SynchronizedPruning` — SyncCP: GMP of the online encoder, the momentum encoder in step.
* :class:`PruneAndRegrow` — GraNet-style gradual pruning with periodic drop-and-regrow.
* :mod:`callbacks.pruning.dynamics` — mask oscillation, training FLOPs, drop-and-regrow maths.
"""

from callbacks.pruning.base import PruningCallback
from callbacks.pruning.gmp import GradualMagnitudePruning
from callbacks.pruning.masks import (
    channel_masks,
    compute_masks,
    global_magnitude_masks,
    layer_sparsities,
    layerwise_magnitude_masks,
    nm_masks,
    sparsity_of,
)
from callbacks.pruning.oneshot import OneShotPruning
from callbacks.pruning.regrow import PruneAndRegrow
from callbacks.pruning.schedules import cubic_sparsity, event_index, event_steps
from callbacks.pruning.synccp import SynchronizedPruning

__all__ = [
    "GradualMagnitudePruning",
    "OneShotPruning",
    "PruneAndRegrow",
    "PruningCallback",
    "SynchronizedPruning",
    "channel_masks",
    "compute_masks",
    "cubic_sparsity",
    "event_index",
    "event_steps",
    "global_magnitude_masks",
    "layer_sparsities",
    "layerwise_magnitude_masks",
    "nm_masks",
    "sparsity_of",
]
