"""Distributed helpers every room uses: who am I, collectives with gradients, and gathering
per-sample rows of all ranks (de-duplicated by index).

Two kinds of caller:

* code inside a ``Trainer`` (callbacks, ``LightningModule`` hooks) passes the trainer, whose
  ``world_size`` and ``strategy`` decide (:func:`all_gather_rows`, :func:`all_gather_columns`,
  :func:`gather_unique_rows`);
* code that runs inside the forward pass (the contrastive loss, :mod:`common.sync_batchnorm`) has no
  trainer and asks ``torch.distributed`` directly (:func:`rank_and_world`, :func:`all_gather_with_grad`,
  :func:`all_reduce_sum_with_grad`).

Single process: every helper returns its input (or ``(0, 1)``) without calling a collective.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


# -- torch.distributed, no trainer ------------------------------------------------------------
def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the default process group; ``(0, 1)`` when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient for this rank's slice.

    Written out (instead of ``torch.distributed.nn.functional.all_gather``) because the gradient
    reaching the gathered slices is often non-contiguous (the contrastive loss transposes the
    views), and the gloo all-to-all behind that function's backward mishandles non-contiguous
    tensors.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> tuple[Tensor, ...]:
        x = x.contiguous()
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x)
        return tuple(out)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> Tensor:
        stacked = torch.stack([g.contiguous() for g in grads])
        dist.all_reduce(stacked)
        return stacked[dist.get_rank()]


def all_gather_with_grad(x: Tensor) -> tuple[Tensor, ...]:
    """Every rank's ``x`` (equal shapes), in rank order, differentiable: the gradient of this rank's
    ``x`` is the sum over ranks of the gradients of its slice. A collective; needs a process group."""
    return _AllGatherWithGrad.apply(x)


class _AllReduceSum(torch.autograd.Function):
    """``all_reduce(SUM)`` whose backward is the ``all_reduce(SUM)`` of the gradients (every rank's
    loss depends on every rank's input through the sum)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        out = x.contiguous().clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out)
        return out


def all_reduce_sum_with_grad(x: Tensor) -> Tensor:
    """The sum of every rank's ``x``, differentiable (a collective; needs a process group)."""
    return _AllReduceSum.apply(x)


# -- inside a Trainer -------------------------------------------------------------------------
def all_gather_rows(trainer: Any, tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` ``[n_r, ...]`` of every rank ``r`` along dim 0 (ranks may differ in ``n_r``).

    A collective: every rank must call it, in the same order. Single process: returns ``tensor``.
    ``trainer`` is anything with ``world_size`` and ``strategy`` (a Lightning Trainer). The result is
    on CPU.
    """
    if trainer.world_size == 1:
        return tensor.detach().cpu()
    strategy = trainer.strategy
    device = strategy.root_device
    is_bool = tensor.dtype == torch.bool
    local = tensor.detach().to(device=device, dtype=torch.uint8 if is_bool else tensor.dtype).contiguous()
    count = torch.tensor([local.shape[0]], device=device, dtype=torch.long)
    counts = [int(c) for c in strategy.all_gather(count).reshape(-1).tolist()]
    longest = max(counts)
    if local.shape[0] < longest:
        pad = local.new_zeros((longest - local.shape[0], *local.shape[1:]))
        local = torch.cat([local, pad])
    gathered = strategy.all_gather(local)  # [world, longest, ...]
    rows = torch.cat([gathered[rank, :n] for rank, n in enumerate(counts)]).cpu()
    return rows.bool() if is_bool else rows


def all_gather_columns(trainer: Any, columns: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:func:`all_gather_rows` of every column (in name order), where a rank may hold none of them.

    A rank that saw no batch has no tensors to gather; it learns the column names, dtypes and
    trailing shapes from the others (one ``all_gather_object``) and contributes zero rows. Returns
    ``{}`` when no rank has any column. A collective; the result is on CPU.
    """
    local = dict(columns)
    specs = {k: _spec(v) for k, v in local.items()}
    if trainer.world_size > 1:
        everyone: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(everyone, specs)
        for rank_specs in everyone:
            for k, spec in rank_specs.items():
                specs.setdefault(k, spec)
        for k, (dtype, tail) in specs.items():
            if k not in local:
                local[k] = torch.zeros((0, *tail), dtype=getattr(torch, dtype))
    return {k: all_gather_rows(trainer, local[k]) for k in sorted(specs)}


def _spec(t: Tensor) -> tuple[str, tuple[int, ...]]:
    return (str(t.dtype).removeprefix("torch."), tuple(t.shape[1:]))


def gather_unique_rows(trainer: Any, columns: Mapping[str, Tensor], key: str = "index") -> dict[str, Tensor]:
    """``columns`` (equal-length tensors, one of them ``key``) of all ranks, one row per distinct
    ``key`` (the first occurrence: ``DistributedSampler`` pads the last batch with repeats), sorted
    by ``key``. A collective; every rank gets the same result (on CPU)."""
    gathered = {name: all_gather_rows(trainer, value) for name, value in sorted(columns.items())}
    index = gathered[key]
    if index.numel() == 0:
        return gathered
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    keep = order[first]
    return {name: value[keep] for name, value in gathered.items()}


__all__ = [
    "all_gather_columns",
    "all_gather_rows",
    "all_gather_with_grad",
    "all_reduce_sum_with_grad",
    "gather_unique_rows",
    "rank_and_world",
]
