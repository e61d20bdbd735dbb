"""Distributed helpers every room uses: gather per-sample rows of all ranks, de-duplicated by index."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


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


__all__ = ["all_gather_rows", "gather_unique_rows"]
