"""SDCLR (Jiang et al. 2021, "Self-Damaging Contrastive Learning"): a dense and a pruned branch of one
network contrast each other (REFERENCE §5 baseline a).

* **One weight set**: ``encoder`` (the module protocol's encoder; evaluation, probes and metric
  callbacks use it dense) and one ``projector`` shared by both branches.
* **Pruned branch**: the same encoder computed with ``w * mask`` for every prunable weight
  (``prunable_parameters()``: encoder Conv2d/Linear) and its **own BatchNorm** layers
  (``pruned_bn``: parameters and running statistics separate from the dense branch), through
  :func:`torch.func.functional_call` — the module's weights are never modified.
* **Mask**: recomputed at the start of every pretraining epoch by global magnitude
  (:func:`sparsity.masks.global_magnitude_masks`, exact count, deterministic ties, so every
  DDP rank computes the same mask) at ``prune_percent`` (default 0.9, the paper's CIFAR setting).
* **Loss**: NT-Xent (:func:`~lightning_modules.losses.supcon_loss` without labels, temperature
  ``T``) between the dense branch's features of view 1 and the pruned branch's features of view 2.
  Each branch's gradient is taken with the other branch's features detached:
  ``NT-Xent(z_dense, sg(z_pruned)) + NT-Xent(sg(z_dense), z_pruned)`` — the two backward passes of
  the authors' code in one; ``train/loss`` logs one of the two (equal) values.

Mask dynamics and cost, logged like the pruning callbacks do (:mod:`sparsity.dynamics`):
``sparsity/pruned_branch`` and ``pruning/oscillation`` (+ per tensor, ``pruning/newly_pruned``,
``pruning/revived``) at each mask recomputation, and ``flops/*``: a step costs 3x the forward FLOPs
of view 1 through the dense layers plus 3x those of view 2 through the pruned ones, against 3x both
views dense (SimCLR). run.json adds ``pruned_branch_sparsity`` (measured on ``w * mask``),
``final_oscillation``, ``mean_oscillation`` and ``flops_saving``.

Then the same head phase as :class:`~lightning_modules.supcon.SupConModel` (frozen dense encoder,
linear classifier, reported ``test/acc``) and the online probe ``probe/*``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from typing_extensions import override

from common.errors import check_range
from lightning_modules.losses import supcon_loss
from lightning_modules.phased import PhasedRepresentationModule
from lightning_modules.supcon import ProjectionHead
from sparsity.dynamics import TRAIN_FORWARD_MULTIPLIER, TrainingCostMeter, mask_densities
from sparsity.masks import global_magnitude_masks, layer_sparsities, sparsity_of
from sparsity.tracker import MaskTracker

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
#: checkpoint keys of the pruned branch's state under ``checkpoint["sdclr"]`` (MaskTracker field -> key)
SDCLR_STATE_KEYS = {"masks": "masks", "last_event": "mask_epoch", "events": "mask_events", "flops": "flops"}


class SDCLRModel(PhasedRepresentationModule):
    """SDCLR: dense vs pruned branch of one encoder, NT-Xent, then a linear classifier.

    Args:
        prune_percent: sparsity of the pruned branch, in ``[0, 1)`` (paper: 0.9 on CIFAR).
        temperature: NT-Xent temperature (> 0).
        lr, momentum, weight_decay: SGD of encoder + projector + pruned-branch BatchNorm (cosine
            over the pretraining phase).
        proj_hidden_dim, proj_dim: projection head Linear(D, hidden)-ReLU-Linear(hidden, out).
        head_epochs, head_lr, head_momentum, head_weight_decay, probe_lr: as in SupConModel.
        backbone, num_classes, in_channels, depth, widen_factor, channels_last: the encoder.
    """

    method = "sdclr"
    cuda_graph_safe = False  # the pruned branch calls the encoder through functional_call with masked weights

    def __init__(
        self,
        backbone: str = "wrn16_2",
        num_classes: int = 10,
        prune_percent: float = 0.9,
        temperature: float = 0.5,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
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
        check_range("model.prune_percent", prune_percent, low=0.0, high=1.0, high_inclusive=False)
        check_range("model.temperature", temperature, low=0, low_inclusive=False)
        check_range("model.proj_hidden_dim", proj_hidden_dim, low=1)
        check_range("model.proj_dim", proj_dim, low=1)
        super().__init__(
            backbone, num_classes, in_channels, depth, widen_factor, channels_last, lr=lr, momentum=momentum,
            weight_decay=weight_decay, head_epochs=head_epochs, head_lr=head_lr, head_momentum=head_momentum,
            head_weight_decay=head_weight_decay, head_batch_size=head_batch_size, head_augmentation=head_augmentation,
            head_milestones=head_milestones, head_gamma=head_gamma, min_lr_factor=min_lr_factor, probe_lr=probe_lr,
        )  # fmt: skip
        #: the pruned branch's masks, their recomputations and the training cost; ``last_event`` is
        #: the epoch of the current masks. The masks are never applied in place (the branch computes
        #: with ``w * mask``), so the tracker binds no parameters.
        self.tracker = MaskTracker()

    @property
    def pruned_masks(self) -> dict[str, Tensor]:
        """Prunable parameter name -> BoolTensor (True = kept) of the pruned branch."""
        return self.tracker.masks

    @property
    def mask_events(self) -> list[dict[str, Any]]:
        """One record per mask recomputation: ``{"epoch", "step", "sparsity", "oscillation"}``."""
        return self.tracker.events

    @property
    def cost(self) -> TrainingCostMeter:
        """The theoretical training FLOPs (dense view 1, pruned view 2)."""
        return self.tracker.cost

    @override
    def build_heads(self) -> None:
        self.projector = ProjectionHead(self.feature_dim, self.hparams.proj_hidden_dim, self.hparams.proj_dim)
        #: the pruned branch's own BatchNorm layers, keyed by encoder module path ("." -> "__")
        self.pruned_bn = nn.ModuleDict(
            {path.replace(".", "__"): copy.deepcopy(m) for path, m in self.encoder.named_modules() if isinstance(m, _BN)}
        )

    # -- the pruned branch -----------------------------------------------------------------------
    def update_pruned_masks(self) -> None:
        """Global magnitude masks of the current weights at ``prune_percent`` (recomputed from scratch)."""
        weights = {name: p.detach() for name, p in self.prunable_parameters().items()}
        previous = self.pruned_masks
        self.tracker.masks = global_magnitude_masks(weights, self.hparams.prune_percent)
        sparsity = sparsity_of(self.pruned_masks)
        step = int(self.trainer.global_step) if self._trainer is not None else 0
        change = self.tracker.record(previous, epoch=int(self.current_epoch), step=step, sparsity=sparsity)
        if self._trainer is None:
            return
        metrics = {
            "sparsity/pruned_branch": sparsity,
            "pruning/oscillation": change.flipped,
            "pruning/newly_pruned": change.newly_pruned,
            "pruning/revived": change.revived,
        }
        metrics.update({f"sparsity/pruned_branch/{k}": v for k, v in layer_sparsities(self.pruned_masks).items()})
        metrics.update({f"pruning/oscillation/{k}": v for k, v in change.per_layer.items()})
        metrics.update(self.cost.metrics(self.branch_costs(), self.trainer.world_size))
        for logger in self.trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def pruned_weights(self) -> dict[str, Tensor]:
        """``w * mask`` of every prunable weight (differentiable in ``w``), keyed by parameter name."""
        params = self.prunable_parameters()
        return {name: params[name] * mask.to(device=params[name].device, dtype=params[name].dtype)
                for name, mask in self.pruned_masks.items()}  # fmt: skip

    def pruned_encode(self, x: Tensor) -> Tensor:
        """The pruned branch: the encoder with ``w * mask`` weights and its own BatchNorm layers."""
        overrides: dict[str, Tensor] = {name.removeprefix("encoder."): w for name, w in self.pruned_weights().items()}
        for key, bn in self.pruned_bn.items():
            path = key.replace("__", ".")
            for name, t in list(bn.named_parameters()) + list(bn.named_buffers()):
                overrides[f"{path}.{name}"] = t
        # BatchNorm running statistics update in place on the tensors passed in: pruned_bn's own
        if self.pruned_bn:
            modes = {path: m.training for path, m in self.encoder.named_modules() if isinstance(m, _BN)}
            if any(modes[k.replace("__", ".")] != bn.training for k, bn in self.pruned_bn.items()):
                raise RuntimeError("pruned_bn and the encoder's BatchNorm layers must be in the same mode")
        return functional_call(self.encoder, overrides, (self._prep(x),))

    def branch_costs(self) -> list[tuple[float, dict[str, float]]]:
        """Per image of a two-view batch: half the images (view 1) take 3 dense passes, the other
        half (view 2) 3 passes at the mask's densities."""
        half = TRAIN_FORWARD_MULTIPLIER / 2
        return [(half, {}), (half, mask_densities(self.pruned_masks))]

    def pruned_branch_sparsity(self) -> float:
        """Zeros / size of ``w * mask`` over the prunable weights (measured)."""
        if not self.pruned_masks:
            return 0.0
        return sparsity_of({name: w.detach() for name, w in self.pruned_weights().items()})

    # -- the method ------------------------------------------------------------------------------
    @override
    def pretrain_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters()) + list(self.projector.parameters()) + list(self.pruned_bn.parameters())

    @override
    def frozen_in_head_phase(self) -> list[nn.Module]:
        return [self.encoder, self.projector, self.pruned_bn]

    @override
    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.phase == "contrastive" and self.tracker.last_event != self.current_epoch:
            self.update_pruned_masks()
            self.tracker.last_event = int(self.current_epoch)

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)
        if self.cost.layer_flops is None:  # layer output sizes from one forward pass, once per fit
            self.cost.measure(self, list(self.prunable_parameters()), self.encode, batch)
        self.cost.add_batch(batch, self.branch_costs(), head_phase=self.phase == "head")

    @override
    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.cost.end_step(self.trainer.world_size)

    @override
    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        for logger in self.trainer.loggers:
            metrics = self.cost.metrics()
            if metrics:
                logger.log_metrics(metrics, step=int(self.trainer.global_step))

    @override
    def pretrain_step(self, batch: dict[str, Tensor], batch_idx: int) -> tuple[Tensor, Tensor]:
        views: list[Tensor] = batch["views"]
        h_dense = self.encode(views[0])
        h_pruned = self.pruned_encode(views[1])
        z_dense = F.normalize(self.projector(h_dense), dim=1)
        z_pruned = F.normalize(self.projector(h_pruned), dim=1)
        T = self.hparams.temperature
        loss_dense = supcon_loss(torch.stack([z_dense, z_pruned.detach()], dim=1), None, temperature=T)
        loss_pruned = supcon_loss(torch.stack([z_dense.detach(), z_pruned], dim=1), None, temperature=T)
        self.log_train("train/loss", loss_dense, batch)
        return loss_dense + loss_pruned, h_dense

    # -- checkpoint and summary ------------------------------------------------------------------
    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sdclr"] = self.tracker.state_dict(SDCLR_STATE_KEYS)

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.tracker.load_state_dict(checkpoint.get("sdclr", {}), SDCLR_STATE_KEYS)

    @override
    def run_summary(self, trainer: pl.Trainer | None, pl_module: pl.LightningModule | None) -> dict[str, Any]:
        out = super().run_summary(trainer, pl_module)
        weights = {name: p.detach() for name, p in self.prunable_parameters().items()}
        out.update(
            {
                "pruning": "sdclr",
                "target_sparsity": 0.0,  # the evaluated (dense) encoder
                "achieved_sparsity": sparsity_of(weights),
                "pruned_branch_target_sparsity": self.hparams.prune_percent,
                "pruned_branch_sparsity": self.pruned_branch_sparsity(),
                **self.tracker.dynamics_summary(),  # final/mean oscillation, flops_saving, FLOPs totals
            }
        )
        return out


__all__ = ["SDCLRModel"]
