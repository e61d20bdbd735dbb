"""Representation learning first, then a linear classifier on the frozen encoder, in one ``fit``.

What SupCon, SimCLR, BYOL and SDCLR share (each only writes its pretraining loss). The phases are
counted back from ``trainer.max_epochs``, the one source of truth for a run's length:

1. ``contrastive`` — epochs ``[0, max_epochs - head_epochs - finetune_epochs)``: the method's
   :meth:`PhasedRepresentationModule.pretrain_step` (encoder + heads) on the datamodule's
   (multi-view) loader. An online linear probe on *detached* features of the first view is trained
   alongside and logged as ``probe/*`` — it never touches the encoder and is not part of
   ``train/loss``.
2. ``head`` — the next ``head_epochs``: the encoder is frozen (eval mode, no gradients) and the
   classifier Linear(D, C) is trained with cross-entropy on **its own loader**: the supervised
   augmentation (crop + flips) at ``head_batch_size`` (Corti et al.'s ``clr_training.py``: batch 256,
   100 epochs, SGD lr 0.1, momentum 0.9, no weight decay, MultiStepLR [60, 75, 90] x 0.2 chained with
   cosine annealing to lr * 1e-3, both per epoch). Its accuracy is the reported ``val/acc`` and
   ``test/acc``. ``head_augmentation: null`` trains on view 0 of the pretraining loader instead.
3. ``finetune`` — only when a pruning callback sets ``finetune_epochs`` (One-Shot): encoder +
   classifier trained with cross-entropy, the whole network in train mode (the callback supplies the
   optimiser and the loader spec).

Learning rates (one SGD, three parameter groups, stepped per epoch as the authors' schedulers):
``encoder`` (:meth:`pretrain_parameters`) cosine from ``lr`` to ``lr * min_lr_factor`` over the
contrastive epochs (the authors' ``CosineAnnealingLR(T_max=epochs, eta_min=lr * 0.1**3)``), then 0;
``probe`` constant, 0 after pretraining; ``classifier`` 0 until the head phase, then the head schedule
above (computed by running torch's own ``MultiStepLR`` and ``CosineAnnealingLR`` chained, so it is
exactly the authors' sequence).

A subclass checks its own arguments, passes the shared ones (the optimiser's ``lr``, ``momentum``,
``weight_decay``, the head phase's ``head_*``, ``min_lr_factor``, ``probe_lr``) to
``super().__init__`` — which validates them once and saves the subclass's arguments as
``hparams`` — and builds its heads in :meth:`PhasedRepresentationModule.build_heads`, which the base
calls between the classifier and the online probe (so parameters are initialised in the order
encoder, classifier, heads, probe: same seed, same weights).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from common.data_spec import AUGMENTATIONS, TrainDataSpec
from common.errors import ConfigError, check_choice, check_range
from common.protocols import PlannedData
from common.schedules import cosine_factor
from lightning_modules.accuracy import RunningAccuracy
from lightning_modules.base import RepresentationModule


def cosine_annealing_factors(epochs: int, min_factor: float) -> list[float]:
    """lr / base lr at each epoch of ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=epochs,
    eta_min=base * min_factor)`` stepped once per epoch: ``m + (1 - m) * cos_factor(e / epochs)``."""
    return [min_factor + (1.0 - min_factor) * cosine_factor(e / max(1, epochs)) for e in range(epochs)]


def chained_head_factors(epochs: int, milestones: Sequence[int], gamma: float, min_factor: float) -> list[float]:
    """lr / base lr at each head epoch of the authors' schedule: ``MultiStepLR(milestones, gamma)``
    and ``CosineAnnealingLR(T_max=epochs, eta_min=base * min_factor)`` both stepped after every epoch
    (chained), obtained by running the two torch schedulers on a dummy optimiser."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    multistep = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs), eta_min=min_factor)
    factors = []
    for _ in range(epochs):
        factors.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        multistep.step()
        cosine.step()
    return factors


def check_head_arguments(
    *, head_epochs: int, head_lr: float, head_momentum: float, head_weight_decay: float, head_batch_size: int | None,
    head_augmentation: str | None, head_milestones: Sequence[int], head_gamma: float, min_lr_factor: float,
    lr: float, momentum: float, weight_decay: float, probe_lr: float,
) -> None:
    """Raise :class:`ConfigError` (one line) for a bad argument shared by every phased method.

    Raises:
        ConfigError: the first argument out of its range, named as on the command line (``model.lr``).
    """
    check_range("model.lr", lr, low=0, low_inclusive=False)
    check_range("model.momentum", momentum, low=0, high=1, high_inclusive=False)
    check_range("model.weight_decay", weight_decay, low=0)
    check_range("model.head_epochs", head_epochs, low=1)
    check_range("model.head_lr", head_lr, low=0, low_inclusive=False)
    check_range("model.head_momentum", head_momentum, low=0, high=1, high_inclusive=False)
    check_range("model.head_weight_decay", head_weight_decay, low=0)
    if head_batch_size is not None:
        check_range("model.head_batch_size", head_batch_size, low=1)
    if head_augmentation is not None:
        check_choice("model.head_augmentation", head_augmentation, AUGMENTATIONS)
    for milestone in head_milestones:
        check_range("model.head_milestones", milestone, low=1)
    check_range("model.head_gamma", head_gamma, low=0, low_inclusive=False)
    check_range("model.min_lr_factor", min_lr_factor, low=0, high=1)
    check_range("model.probe_lr", probe_lr, low=0, low_inclusive=False)


class PhasedRepresentationModule(RepresentationModule):
    """Pretraining phase + linear-head phase (+ optional fine-tuning), probe, optimiser, schedules."""

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        in_channels: int,
        depth: int,
        widen_factor: int,
        channels_last: bool,
        *,
        lr: float,
        momentum: float,
        weight_decay: float,
        head_epochs: int,
        head_lr: float,
        head_momentum: float,
        head_weight_decay: float,
        head_batch_size: int | None,
        head_augmentation: str | None,
        head_milestones: Sequence[int],
        head_gamma: float,
        min_lr_factor: float,
        probe_lr: float,
    ) -> None:
        check_head_arguments(
            head_epochs=head_epochs, head_lr=head_lr, head_momentum=head_momentum, head_weight_decay=head_weight_decay,
            head_batch_size=head_batch_size, head_augmentation=head_augmentation, head_milestones=head_milestones,
            head_gamma=head_gamma, min_lr_factor=min_lr_factor, lr=lr, momentum=momentum, weight_decay=weight_decay,
            probe_lr=probe_lr,
        )  # fmt: skip
        super().__init__(backbone, num_classes, in_channels, depth, widen_factor, channels_last)
        # the subclass's own arguments (every one of its __init__ parameters) become self.hparams:
        # collected from the frame that called this __init__, as if the subclass had called it
        caller = inspect.currentframe()
        assert caller is not None and caller.f_back is not None
        self.save_hyperparameters(frame=caller.f_back)
        del caller
        self.build_heads()
        self._add_probe()

    def _add_probe(self) -> None:
        """The online probe and the head/probe accuracies (after the heads: see the module doc)."""
        self.probe = nn.Linear(self.feature_dim, self.num_classes)
        self.probe_train_acc = RunningAccuracy()
        self.head_train_acc = RunningAccuracy()

    # -- what a method defines ------------------------------------------------------------------
    def build_heads(self) -> None:
        """Create the method's own modules (projection/prediction heads, momentum copies); the
        subclass's arguments are in ``self.hparams``. Called once by ``__init__``."""
        raise NotImplementedError

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
    @override
    def phase_epochs(self, max_epochs: int) -> list[tuple[str, int]]:
        if self.finetune_only:
            return [("finetune", max_epochs)]
        head = int(self.hparams.head_epochs)
        return [
            ("contrastive", max_epochs - head - self.finetune_epochs),
            ("head", head),
            ("finetune", self.finetune_epochs),
        ]

    @override
    def train_data_specs(self) -> dict[str, TrainDataSpec | None]:
        hp = self.hparams
        head = None
        if hp.get("head_augmentation") is not None:
            head = TrainDataSpec(hp.head_augmentation, 1, hp.head_batch_size) if hp.head_batch_size else None
        return {"contrastive": None, "head": head, "finetune": self.finetune_spec}

    @override
    def frozen_modules(self) -> list[nn.Module]:
        return self.frozen_in_head_phase() if self.phase == "head" else []

    def _head_start_epoch(self) -> int:
        return self._finetune_start_epoch() - self.hparams.head_epochs

    def pretrain_end_step(self) -> int:
        """Optimiser step at which the pretraining phase ends (the head phase starts)."""
        phase = self.plan().phase("contrastive")
        return 0 if phase is None else phase.end_step

    @override
    def check_fit_config(self, max_epochs: int | None, datamodule: Any = None) -> None:
        super().check_fit_config(max_epochs, datamodule)
        assert max_epochs is not None
        head = self.hparams.head_epochs
        if not self.finetune_only and head + self.finetune_epochs >= max_epochs:
            extra = f" + finetune_epochs={self.finetune_epochs}" if self.finetune_epochs else ""
            raise ConfigError(
                f"model.head_epochs={head}{extra} must be below trainer.max_epochs={max_epochs}; "
                f"the contrastive phase is max_epochs - head_epochs{' - finetune_epochs' if extra else ''} epochs"
            )
        views = datamodule.views if isinstance(datamodule, PlannedData) else None
        if not self.finetune_only and views is not None and views < 2:
            raise ConfigError(
                f"data.views={views} is not allowed for contrastive training; it needs >= 2 views "
                "(set --data.init_args.views 2 or use configs/data/cifar10_contrastive.yaml)"
            )

    @override
    def _classifier_is_trained(self) -> bool:
        return self.trainer.state.fn != "fit" or self.phase != "contrastive"

    # -- training -------------------------------------------------------------------------------
    @override
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._phase_step(batch, batch_idx)
        if self.trainer.world_size > 1:
            # DDP (find_unused_parameters=False) needs a gradient for every trainable parameter at
            # every step, but each phase leaves some unused (the classifier while pretraining, the
            # encoder in the head phase): give them an exact zero gradient
            loss = loss + 0.0 * sum(p.sum() for p in self.parameters() if p.requires_grad)
        return loss

    @staticmethod
    def _single_view(batch: dict[str, Tensor]) -> Tensor:
        """The image of a single-view batch, or view 0 of a multi-view one."""
        return batch["image"] if "image" in batch else batch["views"][0]

    def _phase_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        labels = batch["label"]
        phase = self.phase
        if phase == "head":
            with torch.no_grad():
                h = self.encode(self._single_view(batch))
            logits = self.classifier(h)
            loss = F.cross_entropy(logits, labels)
            self.head_train_acc.update(logits.detach(), labels)
            self.log_train("train/head_loss", loss, batch)
            self.log_train_metric("train/head_acc", self.head_train_acc, prog_bar=True)
            return loss
        if phase == "finetune":
            logits = self.classify(self._single_view(batch))
            loss = F.cross_entropy(logits, labels)
            self.head_train_acc.update(logits.detach(), labels)
            self.log_train("train/finetune_loss", loss, batch)
            self.log_train_metric("train/finetune_acc", self.head_train_acc, prog_bar=True)
            return loss

        loss, h0 = self.pretrain_step(batch, batch_idx)
        probe_logits = self.probe(h0.detach())
        probe_loss = F.cross_entropy(probe_logits, labels)
        self.probe_train_acc.update(probe_logits.detach(), labels)
        self.log_train("probe/train_loss", probe_loss, batch, on_step=False)
        self.log_train_metric("probe/train_acc", self.probe_train_acc)
        return loss + probe_loss  # the probe sees detached features: its gradient never reaches the encoder

    # -- evaluation: the online probe, de-duplicated like the classifier ------------------------
    @override
    def _eval_columns(self, stage: str) -> dict[str, torch.dtype]:
        columns = super()._eval_columns(stage)
        if stage == "val":
            columns["probe_pred"] = torch.long
        return columns

    @override
    def _extra_val_columns(self, out: dict[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            return {"probe_pred": self.probe(out["features"]).argmax(dim=1)}

    @override
    def _log_extra_val(self, rows: dict[str, Tensor]) -> None:
        self.log("probe/val_acc", (rows["probe_pred"] == rows["label"]).float().mean().item())

    # -- optimiser ------------------------------------------------------------------------------
    def lr_factors(self, max_epochs: int) -> tuple[list[float], list[float], list[float]]:
        """Per-epoch lr / base lr of the ``encoder``, ``probe`` and ``classifier`` groups."""
        hp = self.hparams
        pretrain = dict(self.phase_epochs(max_epochs)).get("contrastive", 0)
        head = dict(self.phase_epochs(max_epochs)).get("head", 0)
        rest = max_epochs - pretrain - head
        encoder = cosine_annealing_factors(pretrain, hp.min_lr_factor) + [0.0] * (head + rest)
        probe = [1.0] * pretrain + [0.0] * (head + rest)
        head_factors = chained_head_factors(head, hp.head_milestones, hp.head_gamma, hp.min_lr_factor)
        classifier = [0.0] * pretrain + head_factors + [0.0] * rest
        return encoder, probe, classifier

    @override
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
        factors = self.lr_factors(self._max_epochs())

        def at(table: list[float]) -> Any:
            return lambda epoch: table[min(int(epoch), len(table) - 1)] if table else 0.0

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [at(f) for f in factors])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    @override
    def run_summary(self, trainer: pl.Trainer | None, pl_module: pl.LightningModule | None) -> dict[str, Any]:
        out = super().run_summary(trainer, pl_module)
        out["head_epochs"] = self.hparams.head_epochs
        return out


__all__ = [
    "PhasedRepresentationModule",
    "chained_head_factors",
    "check_head_arguments",
    "cosine_annealing_factors",
    "cosine_factor",
]
