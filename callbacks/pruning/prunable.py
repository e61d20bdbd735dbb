"""Which parameters a pruning callback prunes, checked: the :class:`PrunableParameters` mixin.

Part of :class:`~callbacks.pruning.base.PruningCallback` (its ``prunable`` and ``check_model``),
split out of :mod:`callbacks.pruning.base` by job. It reads the callback's ``self.options``
(:class:`~callbacks.pruning.options.MaskOptions`); the module is asked through
:mod:`callbacks.pruning.module_api`.
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from callbacks.pruning import module_api
from common.errors import ConfigError
from sparsity.structured import nm_indivisible


class PrunableParameters:
    """The parameters :class:`~callbacks.pruning.base.PruningCallback` prunes, and the checks on them."""

    # ------------------------------------------------------------------------------------------
    # parameters
    # ------------------------------------------------------------------------------------------
    def prunable(self, pl_module: pl.LightningModule) -> dict[str, nn.Parameter]:
        """The parameters this callback prunes: ``pl_module.prunable_parameters()``, checked.

        With ``granularity="nm"`` and ``nm_indivisible="skip"``, tensors whose input channels are
        not a multiple of ``m`` are left out (dense).
        """
        cls = type(self).__name__
        params = module_api.prunable_parameters(pl_module, self.options.targets, caller=cls)
        if not params:
            raise ConfigError(
                f"{type(pl_module).__name__}.prunable_parameters() is empty; {cls} needs at least one "
                "Conv2d/Linear weight to prune"
            )
        named = dict(pl_module.named_parameters())
        for name, p in params.items():
            if named.get(name) is not p:
                raise ValueError(
                    f"prunable_parameters() names {name!r}, which is not that parameter's name in "
                    "named_parameters(); names must match the state-dict keys"
                )
        m = self.options.m
        if self.options.granularity == "nm" and self.options.nm_indivisible == "skip":
            skipped = nm_indivisible(params, m)
            params = {k: v for k, v in params.items() if k not in skipped}
            if not params:
                raise ConfigError(f"m={m} divides the input channels of no prunable weight; nothing is left to prune")
        return params

    def check_model(self, pl_module: pl.LightningModule) -> None:
        """Raise :class:`ConfigError` when this callback cannot prune ``pl_module`` (e.g. N:M with an
        ``m`` that does not divide a layer's input channels). ``training/lightning_cli.py`` calls it before the Trainer
        exists, so the error is the run's only output; ``setup("fit")`` calls it again."""
        params = self.prunable(pl_module)
        if self.options.granularity != "nm":
            return
        m = self.options.m
        bad = nm_indivisible(params, m)
        if bad:
            w = params[bad[0]]
            channels = w.shape[1] if w.dim() >= 2 else None
            raise ConfigError(
                f"m={m} does not divide the input channels of {bad[0]} ({channels}); choose an m "
                "that divides them or set nm_indivisible='skip' to leave such weights dense"
            )
        everything = module_api.prunable_parameters(pl_module, self.options.targets, caller=type(self).__name__)
        skipped = nm_indivisible(everything, m)
        if skipped:
            rank_zero_warn(f"N:M pruning leaves {', '.join(skipped)} dense: its input channels are not a multiple of m={m}")


__all__ = ["PrunableParameters"]
