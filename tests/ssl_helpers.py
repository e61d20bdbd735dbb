"""Shared by the sparse self-supervised tests: a tiny BYOL on synthetic images, its Trainer, the
SyncCP target-encoder probe and the tiny CLI arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from conftest import REPO
from torch import Tensor

from callbacks.pruning import SynchronizedPruning
from datamodules import SyntheticDataModule
from lightning_modules import BYOLModel

STEPS_PER_EPOCH = 4  # 32 images, batch 8
WRN_SMALL = {"backbone": "wrn", "depth": 10, "widen_factor": 1}


def tiny_data() -> SyntheticDataModule:
    return SyntheticDataModule(train_size=32, test_size=16, batch_size=8, views=2, augmentation="contrastive", num_workers=0)


def tiny_byol(**kwargs: Any) -> BYOLModel:
    # the head phase trains on its own supervised loader; at batch 8 it has 4 steps per epoch too
    kwargs.setdefault("head_batch_size", 8)
    return BYOLModel(**WRN_SMALL, proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32, head_epochs=1, **kwargs)


def make_trainer(tmp: Path, callbacks: list, max_epochs: int, **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=max_epochs, callbacks=callbacks, default_root_dir=tmp,
        limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False, **kwargs,
    )


def wrn10_1_forward_flops() -> float:
    """Per-image forward FLOPs of WRN-10-1's convolutions, by hand: 2 * k*k * C_in * C_out * H_out * W_out."""
    convs = [  # (k, C_in, C_out, H_out)
        (3, 3, 16, 32),  # stem
        (3, 16, 16, 32), (3, 16, 16, 32),  # block 1 (identity shortcut)
        (3, 16, 32, 16), (3, 32, 32, 16), (1, 16, 32, 16),  # block 2, stride 2, 1x1 shortcut
        (3, 32, 64, 8), (3, 64, 64, 8), (1, 32, 64, 8),  # block 3
    ]  # fmt: skip
    return float(sum(2 * k * k * cin * cout * h * h for k, cin, cout, h in convs))



class TargetProbe(pl.Callback):
    """Checks the target encoder's masked weights. Placed *before* the pruner it sees them right after
    the momentum update (not yet re-masked); placed after, it checks they are exactly zero — at the
    end of every optimiser step and at the start of the next (what the forward pass uses)."""

    def __init__(self, pruner: SynchronizedPruning, expect_zero: bool) -> None:
        self.pruner = pruner
        self.expect_zero = expect_zero
        self.checked = 0
        self.nonzero_after_ema = 0
        self.ema_before_callbacks = 0

    def _masked_target_values(self, pl_module: BYOLModel) -> list[Tensor]:
        params = dict(pl_module.named_parameters())
        return [params[name].detach()[~mask] for name, mask in self.pruner.target_masks.items()]

    def _check(self, pl_module: BYOLModel, where: str, step: int) -> None:
        for values in self._masked_target_values(pl_module):
            assert (values == 0).all(), f"{where} of step {step}: a masked target weight is not zero"
        online = pl_module.prunable_parameters()
        for name, mask in self.pruner.masks.items():
            assert (online[name].detach()[~mask] == 0).all(), f"{where} of step {step}: {name}"
        self.checked += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.expect_zero and self.pruner.target_masks:
            self._check(pl_module, "start", trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.phase == "contrastive":
            # the module's EMA of this step ran before any callback's on_train_batch_end
            assert pl_module.last_momentum_update_step == trainer.global_step
            self.ema_before_callbacks += 1
        if not self.pruner.target_masks:
            return
        if self.expect_zero:
            self._check(pl_module, "end", trainer.global_step)
        else:
            self.nonzero_after_ema += sum(int((v != 0).sum()) for v in self._masked_target_values(pl_module))



TINY = [
    "--data", str(REPO / "configs/data/synthetic_contrastive.yaml"),
    "--data.init_args.train_size", "64", "--data.init_args.test_size", "16",
    "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0",
    "--model.init_args.backbone", "wrn", "--model.init_args.depth", "10", "--model.init_args.widen_factor", "1",
    "--model.init_args.head_epochs", "1", "--trainer.max_epochs", "3",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--run.wandb_mode", "disabled",
]  # fmt: skip
