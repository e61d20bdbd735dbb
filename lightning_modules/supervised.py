"""Supervised training with cross-entropy (the paper's "Sup" setting)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from typing_extensions import override

from common.errors import check_range
from lightning_modules.accuracy import RunningAccuracy
from lightning_modules.base import RepresentationModule


class SupervisedClassifier(RepresentationModule):
    """Encoder + Linear(D, num_classes) trained jointly with cross-entropy.

    Defaults are the Sup column of REFERENCE §1 (Corti et al. code): SGD, momentum 0.9, weight
    decay 5e-4, lr 1.0 decayed x0.1 at epochs 5, 30, 50, 80 (MultiStepLR, per epoch).

    Args:
        backbone: ``wrn16_2`` | ``wrn`` | ``resnet18``.
        num_classes: linked from ``data.num_classes`` by the CLI.
        lr, momentum, weight_decay, nesterov: SGD settings.
        milestones, gamma: MultiStepLR epochs and factor.
    """

    method = "sup"

    def __init__(
        self,
        backbone: str = "wrn16_2",
        num_classes: int = 10,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = False,
        milestones: Sequence[int] = (5, 30, 50, 80),
        gamma: float = 0.1,
        in_channels: int = 3,
        depth: int = 16,
        widen_factor: int = 2,
        channels_last: bool = True,
    ) -> None:
        check_range("model.lr", lr, low=0, low_inclusive=False)
        check_range("model.momentum", momentum, low=0, high=1, high_inclusive=False)
        check_range("model.weight_decay", weight_decay, low=0)
        check_range("model.gamma", gamma, low=0, low_inclusive=False)
        super().__init__(backbone, num_classes, in_channels, depth, widen_factor, channels_last)
        self.save_hyperparameters()
        self.train_acc = RunningAccuracy()

    @override
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits = self.classify(batch["image"])
        loss = F.cross_entropy(logits, batch["label"])
        self.train_acc.update(logits.detach(), batch["label"])  # the epoch's value (no per-batch one: logged on_epoch)
        self.log_train("train/loss", loss, batch)
        self.log_train_metric("train/acc", self.train_acc, prog_bar=True)
        return loss

    @override
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.SGD(
            self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay, nesterov=hp.nesterov
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(hp.milestones), gamma=hp.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
