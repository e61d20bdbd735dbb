"""Training accuracy and epoch means, counted on the device in a handful of operations.

torchmetrics' ``MulticlassAccuracy(average="micro")`` gives the same number (correct / seen, summed
over ranks under DDP) but spends 17 tensor operations a batch on its general stat-scores path (four
counters, views, reductions); on a GPU each is a kernel launch of a small model's step. This one
counts ``argmax == target`` into two device counters (5 operations, nothing read back) and is logged
the same way (``self.log("train/acc", metric, on_epoch=True)``: Lightning computes, syncs and resets it
at the end of the epoch).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class RunningAccuracy(Metric):
    """Top-1 accuracy of ``logits [B, C]`` against ``target [B]`` since the last reset."""

    full_state_update = False
    correct: Tensor
    total: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        self.correct += (logits.argmax(dim=1) == target).sum()
        self.total += target.numel()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total



class EpochMean(Metric):
    """A step value's mean over an epoch, weighted by batch size, as Lightning reduces
    ``self.log(name, value, on_epoch=True)``: float32 ``sum(value x batch size)`` over
    ``sum(batch size)`` (the same operations, so the same bits on one device; under DDP both sums are
    summed over ranks, which for 2 ranks is Lightning's value bit for bit too). Two operations a step."""

    full_state_update = False
    total: Tensor
    count: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.get_default_dtype()), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, value: Tensor, batch_size: int) -> None:
        if value.dtype not in (torch.float32, torch.float64):
            value = value.to(torch.get_default_dtype())
        self.total = self.total + value * batch_size
        self.count = self.count + batch_size

    def compute(self) -> Tensor:
        return self.total / self.count


__all__ = ["EpochMean", "RunningAccuracy"]
