"""Supervised-contrastive (SupCon, Khosla et al. 2020) and SimCLR training, then a linear head.

One ``fit`` runs the paper's whole protocol, its phases counted back from ``trainer.max_epochs``:

1. ``contrastive`` — epochs ``[0, max_epochs - head_epochs - finetune_epochs)``: encoder +
   projection head trained with :func:`supcon_loss` on the views (``supervised=False`` = SimCLR,
   labels ignored). An online linear probe on *detached* features is trained alongside and logged
   as ``probe/*`` — it never touches the encoder and is not part of ``train/loss``.
2. ``head`` — the next ``head_epochs``: the encoder is frozen (eval mode, no gradients) and the
   classifier Linear(D, C) is trained with cross-entropy on view 0. Its accuracy is the reported
   ``val/acc`` and ``test/acc``.
3. ``finetune`` — only when a pruning callback sets ``finetune_epochs`` (One-Shot): encoder +
   classifier trained with cross-entropy (the callback supplies the optimiser).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_modules.base import RepresentationModule
from lightning_modules.errors import ConfigError, check_choice, check_range
from lightning_modules.losses import supcon_loss


class ProjectionHead(nn.Sequential):
    """Linear(D, hidden)-ReLU-Linear(hidden, out); the caller L2-normalises the output."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


def _cosine(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


class SupConModel(RepresentationModule):
    """SupCon / SimCLR encoder + projection head, followed by a linear classifier in the same fit.

    Defaults are the SCL column of REFERENCE §1: temperature 0.5, base temperature 0.07, SGD lr
    0.05 momentum 0.9 weight decay 5e-4 with cosine annealing over the contrastive phase, projection
    Linear(128,128)-ReLU-Linear(128,128).

    Args:
        supervised: SupCon (labels define positives) or SimCLR (``False``: only the other views).
        temperature, base_temperature: loss temperature ``T`` and scale ``T / base_T`` (``None``:
            no scaling).
        contrast_mode: ``"all"`` or ``"one"`` anchors (see :func:`supcon_loss`).
        head_epochs: last epochs spent training the linear classifier on the frozen encoder
            (1 <= head_epochs < trainer.max_epochs).
        head_lr, head_momentum, head_weight_decay: SGD for the classifier (cosine over the head phase).
        probe_lr: SGD lr of the online probe (constant; weight decay 0).
        proj_hidden_dim, proj_dim: projection head sizes.
    """

    method = "supcon"

    def __init__(
        self,
        backbone: str = "wrn16_2",
        num_classes: int = 10,
        supervised: bool = True,
        temperature: float = 0.5,
        base_temperature: float | None = 0.07,
        contrast_mode: str = "all",
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        head_epochs: int = 100,
        head_lr: float = 0.1,
        head_momentum: float = 0.9,
        head_weight_decay: float = 0.0,
        probe_lr: float = 0.1,
        proj_hidden_dim: int = 128,
        proj_dim: int = 128,
        in_channels: int = 3,
        depth: int = 16,
        widen_factor: int = 2,
        channels_last: bool = False,
    ) -> None:
        check_range("model.temperature", temperature, low=0, low_inclusive=False)
        if base_temperature is not None:
            check_range("model.base_temperature", base_temperature, low=0, low_inclusive=False)
        check_choice("model.contrast_mode", contrast_mode, ("all", "one"))
        check_range("model.lr", lr, low=0, low_inclusive=False)
        check_range("model.head_lr", head_lr, low=0, low_inclusive=False)
        check_range("model.probe_lr", probe_lr, low=0, low_inclusive=False)
        check_range("model.weight_decay", weight_decay, low=0)
        check_range("model.head_epochs", head_epochs, low=1)
        check_range("model.proj_hidden_dim", proj_hidden_dim, low=1)
        check_range("model.proj_dim", proj_dim, low=1)
        super().__init__(backbone, num_classes, in_channels, depth, widen_factor, channels_last)
        self.save_hyperparameters()
        self.method = "supcon" if supervised else "simclr"
        self.projector = ProjectionHead(self.feature_dim, proj_hidden_dim, proj_dim)
        self.probe = nn.Linear(self.feature_dim, num_classes)
        self.probe_train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.probe_val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.head_train_acc = MulticlassAccuracy(num_classes, average="micro")

    # -- phases ---------------------------------------------------------------------------------
    def _head_start_epoch(self) -> int:
        return self._finetune_start_epoch() - self.hparams.head_epochs

    @property
    def phase(self) -> str:
        epoch = self.current_epoch
        if self.finetune_epochs and epoch >= self._finetune_start_epoch():
            return "finetune"
        if epoch >= self._head_start_epoch():
            return "head"
        return "contrastive"

    def check_fit_config(self, max_epochs: int | None, datamodule: Any = None) -> None:
        super().check_fit_config(max_epochs, datamodule)
        assert max_epochs is not None
        head = self.hparams.head_epochs
        if head + self.finetune_epochs >= max_epochs:
            extra = f" + finetune_epochs={self.finetune_epochs}" if self.finetune_epochs else ""
            raise ConfigError(
                f"model.head_epochs={head}{extra} must be below trainer.max_epochs={max_epochs}; "
                f"the contrastive phase is max_epochs - head_epochs{' - finetune_epochs' if extra else ''} epochs"
            )
        views = getattr(datamodule, "views", None)
        if views is not None and views < 2:
            raise ConfigError(
                f"data.views={views} is not allowed for contrastive training; it needs >= 2 views "
                "(set --data.init_args.views 2 or use configs/data/cifar10_contrastive.yaml)"
            )

    def _classifier_is_trained(self) -> bool:
        return self.trainer.state.fn != "fit" or self.phase != "contrastive"

    # -- training -------------------------------------------------------------------------------
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # frozen encoder in the head phase: BatchNorm statistics must not move either
        if self.phase == "head":
            self.encoder.eval()
            self.projector.eval()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        views: list[Tensor] = batch["views"]
        labels = batch["label"]
        phase = self.phase
        if phase == "head":
            with torch.no_grad():
                h = self.encode(views[0])
            logits = self.classifier(h)
            loss = F.cross_entropy(logits, labels)
            self.head_train_acc(logits.detach(), labels)
            self.log("train/head_loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
            self.log("train/head_acc", self.head_train_acc, prog_bar=True, on_step=False, on_epoch=True)
            return loss
        if phase == "finetune":
            logits = self.classify(views[0])
            loss = F.cross_entropy(logits, labels)
            self.head_train_acc(logits.detach(), labels)
            self.log("train/finetune_loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
            self.log("train/finetune_acc", self.head_train_acc, prog_bar=True, on_step=False, on_epoch=True)
            return loss

        n_views = len(views)
        h = self.encode(torch.cat(views, dim=0))
        z = F.normalize(self.projector(h), dim=1)
        features = torch.stack(z.chunk(n_views, dim=0), dim=1)  # [B, views, dim]
        hp = self.hparams
        loss = supcon_loss(
            features,
            labels if hp.supervised else None,
            temperature=hp.temperature,
            base_temperature=hp.base_temperature,
            contrast_mode=hp.contrast_mode,
        )
        batch_size = labels.shape[0]
        probe_logits = self.probe(h[:batch_size].detach())
        probe_loss = F.cross_entropy(probe_logits, labels)
        self.probe_train_acc(probe_logits.detach(), labels)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        self.log("probe/train_loss", probe_loss, on_step=False, on_epoch=True, sync_dist=True)
        self.log("probe/train_acc", self.probe_train_acc, on_step=False, on_epoch=True)
        return loss + probe_loss  # the probe sees detached features: its gradient never reaches the encoder

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        out = super().validation_step(batch, batch_idx)
        self.probe_val_acc(self.probe(out["features"]), out["label"])
        self.log("probe/val_acc", self.probe_val_acc)
        return out

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        encoder_params = list(self.encoder.parameters()) + list(self.projector.parameters())
        optimizer = torch.optim.SGD(
            [
                {"params": encoder_params, "lr": hp.lr, "weight_decay": hp.weight_decay, "name": "encoder"},
                {"params": self.probe.parameters(), "lr": hp.probe_lr, "weight_decay": 0.0, "name": "probe"},
                {
                    "params": self.classifier.parameters(),
                    "lr": hp.head_lr,
                    "weight_decay": hp.head_weight_decay,
                    "momentum": hp.head_momentum,
                    "name": "classifier",
                },
            ],
            lr=hp.lr,
            momentum=hp.momentum,
        )
        steps_per_epoch = self._steps_per_epoch()
        head_start = self._head_start_epoch() * steps_per_epoch
        head_steps = hp.head_epochs * steps_per_epoch

        def encoder_factor(step: int) -> float:  # cosine over the contrastive phase, then frozen
            return _cosine(step / max(1, head_start)) if step < head_start else 0.0

        def probe_factor(step: int) -> float:
            return 1.0 if step < head_start else 0.0

        def classifier_factor(step: int) -> float:  # untouched until the head phase, then cosine
            return 0.0 if step < head_start else _cosine((step - head_start) / max(1, head_steps))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [encoder_factor, probe_factor, classifier_factor])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def run_summary(self) -> dict[str, Any]:
        out = super().run_summary()
        out["head_epochs"] = self.hparams.head_epochs
        return out
