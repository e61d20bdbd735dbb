"""Structured masks: N:M fine-grained groups along the input channels, and whole output filters.

Pure tensor maths, no Lightning import; same conventions as :mod:`sparsity.masks` (``dict[name,
BoolTensor]``, True = kept, deterministic ties, no revival unless ``allow_regrowth``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from common.errors import ConfigError, check_choice, check_range
from sparsity.selection import Masks, _check_same_keys, _finish, _keep_all_but_smallest, _score_dtype, _scores

NORMS = (1, 2)


# --------------------------------------------------------------------------------------------------
# N:M fine-grained
# --------------------------------------------------------------------------------------------------
def nm_indivisible(tensors: Mapping[str, Tensor], m: int) -> list[str]:
    """Names of tensors whose input-channel axis (dim 1) is not a multiple of ``m`` (or is missing)."""
    return [name for name, w in tensors.items() if w.dim() < 2 or w.shape[1] % m != 0]


def nm_masks(
    tensors: Mapping[str, Tensor],
    n: int,
    m: int,
    *,
    current_masks: Mapping[str, Tensor] | None = None,
    allow_regrowth: bool = False,
) -> Masks:
    """N:M masks: in every group of ``m`` consecutive weights along the input-channel axis keep the
    ``n`` largest |w|.

    The input-channel axis is dim 1 of a Conv2d weight ``[out, in, kh, kw]`` or a Linear weight
    ``[out, in]``; a group is ``m`` consecutive input channels at one (output channel, kh, kw)
    position (the layout sparse tensor cores use for 2:4). Ties keep the lower input channel.
    Already-pruned weights rank lowest in their group and stay pruned (a group may then keep fewer
    than ``n``). Sparsity of the result: ``1 - n/m`` when nothing was pruned before.

    Raises:
        ConfigError: ``n > m``, or ``m`` does not divide a tensor's input channels.
    """
    check_range("m", m, low=1)
    check_range("n", n, low=1, high=m)
    _check_same_keys(tensors, current_masks, "current_masks")
    bad = nm_indivisible(tensors, m)
    if bad:
        w = tensors[bad[0]]
        channels = w.shape[1] if w.dim() >= 2 else None
        raise ConfigError(
            f"m={m} does not divide the input channels of {bad[0]} (shape {list(w.shape)}, "
            f"{channels} input channels); m must divide dim 1 of every pruned weight"
        )
    scores = _scores(tensors, current_masks, allow_regrowth)
    keep: Masks = {}
    for name in tensors:
        s = scores[name].movedim(1, -1)  # [out, *kernel, in]: groups are consecutive in memory
        grouped = s.reshape(-1, m)
        order = torch.argsort(grouped, dim=1, descending=True, stable=True)
        kept = torch.zeros_like(grouped, dtype=torch.bool)
        kept.scatter_(1, order[:, :n], True)
        keep[name] = kept.reshape(s.shape).movedim(-1, 1).contiguous()
    return _finish(keep, current_masks, allow_regrowth)


# --------------------------------------------------------------------------------------------------
# structured: whole output filters
# --------------------------------------------------------------------------------------------------
def channel_masks(
    tensors: Mapping[str, Tensor],
    sparsity: float,
    norm: int = 1,
    *,
    current_masks: Mapping[str, Tensor] | None = None,
    allow_regrowth: bool = False,
) -> Masks:
    """Prune whole output filters (dim 0) with the smallest L1 or L2 norm, per tensor.

    In each tensor exactly ``round(sparsity * out_channels)`` filters are pruned, so its sparsity is
    that count over ``out_channels`` (a multiple of ``1/out_channels``, not exactly ``sparsity``).
    Norms are taken of the masked weights; a filter already fully pruned ranks lowest and stays
    pruned. Ties keep the higher filter index (the first ones in order are pruned).
    """
    check_range("sparsity", sparsity, low=0.0, high=1.0, high_inclusive=False)
    check_choice("norm", norm, NORMS)
    _check_same_keys(tensors, current_masks, "current_masks")
    keep: Masks = {}
    for name, w in tensors.items():
        flat = w.detach().to(_score_dtype(w)).reshape(w.shape[0], -1)
        if current_masks is not None:
            flat = flat * current_masks[name].to(flat.device).reshape(w.shape[0], -1)
        score = flat.norm(p=norm, dim=1)
        if current_masks is not None and not allow_regrowth:
            dead = ~current_masks[name].to(flat.device).reshape(w.shape[0], -1).any(dim=1)
            score = score.masked_fill(dead, -1.0)
        kept_filters = _keep_all_but_smallest(score, round(sparsity * w.shape[0]))
        keep[name] = kept_filters.view(-1, *([1] * (w.dim() - 1))).expand(w.shape).contiguous()
    return _finish(keep, current_masks, allow_regrowth)
