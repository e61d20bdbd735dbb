"""Contrastive losses.

``supcon_loss`` is the supervised-contrastive loss of Khosla et al. 2020 (the ``L_out`` form);
with ``labels=None`` it is SimCLR's NT-Xent. Under ``torch.distributed`` the features (with
gradients) and labels of every rank are gathered, so the negatives come from the global batch while
each rank averages over its own anchors; DDP's gradient averaging then gives exactly the gradient of
the single-process loss on the concatenated batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from common.distributed import all_gather_with_grad, rank_and_world
from common.errors import ConfigError, check_choice, check_range


def _gather_with_grad(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
    """All-gather features (differentiable) and labels; returns them and this rank's row offset."""
    rank, world = rank_and_world()
    if world == 1:
        return features, labels, 0
    sizes = [torch.zeros(1, dtype=torch.long, device=features.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([features.shape[0]], device=features.device))
    if len({int(s) for s in sizes}) != 1:
        raise RuntimeError(
            f"supcon_loss: per-rank batch sizes differ ({[int(s) for s in sizes]}); use drop_last=True for training"
        )
    all_features = torch.cat(all_gather_with_grad(features), dim=0)
    gathered = [torch.empty_like(labels) for _ in range(world)]
    dist.all_gather(gathered, labels.contiguous())
    return all_features, torch.cat(gathered, dim=0), rank * features.shape[0]


def supcon_loss(
    features: Tensor,
    labels: Tensor | None = None,
    *,
    temperature: float,
    base_temperature: float | None = None,
    contrast_mode: str = "all",
    gather_distributed: bool = True,
) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, ``L_out``); NT-Xent when ``labels is None``.

    Args:
        features: ``[batch, views, dim]``, already L2-normalised along ``dim``.
        labels: ``[batch]`` integer class labels, or ``None`` for self-supervised (only the other
            views of the same sample are positives).
        temperature: softmax temperature ``T > 0``.
        base_temperature: if given, the loss is scaled by ``T / base_temperature``; ``None`` = no
            scaling.
        contrast_mode: ``"all"`` (every view is an anchor) or ``"one"`` (only view 0 is).
        gather_distributed: gather features/labels of all ranks when ``torch.distributed`` is
            initialised (negatives from the global batch).

    For an anchor ``a`` the positives ``P(a)`` are its other views and every view of a sample with
    the same label; the anchor itself is excluded from numerator and denominator, the denominator
    sums over every other row. ``loss_a = -(T/T_b) * mean_{p in P(a)} log softmax_a(p)``; anchors
    with no positive contribute 0; the result is the mean over anchors (a scalar).
    """
    if features.ndim != 3:
        raise ValueError(f"features must have shape [batch, views, dim], got {tuple(features.shape)}")
    check_range("temperature", temperature, low=0, low_inclusive=False)
    if base_temperature is not None:
        check_range("base_temperature", base_temperature, low=0, low_inclusive=False)
    check_choice("contrast_mode", contrast_mode, ("all", "one"))
    batch, views, _ = features.shape
    if labels is not None and labels.shape != (batch,):
        raise ConfigError(f"labels must have shape [{batch}], got {tuple(labels.shape)}")

    rank, _ = rank_and_world()
    if labels is None:
        # every sample is its own class; make ids unique across ranks before gathering
        labels = torch.arange(batch, device=features.device) + rank * batch
    labels = labels.to(features.device).long()
    if gather_distributed:
        all_features, all_labels, offset = _gather_with_grad(features, labels)
    else:
        all_features, all_labels, offset = features, labels, 0
    total = all_features.shape[0]

    # contrast set: view-major stacking [view0 of all samples, view1 of all samples, ...]
    contrast = all_features.transpose(0, 1).reshape(views * total, -1)
    contrast_labels = all_labels.repeat(views)
    anchor_views = views if contrast_mode == "all" else 1
    # local anchors = rows (v, offset + i) for v < anchor_views, i < batch
    rows = (torch.arange(anchor_views, device=features.device)[:, None] * total + offset
            + torch.arange(batch, device=features.device)[None, :]).reshape(-1)
    anchors = contrast[rows]
    anchor_labels = contrast_labels[rows]

    logits = anchors @ contrast.T / temperature
    not_self = torch.ones_like(logits, dtype=torch.bool)
    not_self[torch.arange(rows.numel(), device=logits.device), rows] = False
    logits = logits - logits.masked_fill(~not_self, float("-inf")).amax(dim=1, keepdim=True).detach()
    log_denominator = torch.logsumexp(logits.masked_fill(~not_self, float("-inf")), dim=1, keepdim=True)
    log_prob = logits - log_denominator
    positives = (anchor_labels[:, None] == contrast_labels[None, :]) & not_self
    n_pos = positives.sum(dim=1)
    mean_log_prob_pos = (log_prob * positives).sum(dim=1) / n_pos.clamp(min=1)
    scale = 1.0 if base_temperature is None else temperature / base_temperature
    return -(scale * mean_log_prob_pos).mean()


__all__ = ["supcon_loss"]
