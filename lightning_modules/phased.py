"""Representation learning first, then a linear classifier on the frozen encoder, in one ``fit``.

What SupCon, SimCLR, BYOL and SDCLR share (each only writes its pretraining loss). The phases are
counted back from ``trainer.max_epochs``, the one source of truth for a run's length:

1. ``contrastive`` — epochs ``[0, max_epochs - head_epochs - finetune_epochs)``: the method's
   :meth:`PhasedRepresentationModule.pretrain_step` (encoder + heads). An online linear probe on
   *detached* features of the first view is trained alongside and logged as ``probe/*`` — it never
   touches the encoder and is not part of ``train/loss``.
2. ``head`` — the next ``head_epochs``: the encoder is frozen (eval mode, no gradients) and the
   classifier Linear(D, C) is trained with cross-entropy on view 0. Its accuracy is the reported
   ``val/acc`` and ``test/acc``.
3. ``finetune`` — only when a pruning callback sets ``finetune_epochs`` (One-Shot): encoder +
   classifier trained with cross-entropy (the callback supplies the optimiser).

Subclasses call ``self.add_probe()`` at the end of ``__init__`` and ``self.save_hyperparameters()`` with at least ``lr``, ``momentum``,
``weight_decay``, ``head_epochs``, ``head_lr``, ``head_momentum``, ``head_weight_decay`` and
``probe_lr`` among their arguments.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_modules.base import RepresentationModule
from lightning_modules.errors import ConfigError


def cosine_factor(progress: float) -> float:
    """``0.5 * (1 + cos(pi * progress))`` with ``progress`` clipped to ``[0, 1]``: 1 -> 0."""
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


class PhasedRepresentationModule(RepresentationModule):
    """Pretraining phase + linear-head phase (+ optional fine-tuning), probe, optimiser, schedules.

    The optimiser is SGD with three parameter groups: ``encoder`` (:meth:`pretrain_parameters`,
    cosine-annealed over the pretraining phase, then 0), ``probe`` (constant, 0 after
    pretraining) and ``classifier`` (0 until the head phase, then cosine over it).
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        in_channels: int,
        depth: int,
        widen_factor: int,
        channels_last: bool,
    ) -> None:
        super().__init__(backbone, num_classes, in_channels, depth, widen_factor, channels_last)

    def add_probe(self) -> None:
        """Create the online probe and the head/probe accuracies.

        Subclasses call it at the end of ``__init__``, after their own heads, so parameter
        initialisation keeps the order encoder, classifier, heads, probe (same seeds, same weights).
        """
        self.probe = nn.Linear(self.feature_dim, self.num_classes)
        self.probe_train_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self.probe_val_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self.head_train_acc = MulticlassAccuracy(self.num_classes, average="micro")

    # -- what a method defines ------------------------------------------------------------------
    def pretrain_step(self, batch: dict[str, Tensor], batch_idx: int) -> tuple[Tensor, Tensor]:
        """The method's loss on a multi-view batch, and the encoder features ``[B, D]`` of view 0
        (the probe trains on them, detached). Log ``train/loss`` here."""
        raise NotImplementedError

    def pretrain_parameters(self) -> list[nn.Parameter]:
        """Parameters trained in the pretraining phase (encoder + heads)."""
        raise NotImplementedError

    def frozen_in_head_phase(self) -> list[nn.Module]:
        """Modules put in eval mode during the head phase (BatchNorm statistics must not move)."""
        return [self.encoder]

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

    def pretrain_end_step(self) -> int:
        """Optimiser step at which the pretraining phase ends (the head phase starts)."""
        return self._head_start_epoch() * self._steps_per_epoch()

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
            for module in self.frozen_in_head_phase():
                module.eval()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._phase_step(batch, batch_idx)
        if self.trainer.world_size > 1:
            # DDP (find_unused_parameters=False) needs a gradient for every trainable parameter at
            # every step, but each phase leaves some unused (the classifier while pretraining, the
            # encoder in the head phase): give them an exact zero gradient
            loss = loss + 0.0 * sum(p.sum() for p in self.parameters() if p.requires_grad)
        return loss

    def _phase_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
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

        loss, h0 = self.pretrain_step(batch, batch_idx)
        probe_logits = self.probe(h0.detach())
        probe_loss = F.cross_entropy(probe_logits, labels)
        self.probe_train_acc(probe_logits.detach(), labels)
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
        optimizer = torch.optim.SGD(
            [
                {"params": self.pretrain_parameters(), "lr": hp.lr, "weight_decay": hp.weight_decay, "name": "encoder"},
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
            return cosine_factor(step / max(1, head_start)) if step < head_start else 0.0

        def probe_factor(step: int) -> float:
            return 1.0 if step < head_start else 0.0

        def classifier_factor(step: int) -> float:  # untouched until the head phase, then cosine
            return 0.0 if step < head_start else cosine_factor((step - head_start) / max(1, head_steps))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [encoder_factor, probe_factor, classifier_factor])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def run_summary(self) -> dict[str, Any]:
        out = super().run_summary()
        out["head_epochs"] = self.hparams.head_epochs
        return out


__all__ = ["PhasedRepresentationModule", "cosine_factor"]
