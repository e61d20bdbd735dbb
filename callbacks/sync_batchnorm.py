"""``trainer.sync_batchnorm: true`` on every backend: the Lightning plugin around
:mod:`common.sync_batchnorm` (BatchNorm statistics over the global batch, gloo/CPU included).

``torch.nn.SyncBatchNorm`` works on GPUs only; ``training/lightning_cli.py`` turns Lightning's own flag off and adds
this plugin instead, which Lightning applies when training starts on more than one process.
"""

from __future__ import annotations

from lightning.pytorch.plugins.layer_sync import LayerSync
from torch import nn

from common.sync_batchnorm import from_global_batchnorm, to_global_batchnorm


class GlobalBatchNormSync(LayerSync):
    """Lightning plugin: every BatchNorm becomes a :class:`~common.sync_batchnorm.GlobalBatchNorm`
    while fitting under DDP."""

    def apply(self, model: nn.Module) -> nn.Module:
        return to_global_batchnorm(model)

    def revert(self, model: nn.Module) -> nn.Module:
        return from_global_batchnorm(model)


__all__ = ["GlobalBatchNormSync"]
