"""SyncCP's mask scores and revival bookkeeping: the :class:`ScoresAndRevival` mixin.

Part of :class:`~callbacks.pruning.synccp.SynchronizedPruning`, split out of
:mod:`callbacks.pruning.synccp` by job: the EMA of |w| (``score=ema``), the kept-aside values
of pruned entries (``revival``) and the correction of the module's momentum update for them. It
reads the callback's ``self.score``, ``self.score_momentum``, ``self._ema_scores``, ``self._shadow``,
``self.revival``, ``self.synchronized`` and ``self._target_names``.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from callbacks.pruning import module_api


class ScoresAndRevival:
    """Scores, revival's kept-aside values and the dense momentum correction of :class:`~callbacks.pruning.synccp.SynchronizedPruning`."""

    # ------------------------------------------------------------------------------------------
    # scores
    # ------------------------------------------------------------------------------------------
    def _dense(self, name: str, value: Tensor) -> Tensor:
        """``value`` with the kept-aside values of its pruned entries (revival), else ``value``."""
        shadow = self._shadow.get(name)
        return value if shadow is None else value + shadow.to(value.device)

    @torch.no_grad()
    def _update_ema_scores(self, pl_module: pl.LightningModule) -> None:
        params = {**self.prunable(pl_module), **(self._target_params(pl_module) if self.synchronized else {})}
        params = {name: self._dense(name, p.detach()) for name, p in params.items()}
        fresh = [name for name in params if name not in self._ema_scores]
        for name in fresh:
            self._ema_scores[name] = params[name].detach().abs().clone()
        old = [name for name in params if name not in fresh]
        if old:
            scores = [self._ema_scores[name].to(params[name].device) for name in old]
            torch._foreach_mul_(scores, self.score_momentum)
            torch._foreach_add_(scores, [params[name].detach().abs() for name in old], alpha=1.0 - self.score_momentum)
            for name, s in zip(old, scores):
                self._ema_scores[name] = s

    def _scores(self, weights: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.score == "magnitude":
            return weights
        return {name: self._ema_scores.get(name, w.abs()).to(w.device) for name, w in weights.items()}

    @torch.no_grad()
    def _keep_aside(
        self, params: dict[str, nn.Parameter], masks: dict[str, Tensor], previous: dict[str, Tensor], dense: dict[str, Tensor] | None
    ) -> None:
        """Revival bookkeeping after a mask change: revived entries get their kept-aside values back,
        newly pruned ones are kept aside (their values before the change)."""
        for name, p in params.items():
            before = dense[name] if dense is not None else p.detach()
            mask = masks[name].to(p.device)
            was = previous.get(name)
            revived = mask & ~was.to(p.device) if was is not None else torch.zeros_like(mask)
            p[revived] = before[revived].to(p.dtype)
            self._shadow[name] = torch.where(mask, torch.zeros_like(before), before).to(p.dtype)

    def _momentum_update_saw_zeros(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        """Revival with a momentum encoder, and the module's EMA of this step has run: it averaged the
        zeroed online entries, where the authors' target averages the dense ones."""
        return bool(self.revival and self.synchronized) and module_api.last_momentum_update_step(pl_module) == int(trainer.global_step)

    @torch.no_grad()
    def _dense_momentum_correction(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Revival: add ``(1 - tau) * kept-aside value`` to the target where the online mask is off."""
        if not self._momentum_update_saw_zeros(trainer, pl_module):
            return
        tau = module_api.momentum_tau(pl_module)
        params = self._target_params(pl_module)
        for online, target in self._target_names.items():
            shadow = self._shadow.get(online)
            if shadow is not None:
                params[target].add_(shadow.to(params[target].device), alpha=1.0 - tau)


__all__ = ["ScoresAndRevival"]
