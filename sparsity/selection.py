"""The core every mask of :mod:`sparsity.masks` is built on: |w| scores, exactly ``k`` pruned with
deterministic ties, and no revival of already-pruned entries.

Pure tensor maths, no Lightning import; the two rules these helpers implement (exact counts with ties
broken by position, no revival unless ``allow_regrowth``) are stated in :mod:`sparsity.masks`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

Masks = dict[str, Tensor]


# --------------------------------------------------------------------------------------------------
# core: prune exactly k smallest scores
# --------------------------------------------------------------------------------------------------
def _score_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _scores(
    tensors: Mapping[str, Tensor], current_masks: Mapping[str, Tensor] | None, allow_regrowth: bool
) -> dict[str, Tensor]:
    """|w| as float32 (float64 stays), with already-pruned entries set to -1 (below every |w|)."""
    scores: dict[str, Tensor] = {}
    for name, w in tensors.items():
        s = w.detach().abs().to(_score_dtype(w))
        if current_masks is not None and not allow_regrowth:
            s = s.masked_fill(~current_masks[name].to(s.device), -1.0)
        scores[name] = s
    return scores


def _keep_all_but_smallest(scores: Tensor, k: int) -> Tensor:
    """Bool mask over flat ``scores`` that is False at exactly ``k`` smallest entries.

    ``+inf`` entries are never pruned (``k`` is capped at the number of finite entries). Ties at the
    threshold are broken by position: the first ones in flat order are pruned. One selection
    (``kthvalue``) instead of a full sort, so it is O(numel).
    """
    keep = torch.ones_like(scores, dtype=torch.bool)
    k = min(int(k), int(torch.isfinite(scores).sum()))
    if k <= 0:
        return keep
    threshold = scores.kthvalue(k).values
    below = scores < threshold
    keep &= ~below
    missing = k - int(below.sum())
    ties = (scores == threshold).nonzero().flatten()[:missing]
    keep[ties] = False
    return keep


def _check_same_keys(tensors: Mapping[str, Tensor], other: Mapping[str, Tensor] | None, what: str) -> None:
    if other is None:
        return
    missing = [k for k in tensors if k not in other]
    if missing:
        raise ValueError(f"{what} has no entry for {missing[0]!r}")
    for name, t in tensors.items():
        if tuple(other[name].shape) != tuple(t.shape):
            raise ValueError(f"{what}[{name!r}] has shape {tuple(other[name].shape)}, expected {tuple(t.shape)}")


def _finish(keep: Masks, current_masks: Mapping[str, Tensor] | None, allow_regrowth: bool) -> Masks:
    """AND with the current masks (no revival) unless regrowth is allowed."""
    if current_masks is None or allow_regrowth:
        return keep
    return {name: k & current_masks[name].to(k.device) for name, k in keep.items()}
