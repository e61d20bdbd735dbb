"""Training accuracy over an epoch, counted on the device in a handful of operations.

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


__all__ = ["RunningAccuracy"]
