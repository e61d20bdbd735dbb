"""Supervised-contrastive (SupCon, Khosla et al. 2020) and SimCLR training, then a linear head.

One ``fit`` runs the paper's whole protocol, its phases counted back from ``trainer.max_epochs``
(:mod:`lightning_modules.phased`, shared with BYOL and SDCLR):

1. ``contrastive`` — epochs ``[0, max_epochs - head_epochs - finetune_epochs)``: encoder +
   projection head trained with :func:`supcon_loss` on the views (``supervised=False`` = SimCLR,
   labels ignored). An online linear probe on *detached* features is trained alongside and logged
   as ``probe/*`` — it never touches the encoder and is not part of ``train/loss``.
2. ``head`` — the next ``head_epochs``: the encoder is frozen (eval mode, no gradients) and the
   classifier Linear(D, C) is trained with cross-entropy on its own loader (supervised augmentation,
   ``head_batch_size``). Its accuracy is the reported ``val/acc`` and ``test/acc``.
3. ``finetune`` — only when a pruning callback sets ``finetune_epochs`` (One-Shot): encoder +
   classifier trained with cross-entropy (the callback supplies the optimiser).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from common.errors import check_choice, check_range
from lightning_modules.losses import supcon_loss
from lightning_modules.phased import PhasedRepresentationModule


class ProjectionHead(nn.Sequential):
    """Linear(D, hidden)-ReLU-Linear(hidden, out); the caller L2-normalises the output."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


class SupConModel(PhasedRepresentationModule):
    """SupCon / SimCLR encoder + projection head, followed by a linear classifier in the same fit.

    Defaults are the SCL column of REFERENCE §1 with the authors' code values (``clr_training.py``):
    temperature 0.5, base temperature 0.07, SGD lr 0.05 momentum 0.9 weight decay 4e-4 (the paper
    says 5e-4) with per-epoch cosine annealing to lr * 1e-3 over the contrastive phase, projection
    Linear(128,128)-ReLU-Linear(128,128); linear head 100 epochs at batch 256 on the supervised
    augmentation, SGD lr 0.1 momentum 0.9 no weight decay, MultiStepLR [60, 75, 90] x 0.2 chained
    with cosine to lr * 1e-3.

    Args:
        supervised: SupCon (labels define positives) or SimCLR (``False``: only the other views).
        temperature, base_temperature: loss temperature ``T`` and scale ``T / base_T`` (``None``:
            no scaling).
        contrast_mode: ``"all"`` or ``"one"`` anchors (see :func:`supcon_loss`).
        head_epochs: last epochs spent training the linear classifier on the frozen encoder
            (1 <= head_epochs < trainer.max_epochs).
        head_lr, head_momentum, head_weight_decay: SGD for the classifier.
        head_batch_size, head_augmentation: the head phase's own loader (``head_augmentation:
            null`` = view 0 of the pretraining loader).
        head_milestones, head_gamma: the head's MultiStepLR (per epoch, chained with the cosine).
        min_lr_factor: both cosines end at lr * min_lr_factor (the authors' eta_min = lr * 0.1**3).
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
        weight_decay: float = 4e-4,
        head_epochs: int = 100,
        head_lr: float = 0.1,
        head_momentum: float = 0.9,
        head_weight_decay: float = 0.0,
        head_batch_size: int | None = 256,
        head_augmentation: str | None = "supervised",
        head_milestones: Sequence[int] = (60, 75, 90),
        head_gamma: float = 0.2,
        min_lr_factor: float = 1e-3,
        probe_lr: float = 0.1,
        proj_hidden_dim: int = 128,
        proj_dim: int = 128,
        in_channels: int = 3,
        depth: int = 16,
        widen_factor: int = 2,
        channels_last: bool = True,
    ) -> None:
        check_range("model.temperature", temperature, low=0, low_inclusive=False)
        if base_temperature is not None:
            check_range("model.base_temperature", base_temperature, low=0, low_inclusive=False)
        check_choice("model.contrast_mode", contrast_mode, ("all", "one"))
        check_range("model.proj_hidden_dim", proj_hidden_dim, low=1)
        check_range("model.proj_dim", proj_dim, low=1)
        super().__init__(
            backbone, num_classes, in_channels, depth, widen_factor, channels_last, lr=lr, momentum=momentum,
            weight_decay=weight_decay, head_epochs=head_epochs, head_lr=head_lr, head_momentum=head_momentum,
            head_weight_decay=head_weight_decay, head_batch_size=head_batch_size, head_augmentation=head_augmentation,
            head_milestones=head_milestones, head_gamma=head_gamma, min_lr_factor=min_lr_factor, probe_lr=probe_lr,
        )  # fmt: skip
        self.method = "supcon" if supervised else "simclr"

    @override
    def build_heads(self) -> None:
        self.projector = ProjectionHead(self.feature_dim, self.hparams.proj_hidden_dim, self.hparams.proj_dim)

    # -- the method ------------------------------------------------------------------------------
    @override
    def pretrain_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters()) + list(self.projector.parameters())

    @override
    def frozen_in_head_phase(self) -> list[nn.Module]:
        return [self.encoder, self.projector]

    @override
    def pretrain_step(self, batch: dict[str, Tensor], batch_idx: int) -> tuple[Tensor, Tensor]:
        views: list[Tensor] = batch["views"]
        labels = batch["label"]
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
        self.log_train("train/loss", loss, batch)
        return loss, h[: labels.shape[0]]
