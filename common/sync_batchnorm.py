"""BatchNorm over the global batch of all DDP ranks, on every backend (gloo/CPU included).

The paper trains SCL at batch 1024 on one device; on N devices at 1024/N each, plain BatchNorm
normalises with per-device statistics, so the network is not the one a single device trains even
though the loss gathers all features. ``torch.nn.SyncBatchNorm`` fixes that on GPUs only (DDP
refuses it on CPU). :class:`GlobalBatchNorm` does the same with one differentiable ``all_reduce`` of
the per-channel sums, sums of squares and counts (in float64), so any backend works and the tests can
check it with CPU processes. :func:`to_global_batchnorm` swaps every BatchNorm of a model for it and
:func:`from_global_batchnorm` swaps them back; the Lightning ``LayerSync`` plugin that calls them when
training starts on more than one process is :class:`callbacks.sync_batchnorm.GlobalBatchNormSync`
(``training/lightning_cli.py`` uses it for ``trainer.sync_batchnorm: true``). This module imports no Lightning.

Single process, or eval mode: exactly ``F.batch_norm`` (the module is a plain BatchNorm then).
Running statistics are updated like ``nn.BatchNorm`` on the global batch: ``running_var`` with the
unbiased variance ``var * n / (n - 1)``, ``n`` the global number of values per channel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from common.distributed import all_reduce_sum_with_grad, rank_and_world


def _distributed() -> bool:
    return rank_and_world()[1] > 1


class GlobalBatchNorm(_BatchNorm):
    """A BatchNorm (any number of spatial dims) whose training statistics span all ranks."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if not (self.training and _distributed()):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        x = input.double()
        local = torch.cat([x.sum(dims), (x * x).sum(dims), x.new_full((1,), x.numel() / x.shape[1])])
        total = all_reduce_sum_with_grad(local)
        channels = input.shape[1]
        count = total[-1].detach()
        mean = total[:channels] / count
        var = (total[channels : 2 * channels] / count - mean * mean).clamp(min=0.0)
        shape = [1, channels] + [1] * (input.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        y = y.to(input.dtype)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
        if self.track_running_stats and tracked is not None and running_mean is not None and running_var is not None:
            with torch.no_grad():
                tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(tracked)
                unbiased = var.detach() * count / max(float(count) - 1.0, 1.0)
                running_mean.mul_(1 - factor).add_(mean.detach().to(running_mean.dtype), alpha=factor)
                running_var.mul_(1 - factor).add_(unbiased.to(running_var.dtype), alpha=factor)
        return y


def _convert(module: nn.Module, make: Any) -> nn.Module:
    out = make(module) if isinstance(module, _BatchNorm) else module
    for name, child in module.named_children():
        out.add_module(name, _convert(child, make))
    return out


def _swap(bn: _BatchNorm, cls: type[_BatchNorm]) -> _BatchNorm:
    """A ``cls`` sharing ``bn``'s parameters and buffers (the optimiser's tensors stay the same)."""
    new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        new.weight, new.bias = bn.weight, bn.bias
    if bn.track_running_stats:
        new.running_mean, new.running_var, new.num_batches_tracked = bn.running_mean, bn.running_var, bn.num_batches_tracked
    new.train(bn.training)
    object.__setattr__(new, "_original_class", type(bn))  # a plain attribute, not a submodule
    return new


def to_global_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm a :class:`GlobalBatchNorm` sharing its parameters and buffers."""
    return _convert(model, lambda bn: bn if isinstance(bn, GlobalBatchNorm) else _swap(bn, GlobalBatchNorm))


def from_global_batchnorm(model: nn.Module) -> nn.Module:
    """Undo :func:`to_global_batchnorm`: every :class:`GlobalBatchNorm` back to its original class."""

    def back(bn: _BatchNorm) -> _BatchNorm:
        original = getattr(bn, "_original_class", None)
        return _swap(bn, original) if isinstance(bn, GlobalBatchNorm) and original is not None else bn

    return _convert(model, back)


__all__ = ["GlobalBatchNorm", "from_global_batchnorm", "to_global_batchnorm"]
