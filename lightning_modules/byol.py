"""BYOL (Grill et al. 2020): an online network predicts a momentum (target) network's projections.

Two branches on two augmented views:

* **online** — ``encoder`` (the module protocol's encoder: what the metric callbacks read and what
  ``prunable_parameters()`` names) -> ``projector`` -> ``predictor``; trained by SGD.
* **target** — ``target_encoder`` -> ``target_projector``: same architecture, no gradients; after
  every optimiser step each target parameter becomes an exponential moving average of the online
  parameter *of the same name*: ``t <- tau * t + (1 - tau) * o`` for every pair of
  :meth:`BYOLModel.target_pairs` (``encoder.X`` <-> ``target_encoder.X``, ``projector.X`` <->
  ``target_projector.X``). The target's BatchNorm running statistics come from its own forward
  passes (it runs in train mode, as in the paper). Target weights are ordinary module state, so a
  Lightning checkpoint restores them and ``tau`` (a function of ``trainer.global_step``).

``tau`` follows the paper's cosine schedule over the pretraining phase of ``K`` optimiser steps
(``K = trainer.estimated_stepping_batches * contrastive_epochs / max_epochs``, i.e. the steps
before the linear-head phase): ``tau_k = 1 - (1 - base_tau) * (cos(pi k / K) + 1) / 2`` — ``base_tau``
at step 0, 1 at the end of pretraining.

Loss: ``2 - 2 cos(q_online(v1), z_target(v2))`` + the same with the views swapped (symmetrised),
averaged over the batch; logged as ``train/loss``. No negatives, so nothing is gathered across
ranks under DDP (each rank's BatchNorm sees its own batch).

**Order inside one optimiser step** (pruning callbacks rely on it, see
:class:`callbacks.pruning.SynchronizedPruning`)::

    optimizer.step()                 # online weights move (masked gradients)
    BYOLModel.optimizer_step  ->  momentum_update()   # EMA by name, right after the step
    callbacks' on_train_batch_end    # pruning: re-apply online masks, then target masks
    next training_step               # both branches see w * mask

The EMA lives in :meth:`BYOLModel.optimizer_step` (after ``super().optimizer_step``) rather than in
``on_train_batch_end`` because Lightning calls the callbacks' ``on_train_batch_end`` *before* the
module's: a pruning callback could then not re-apply the target masks after the momentum update of
the same step.

Then the same head phase as :class:`~lightning_modules.supcon.SupConModel` (frozen encoder, linear
classifier for the last ``head_epochs``, reported ``test/acc``) and an online probe ``probe/*``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from common.errors import check_range
from common.schedules import cosine_factor
from lightning_modules.phased import PhasedRepresentationModule


class MLPHead(nn.Sequential):
    """Linear(in, hidden)-BatchNorm1d-ReLU-Linear(hidden, out): BYOL's projector and predictor."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
        )


def byol_loss(online_prediction: Tensor, target_projection: Tensor) -> Tensor:
    """``mean_i (2 - 2 cos(p_i, z_i))`` over ``[B, D]`` rows; ``target_projection`` is detached."""
    p = F.normalize(online_prediction, dim=1)
    z = F.normalize(target_projection.detach(), dim=1)
    return (2.0 - 2.0 * (p * z).sum(dim=1)).mean()


def momentum_tau(step: int, total_steps: int, base_tau: float) -> float:
    """BYOL's cosine EMA coefficient at optimiser step ``step`` of ``total_steps``: base_tau -> 1."""
    if total_steps <= 0:
        return 1.0
    return 1.0 - (1.0 - base_tau) * cosine_factor(step / total_steps)


class BYOLModel(PhasedRepresentationModule):
    """BYOL online/target networks, then a linear classifier on the frozen online encoder.

    Args:
        backbone, num_classes, in_channels, depth, widen_factor, channels_last: the encoder
            (see :class:`~lightning_modules.base.RepresentationModule`).
        base_tau: EMA coefficient at step 0, in ``[0, 1]`` (paper 0.996 for ImageNet; 0.99 for
            short CIFAR runs as in solo-learn).
        lr, momentum, weight_decay: SGD of encoder + projector + predictor (cosine over the
            pretraining phase).
        proj_hidden_dim, proj_dim: projector sizes; pred_hidden_dim: predictor hidden size.
        head_epochs, head_lr, head_momentum, head_weight_decay, head_batch_size, head_augmentation,
            head_milestones, head_gamma, min_lr_factor: the linear-head phase and the lr floors (see
            :class:`~lightning_modules.supcon.SupConModel`).
        probe_lr: online probe SGD lr.
    """

    method = "byol"

    def __init__(
        self,
        backbone: str = "wrn16_2",
        num_classes: int = 10,
        base_tau: float = 0.99,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        proj_hidden_dim: int = 512,
        proj_dim: int = 128,
        pred_hidden_dim: int = 512,
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
        in_channels: int = 3,
        depth: int = 16,
        widen_factor: int = 2,
        channels_last: bool = True,
    ) -> None:
        check_range("model.base_tau", base_tau, low=0.0, high=1.0)
        for name, value in (("proj_hidden_dim", proj_hidden_dim), ("proj_dim", proj_dim), ("pred_hidden_dim", pred_hidden_dim)):
            check_range(f"model.{name}", value, low=1)
        super().__init__(
            backbone, num_classes, in_channels, depth, widen_factor, channels_last, lr=lr, momentum=momentum,
            weight_decay=weight_decay, head_epochs=head_epochs, head_lr=head_lr, head_momentum=head_momentum,
            head_weight_decay=head_weight_decay, head_batch_size=head_batch_size, head_augmentation=head_augmentation,
            head_milestones=head_milestones, head_gamma=head_gamma, min_lr_factor=min_lr_factor, probe_lr=probe_lr,
        )  # fmt: skip
        #: optimiser step of the latest momentum update (for ordering checks; not checkpointed)
        self.last_momentum_update_step: int | None = None
        self.tau: float = base_tau

    @override
    def build_heads(self) -> None:
        hp = self.hparams
        self.projector = MLPHead(self.feature_dim, hp.proj_hidden_dim, hp.proj_dim)
        self.predictor = MLPHead(hp.proj_dim, hp.pred_hidden_dim, hp.proj_dim)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in self.target_parameters():
            p.requires_grad_(False)

    # -- target network ---------------------------------------------------------------------------
    def target_parameters(self) -> list[nn.Parameter]:
        return list(self.target_encoder.parameters()) + list(self.target_projector.parameters())

    def target_pairs(self) -> dict[str, nn.Parameter]:
        """``{online parameter name: target parameter}`` for every EMA pair, matched by *name*.

        ``encoder.<x>`` pairs with ``target_encoder.<x>`` and ``projector.<x>`` with
        ``target_projector.<x>`` (names as in ``named_parameters()``, i.e. state-dict keys). A
        synchronized pruner uses the entries whose keys are in ``prunable_parameters()``.
        """
        target = dict(self.named_parameters())
        pairs: dict[str, nn.Parameter] = {}
        for prefix in ("encoder", "projector"):
            for name, _ in getattr(self, prefix).named_parameters():
                pairs[f"{prefix}.{name}"] = target[f"target_{prefix}.{name}"]
        return pairs

    def tau_at(self, step: int) -> float:
        """EMA coefficient used by the momentum update that follows optimiser step ``step`` (1-based)."""
        return momentum_tau(step - 1, self.pretrain_end_step(), self.hparams.base_tau)

    @torch.no_grad()
    def momentum_update(self, tau: float) -> None:
        """``target <- tau * target + (1 - tau) * online`` for every pair of :meth:`target_pairs`."""
        online = dict(self.named_parameters())
        pairs = self.target_pairs()
        targets = list(pairs.values())
        sources = [online[name].detach() for name in pairs]
        torch._foreach_mul_(targets, tau)
        torch._foreach_add_(targets, sources, alpha=1.0 - tau)

    @override
    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.phase != "contrastive":
            return  # encoder frozen or fine-tuned: the target network is no longer used
        step = int(self.trainer.global_step) + 1  # global_step is incremented after this hook
        self.tau = self.tau_at(step)
        self.momentum_update(self.tau)
        self.last_momentum_update_step = step

    # -- the method ------------------------------------------------------------------------------
    @override
    def pretrain_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters()) + list(self.projector.parameters()) + list(self.predictor.parameters())

    @override
    def frozen_in_head_phase(self) -> list[nn.Module]:
        return [self.encoder, self.projector, self.predictor, self.target_encoder, self.target_projector]

    def target_encode(self, x: Tensor) -> Tensor:
        return self.target_encoder(self._prep(x))

    @override
    def pretrain_step(self, batch: dict[str, Tensor], batch_idx: int) -> tuple[Tensor, Tensor]:
        views: list[Tensor] = batch["views"]
        v1, v2 = views[0], views[1]
        batch_size = v1.shape[0]
        h = self.encode(torch.cat([v1, v2], dim=0))
        q = self.predictor(self.projector(h))
        with torch.no_grad():
            z = self.target_projector(self.target_encode(torch.cat([v1, v2], dim=0)))
        q1, q2 = q[:batch_size], q[batch_size:]
        z1, z2 = z[:batch_size], z[batch_size:]
        loss = byol_loss(q1, z2) + byol_loss(q2, z1)
        self.log_train("train/loss", loss, batch)
        self.log_train("train/tau", self.tau, batch, on_epoch=False, sync_dist=False)
        return loss, h[:batch_size]


__all__ = ["BYOLModel", "MLPHead", "byol_loss", "momentum_tau"]
