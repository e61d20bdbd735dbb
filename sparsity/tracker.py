"""One set of pruning masks and its history: plain torch, no Lightning import.

Everything that keeps masks on a network needs the same bookkeeping, whoever decides when they
change: the pruning callbacks (:mod:`callbacks.pruning.base` and its schedules; SyncCP keeps a
second set for the momentum encoder, GMP a third for the classifier) and SDCLR's pruned branch
(:mod:`lightning_modules.sdclr`). A :class:`MaskTracker` holds

* ``masks: dict[name, BoolTensor]`` (True = kept), keyed by parameter name, and the
  ``(parameter, float mask)`` pairs they are bound to, to apply them to the weights, their
  gradients and the optimiser state in place;
* ``events``: one record per mask change (the caller's fields plus ``oscillation``, the fraction of
  entries flipped since the previous change, :func:`sparsity.dynamics.mask_change`), and
  ``last_event``, the caller's key of the schedule event that made the current masks;
* ``cost``: the theoretical training FLOPs, dense vs sparse
  (:class:`~sparsity.dynamics.TrainingCostMeter`);
* ``state_dict()`` / ``load_state_dict()`` under the checkpoint key names the caller chooses
  (``keys``), so each owner keeps the names its checkpoints have always had.

Nothing here knows about a Trainer or a LightningModule: parameters, optimisers and batches come in
as arguments, so the tracker can be tested, and reused, without Lightning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sparsity.dynamics import (
    MaskChange,
    TrainingCostMeter,
    mask_change,
    mask_densities,
    mean_oscillation,
)

#: field -> checkpoint key of :meth:`MaskTracker.state_dict`; an owner maps them to its own names
STATE_KEYS: Mapping[str, str] = {"masks": "masks", "last_event": "last_event", "events": "events", "flops": "flops"}


class MaskTracker:
    """Masks keyed by parameter name, their change history and their training cost (module docstring)."""

    def __init__(self) -> None:
        #: name -> BoolTensor (True = kept); empty while the network is dense
        self.masks: dict[str, Tensor] = {}
        #: one record per mask change: the owner's fields, then ``oscillation``
        self.events: list[dict[str, Any]] = []
        #: the owner's key of the schedule event that made the current masks (None: none yet)
        self.last_event: Any = None
        #: theoretical training FLOPs of the run
        self.cost = TrainingCostMeter()
        self._bound: list[tuple[nn.Parameter, Tensor]] = []

    # ------------------------------------------------------------------------------------------
    # binding and applying
    # ------------------------------------------------------------------------------------------
    def bind(
        self, params: Mapping[str, nn.Parameter], *, kind: str | None = None, of: str = "", check_shapes: bool = True
    ) -> None:
        """Move the masks to their parameters' devices and cache ``(parameter, float mask)`` pairs.

        Args:
            params: name -> parameter, one per mask.
            kind, of: if ``kind`` is given, check that ``params`` and the masks have the same names
                (and, with ``check_shapes``, shapes) and raise ``ValueError`` ("<kind> masks do not
                match the model's <of>") otherwise: a checkpoint that does not fit the model.
            check_shapes: also compare each mask's shape with its parameter's (with ``kind``).
        """
        if not self.masks:
            self._bound = []
            return
        if kind is not None and set(params) != set(self.masks):
            differing = sorted(set(params) ^ set(self.masks))
            raise ValueError(f"{kind} masks do not match the model's {of}; differing names: {differing[:5]}")
        bound = []
        for name, p in params.items():
            mask = self.masks[name]
            if kind is not None and check_shapes and tuple(mask.shape) != tuple(p.shape):
                raise ValueError(f"{kind} mask for {name} has shape {tuple(mask.shape)}, the parameter {tuple(p.shape)}")
            self.masks[name] = mask.to(device=p.device, dtype=torch.bool)
            bound.append((p, self.masks[name].to(p.dtype)))
        self._bound = bound

    def unbind(self) -> None:
        """Forget the bound parameters (after a checkpoint restore, until the next :meth:`bind`)."""
        self._bound = []

    @torch.no_grad()
    def apply(self) -> None:
        """``w.mul_(mask)`` for every bound parameter (in place, no autograd)."""
        if self._bound:
            torch._foreach_mul_([p for p, _ in self._bound], [f for _, f in self._bound])

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """``grad.mul_(mask)`` for every bound parameter that has a gradient."""
        pairs = [(p.grad, f) for p, f in self._bound if p.grad is not None]
        if pairs:
            torch._foreach_mul_([g for g, _ in pairs], [f for _, f in pairs])

    @torch.no_grad()
    def mask_optimizer_state(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        """Zero the momentum/moment buffers of pruned entries, so nothing pushes them after a change."""
        for optimizer in optimizers:
            for p, f in self._bound:
                for value in optimizer.state.get(p, {}).values():
                    if isinstance(value, Tensor) and value.shape == p.shape:
                        value.mul_(f.to(value.dtype))

    # ------------------------------------------------------------------------------------------
    # changes and their dynamics
    # ------------------------------------------------------------------------------------------
    def record(self, previous: Mapping[str, Tensor], **fields: Any) -> MaskChange:
        """Append the event of a change from ``previous`` to the current masks: ``fields`` (in their
        order) and ``oscillation``. ``previous`` empty = the dense network."""
        change = mask_change(previous or None, self.masks)
        self.events.append({**fields, "oscillation": change.flipped})
        return change

    @staticmethod
    def change_metrics(change: MaskChange, prefix: str = "pruning/") -> dict[str, float]:
        """``<prefix>oscillation``, ``newly_pruned``, ``revived`` and ``oscillation/<name>`` of a change."""
        metrics = {
            f"{prefix}oscillation": change.flipped,
            f"{prefix}newly_pruned": change.newly_pruned,
            f"{prefix}revived": change.revived,
        }
        metrics.update({f"{prefix}oscillation/{name}": value for name, value in change.per_layer.items()})
        return metrics

    def densities(self) -> dict[str, float]:
        """Kept fraction of each mask."""
        return mask_densities(self.masks)

    def dynamics_summary(self) -> dict[str, Any]:
        """run.json fields: oscillation at the last change and on average over the changes after the
        first (the first one is measured against the dense network), and the cumulative FLOPs."""
        oscillations = [e["oscillation"] for e in self.events if "oscillation" in e]
        return {
            "final_oscillation": oscillations[-1] if oscillations else 0.0,
            "mean_oscillation": mean_oscillation(oscillations),
            "flops_saving": self.cost.total.saving,
            "train_flops_dense": self.cost.total.dense,
            "train_flops_sparse": self.cost.total.sparse,
        }

    # ------------------------------------------------------------------------------------------
    # identity and checkpoints
    # ------------------------------------------------------------------------------------------
    def sha256(self) -> str:
        """SHA-256 (hex) of the masks: for each name in sorted order, the name, the shape and the
        mask's bytes (one byte per entry, True = kept). Equal digests = identical masks."""
        digest = hashlib.sha256()
        for name in sorted(self.masks):
            mask = self.masks[name].detach().to(device="cpu", dtype=torch.bool).contiguous()
            digest.update(f"{name}:{tuple(mask.shape)}:".encode())
            digest.update(mask.numpy().tobytes())
        return digest.hexdigest()

    def state_dict(self, keys: Mapping[str, str] = STATE_KEYS) -> dict[str, Any]:
        """The fields named in ``keys`` (field -> checkpoint key, written in that order); masks on CPU."""
        values = {
            "masks": lambda: {name: mask.detach().cpu().clone() for name, mask in self.masks.items()},
            "last_event": lambda: self.last_event,
            "events": lambda: [dict(e) for e in self.events],
            "flops": self.cost.state_dict,
        }
        return {key: values[field]() for field, key in keys.items()}

    def load_state_dict(self, state: Mapping[str, Any], keys: Mapping[str, str] = STATE_KEYS) -> None:
        """Restore what :meth:`state_dict` wrote under ``keys`` (a missing key: the empty default)."""
        if "masks" in keys:
            self.masks = {name: mask.to(torch.bool) for name, mask in state.get(keys["masks"], {}).items()}
        if "last_event" in keys:
            self.last_event = state.get(keys["last_event"])
        if "events" in keys:
            self.events = [dict(e) for e in state.get(keys["events"], [])]
        if "flops" in keys:
            self.cost.load_state_dict(state.get(keys["flops"], {}))
        self._bound = []


__all__ = ["MaskTracker", "STATE_KEYS"]
