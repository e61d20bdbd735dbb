"""DDP: every rank prunes with the same masks, and a finished run proves it.

Masks are computed on every rank from the weights (identical on every rank under DDP) with
deterministic tie-breaking (:mod:`sparsity.masks`). Floating-point or input differences
could still make a rank disagree, so at each change rank 0's masks are broadcast and used
everywhere (:func:`agree_across_ranks`; a rank whose own masks differed says so in a warning).
At the end of training every rank hashes its masks and the digests are all-gathered
(:func:`gather_digests`): ``mask_sha256_per_rank`` in run.json.

``trainer`` is anything with ``world_size``, ``global_rank`` and a Lightning-style ``strategy``
(``broadcast``, ``all_gather``, ``root_device``); with one process nothing is communicated. Both
functions are collectives: every rank must call them, in the same order.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor


def agree_across_ranks(trainer: Any, masks: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rank 0's ``masks`` on every rank (on this rank's devices); warns when this rank's differed."""
    if trainer.world_size <= 1:
        return masks
    local = {name: mask.cpu() for name, mask in masks.items()}
    reference: dict[str, Tensor] = trainer.strategy.broadcast(local, src=0)
    differing = [name for name in local if not torch.equal(local[name], reference[name])]
    if differing:
        warnings.warn(
            f"rank {trainer.global_rank} computed different masks for {', '.join(differing[:3])}; using rank 0's",
            RuntimeWarning,
            stacklevel=2,  # points at the caller (the mask update)
        )
    return {name: reference[name].to(masks[name].device) for name in masks}


def gather_digests(trainer: Any, digest: str) -> list[str]:
    """Every rank's hex ``digest`` (all the same length), in rank order (one all-gather)."""
    if trainer.world_size <= 1:
        return [digest]
    as_tensor = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.long, device=trainer.strategy.root_device)
    gathered = trainer.strategy.all_gather(as_tensor).reshape(-1, as_tensor.numel()).cpu()
    return [bytes(row.tolist()).hex() for row in gathered]


__all__ = ["agree_across_ranks", "gather_digests"]
