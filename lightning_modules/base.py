"""The protocol every training method implements, and what they share.

Callbacks rely only on this surface (DESIGN.md):

* ``encode(x) -> h`` — the representation ``[B, D]`` (128-d pooled output for WRN-16-2);
* ``classify(x) -> logits`` ``[B, num_classes]`` — the classifier that reports test accuracy;
* ``probe_features(x) -> list[Tensor]`` — pooled hidden representations for prediction depth;
* ``prunable_parameters() -> dict[name, Parameter]`` — encoder Conv2d/Linear weights, names as in
  ``named_parameters()`` (so they match state-dict keys);
* ``phase`` — ``"supervised"``, ``"contrastive"``, ``"head"`` or ``"finetune"`` for the current
  epoch, counted back from ``trainer.max_epochs`` (the one source of truth for a run's length);
  ``finetune_epochs`` is set by a pruning callback that fine-tunes at the end (One-Shot);
* ``validation_step``/``test_step`` return ``{"index", "label", "logits", "features"}`` (detached),
  so metric callbacks read per-sample outputs without a second forward pass.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_modules.backbones import build_backbone
from lightning_modules.errors import ConfigError, check_range


class RepresentationModule(pl.LightningModule):
    """Encoder + linear classifier, the evaluation loops and the shared protocol.

    Subclasses implement ``training_step`` and ``configure_optimizers``.
    """

    method: str = "base"

    def __init__(
        self,
        backbone: str = "wrn16_2",
        num_classes: int = 10,
        in_channels: int = 3,
        depth: int = 16,
        widen_factor: int = 2,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        check_range("model.num_classes", num_classes, low=2)
        self.encoder = build_backbone(backbone, in_channels=in_channels, depth=depth, widen_factor=widen_factor)
        self.feature_dim: int = self.encoder.feature_dim
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        self.num_classes = num_classes
        self.channels_last = channels_last
        self.finetune_epochs = 0
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc_per_class = MulticlassAccuracy(num_classes, average=None)
        self._epoch_started: float | None = None
        if channels_last:
            self.to(memory_format=torch.channels_last)

    # -- protocol -------------------------------------------------------------------------------
    def _prep(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(self._prep(x))

    def classify(self, x: Tensor) -> Tensor:
        return self.classifier(self.encode(x))

    def probe_features(self, x: Tensor) -> list[Tensor]:
        return self.encoder.probe_features(self._prep(x))

    def prunable_parameters(self) -> dict[str, nn.Parameter]:
        """Weights of every Conv2d and Linear layer of the encoder (never BatchNorm, never biases)."""
        out: dict[str, nn.Parameter] = {}
        for mod_name, module in self.encoder.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                out[f"encoder.{mod_name}.weight"] = module.weight
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(x)

    @property
    def phase(self) -> str:
        raise NotImplementedError

    def _finetune_start_epoch(self) -> int:
        return self._max_epochs() - self.finetune_epochs

    def _max_epochs(self) -> int:
        trainer = self._trainer
        if trainer is None or trainer.max_epochs is None:
            raise RuntimeError("the run's length comes from trainer.max_epochs, which is not set")
        return int(trainer.max_epochs)

    # -- validation shared by all methods ------------------------------------------------------
    def check_fit_config(self, max_epochs: int | None, datamodule: Any = None) -> None:
        """Raise :class:`ConfigError` when this module cannot train for ``max_epochs`` on ``datamodule``.

        Called by the CLI before any logger or training starts, and again from ``setup("fit")``
        (after callbacks such as One-Shot have set ``finetune_epochs``).
        """
        if max_epochs is None or max_epochs < 1:
            raise ConfigError(
                f"trainer.max_epochs={max_epochs!r} is not allowed; it must be a whole number >= 1 "
                "(the run's length and every phase are counted from it)"
            )
        if self.finetune_epochs >= max_epochs:
            raise ConfigError(f"finetune_epochs={self.finetune_epochs} must be below trainer.max_epochs={max_epochs}")

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.check_fit_config(self.trainer.max_epochs, getattr(self.trainer, "datamodule", None))

    # -- evaluation ----------------------------------------------------------------------------
    def _eval_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        features = self.encode(batch["image"])
        logits = self.classifier(features)
        return {"index": batch["index"], "label": batch["label"], "logits": logits.detach(), "features": features.detach()}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        out = self._eval_step(batch)
        if self._classifier_is_trained():
            self.val_acc(out["logits"], out["label"])
            self.log("val/loss", F.cross_entropy(out["logits"], out["label"]), sync_dist=True)
            self.log("val/acc", self.val_acc)
        return out

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        out = self._eval_step(batch)
        self.test_acc(out["logits"], out["label"])
        self.test_acc_per_class.update(out["logits"], out["label"])
        self.log("test/loss", F.cross_entropy(out["logits"], out["label"]), sync_dist=True)
        self.log("test/acc", self.test_acc)
        return out

    def on_test_epoch_end(self) -> None:
        per_class = self.test_acc_per_class.compute()
        for k, value in enumerate(per_class):
            self.log(f"test/acc_class_{k}", value)
        self.test_acc_per_class.reset()

    def _classifier_is_trained(self) -> bool:
        return True

    # -- timing --------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        if self._epoch_started is not None:
            self.log("train/epoch_time_s", time.perf_counter() - self._epoch_started, sync_dist=True)

    def run_summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "backbone": self.hparams.get("backbone"),
            "encoder_parameters": sum(p.numel() for p in self.encoder.parameters()),
        }

    def _steps_per_epoch(self) -> int:
        return max(1, int(self.trainer.estimated_stepping_batches) // max(1, self._max_epochs()))
