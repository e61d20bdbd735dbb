"""Drop and regrow after a magnitude step (RigL / GraNet), as prune-and-regrow and SyncCP do it.

At a topology update each tensor drops the fraction ``r`` of its active weights with the smallest
|w| and regrows as many inactive ones with the largest |gradient|
(:func:`sparsity.dynamics.drop_and_regrow`). The gradient is the *dense* one of the
optimiser step that brings the update: it only exists in ``on_before_optimizer_step``, before the
base class zeroes the gradients of pruned weights, while the update itself runs after the step
(``on_train_batch_end``), from the stepped weights. So the callback hands the copies over:
:meth:`PruningCallback.dense_gradients_before_event
<callbacks.pruning.base.PruningCallback.dense_gradients_before_event>` takes them at every
optimiser step (None when no update comes), :attr:`Regrowth.gradients` holds them for that one
step, and :meth:`Regrowth.regrow` uses them once.

No regrowth happens without a gradient signal (no copies, names that do not match the masks, or
all-zero gradients: e.g. DDP's zero fill for a frozen encoder) or at ``r <= 0``; the update is
recorded all the same (``regrown: 0``). Plain torch, no Lightning import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from sparsity.dynamics import drop_and_regrow


class Regrowth:
    """The gradients handed from one optimiser step to its topology update, and the updates' record."""

    def __init__(self) -> None:
        #: dense gradient copies of the step about to bring an update (None: no update comes)
        self.gradients: dict[str, Tensor] | None = None
        #: one record per topology update: {"step", "drop_fraction", "regrown"}
        self.events: list[dict[str, Any]] = []

    def regrow(self, step: int, weights: Mapping[str, Tensor], masks: dict[str, Tensor], drop_fraction: float) -> dict[str, Tensor]:
        """``masks`` after dropping and regrowing ``drop_fraction`` of each tensor's active weights
        (unchanged without a gradient signal); uses the handed-over gradients once and records the update."""
        grads, self.gradients = self.gradients, None
        no_signal = grads is None or set(grads) != set(masks) or not any(bool(g.any()) for g in grads.values())
        if no_signal or drop_fraction <= 0.0:
            self.events.append({"step": step, "drop_fraction": drop_fraction, "regrown": 0})
            return masks
        assert grads is not None
        new, regrown = drop_and_regrow(weights, grads, masks, drop_fraction)
        self.events.append({"step": step, "drop_fraction": drop_fraction, "regrown": int(sum(regrown.values()))})
        return new


__all__ = ["Regrowth"]
