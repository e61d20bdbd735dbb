"""The base pruning callback: owns boolean masks keyed by parameter name and keeps them true.

What every pruning schedule shares (DESIGN.md "How data flows", step 3):

* ``self.masks: dict[name, BoolTensor]`` (True = kept), names as in ``pl_module.named_parameters()``
  and therefore as in the checkpoint's ``state_dict`` keys. They live in the callback's
  ``state_dict()``, so a Lightning checkpoint carries them and ``fit(ckpt_path=...)`` resumes them.
  The model itself is never re-parametrised (no ``weight_orig``/``weight_mask``, no hooks): its
  state-dict keys are unchanged and a pruned checkpoint loads into a plain model.
* Before each optimiser step the masked gradients are zeroed; after it the masks are re-applied to
  the weights in place (``w.mul_(mask)`` under ``no_grad``), so pruned weights stay exactly 0 under
  momentum and weight decay. At a mask change the optimiser state of pruned entries (momentum
  buffers, Adam moments) is zeroed as well.
* Masks change only at schedule events of ``trainer.global_step`` (optimiser steps, so gradient
  accumulation is accounted for). A subclass says which event is in force at a step
  (:meth:`event_key`) and its target (:meth:`target_sparsity`); the base changes the masks when the
  event key changes, which is also right after resuming at any step.
* DDP: masks are computed on every rank from the weights (identical on every rank under DDP) with
  deterministic tie-breaking, then rank 0's masks are broadcast and every rank checks that its own
  were equal (a warning names any difference; rank 0's are used).
  At the end of training every rank hashes its masks (SHA-256, :meth:`mask_sha256`), the digests
  are all-gathered and ``run_summary()`` reports them, in rank order, as ``mask_sha256_per_rank``:
  ``run.json`` of a DDP run proves that all ranks ended with identical masks.
* Logging at each mask change: ``sparsity/global`` (measured from the weights), ``sparsity/target``
  and ``sparsity/<param name>`` to every logger, plus a ``pruning/layers`` table when a
  ``WandbLogger`` is attached.
* ``run_summary()`` adds ``pruning``, ``target_sparsity`` and ``achieved_sparsity`` (zeros / size of
  the prunable weights, measured) to ``run.json``.
* Mask dynamics and cost (:mod:`callbacks.pruning.dynamics`): at each mask change
  ``pruning/oscillation`` (fraction of mask entries flipped since the previous change; also per
  tensor, ``pruning/oscillation/<param name>``), ``pruning/newly_pruned`` and ``pruning/revived``;
  and the theoretical training FLOPs of the pruned layers, ``flops/step_{dense,sparse,saving}`` and
  ``flops/cumulative_{dense,sparse,saving}`` (also at every epoch end). Layer output sizes come from
  one forward pass with hooks on the first training batch; a step costs 3x the forward FLOPs of its
  images through the trained encoder (+1x through a momentum encoder, ``target_pairs()``), each
  layer scaled by its mask density. ``run.json`` gets ``final_oscillation``, ``mean_oscillation``,
  ``flops_saving`` (cumulative) and the dense/sparse totals.

Not supported: strategies that re-wrap parameters (FSDP, DeepSpeed) — the masks are keyed by the
LightningModule's own parameter names and applied to those tensors.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from callbacks.pruning.dynamics import (
    TRAIN_FORWARD_MULTIPLIER,
    Branches,
    MaskChange,
    TrainingCostMeter,
    mask_change,
    mask_densities,
    mean_oscillation,
)
from callbacks.pruning.masks import (
    compute_masks,
    layer_sparsities,
    nm_indivisible,
    sparsity_of,
    validate_mask_options,
)
from lightning_modules.base import PRUNING_TARGETS
from common.errors import ConfigError, check_choice
from lightning_modules.plan import TrainingPlan


class PruningCallback(pl.Callback):
    """Owns the masks; subclasses decide *when* and *to what sparsity* (see module docstring).

    Args:
        final_sparsity: target fraction of zeros over the prunable weights, in ``[0, 1)``.
        scope: ``"global"`` (one threshold over all prunable weights) or ``"layerwise"`` (the same
            sparsity in each tensor).
        granularity: ``"unstructured"`` (single weights), ``"nm"`` (N:M along input channels) or
            ``"channel"`` (whole output filters; layer-wise only).
        n, m: keep ``n`` of every ``m`` consecutive input-channel weights (``granularity="nm"``);
            ``final_sparsity = 1 - n/m`` gives the exact N:M pattern.
        norm: 1 or 2, the filter norm ranking channels (``granularity="channel"``).
        nm_indivisible: ``"error"`` or ``"skip"``: what to do with a prunable weight whose input
            channels are not a multiple of ``m`` (e.g. the 3-channel stem conv): stop with an error
            before training, or leave that tensor dense (a warning names it).
        min_layer_density: with global scope, every tensor keeps at least this fraction of its
            weights (its largest |w|), in ``[0, 1 - final_sparsity]``; 0 disables the guard.
        targets: which tensors are pruned, one of
            :data:`lightning_modules.base.PRUNING_TARGETS`: ``encoder`` (default: the encoder's
            Conv2d and Linear weights), ``encoder_conv`` (its Conv2d weights only: Corti et al.'s
            SCL GMP), ``network`` (every Conv2d weight and Linear weight and bias of encoder +
            classifier: Corti et al.'s Sup GMP and One-Shot pool). ``achieved_sparsity`` in
            run.json is always the encoder's Conv2d/Linear weights (what the paper reports);
            ``achieved_sparsity_targets`` is over the pruned tensors.
    """

    #: schedule name written to run.json as ``pruning``
    schedule_name: str = "pruning"

    def __init__(
        self,
        final_sparsity: float,
        *,
        scope: str = "global",
        granularity: str = "unstructured",
        n: int = 2,
        m: int = 4,
        norm: int = 1,
        nm_indivisible: str = "error",
        min_layer_density: float = 0.0,
        targets: str = "encoder",
    ) -> None:
        super().__init__()
        check_choice("targets", targets, PRUNING_TARGETS)
        validate_mask_options(
            sparsity=final_sparsity, scope=scope, granularity=granularity, n=n, m=m, norm=norm,
            min_layer_density=min_layer_density,
        )
        check_choice("nm_indivisible", nm_indivisible, ("error", "skip"))
        self.final_sparsity = float(final_sparsity)
        self.scope = scope
        self.granularity = granularity
        self.n = n
        self.m = m
        self.norm = norm
        self.nm_indivisible = nm_indivisible
        self.min_layer_density = float(min_layer_density)
        self.targets = targets
        #: name -> BoolTensor (True = kept); empty while the model is dense
        self.masks: dict[str, Tensor] = {}
        #: one record per mask change: {"step", "target", "measured"}
        self.events: list[dict[str, float]] = []
        self._last_event: int | None = None
        self._applied_step: int | None = None
        self._bound: list[tuple[nn.Parameter, Tensor]] = []
        #: SHA-256 of every rank's masks at the end of training (:meth:`mask_sha256`), rank order
        self.mask_sha256_per_rank: list[str] | None = None
        #: mask dynamics and training cost (callbacks.pruning.dynamics)
        self.cost = TrainingCostMeter()
        self.last_change: MaskChange | None = None

    # ------------------------------------------------------------------------------------------
    # what subclasses define
    # ------------------------------------------------------------------------------------------
    def event_key(self, trainer: pl.Trainer, step: int) -> int | None:
        """Index of the schedule event in force at optimiser step ``step`` (None: no event yet)."""
        return None

    def target_sparsity(self, trainer: pl.Trainer, step: int) -> float:
        """Target sparsity of the event in force at ``step``."""
        return self.final_sparsity

    # ------------------------------------------------------------------------------------------
    # parameters
    # ------------------------------------------------------------------------------------------
    def prunable(self, pl_module: pl.LightningModule) -> dict[str, nn.Parameter]:
        """The parameters this callback prunes: ``pl_module.prunable_parameters()``, checked.

        With ``granularity="nm"`` and ``nm_indivisible="skip"``, tensors whose input channels are
        not a multiple of ``m`` are left out (dense).
        """
        getter = getattr(pl_module, "prunable_parameters", None)
        cls = type(self).__name__
        if getter is None:
            raise ConfigError(
                f"{cls} needs model.prunable_parameters(); {type(pl_module).__name__} does not define it"
            )
        params = dict(getter(self.targets)) if self.targets != "encoder" else dict(getter())
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
        if self.granularity == "nm" and self.nm_indivisible == "skip":
            skipped = nm_indivisible(params, self.m)
            params = {k: v for k, v in params.items() if k not in skipped}
            if not params:
                raise ConfigError(
                    f"m={self.m} divides the input channels of no prunable weight; nothing is left to prune"
                )
        return params

    def _check_prunable(self, pl_module: pl.LightningModule) -> None:
        """Validate the module against the options, before training (called from ``setup``)."""
        params = self.prunable(pl_module)
        if self.granularity == "nm":
            bad = nm_indivisible(params, self.m)
            if bad:
                w = params[bad[0]]
                channels = w.shape[1] if w.dim() >= 2 else None
                raise ConfigError(
                    f"m={self.m} does not divide the input channels of {bad[0]} ({channels}); choose an m "
                    "that divides them or set nm_indivisible='skip' to leave such weights dense"
                )
            all_params = pl_module.prunable_parameters(self.targets) if self.targets != "encoder" else pl_module.prunable_parameters()
            skipped = nm_indivisible(dict(all_params), self.m)
            if skipped:
                rank_zero_warn(f"N:M pruning leaves {', '.join(skipped)} dense: its input channels are not a multiple of m={self.m}")

    def check_model(self, pl_module: pl.LightningModule) -> None:
        """Raise :class:`ConfigError` when this callback cannot prune ``pl_module`` (e.g. N:M with an
        ``m`` that does not divide a layer's input channels). ``cli.py`` calls it before the Trainer
        exists, so the error is the run's only output; ``setup("fit")`` calls it again."""
        self._check_prunable(pl_module)

    def configure_model(self, pl_module: pl.LightningModule) -> None:
        """Hand the module what this schedule needs from it before any check runs (One-Shot: its
        fine-tune phase). ``cli.py`` calls it before the Trainer's run; ``setup("fit")`` again."""

    def check_plan(self, plan: TrainingPlan, pl_module: pl.LightningModule) -> None:
        """Raise :class:`ConfigError` when this schedule cannot finish within ``plan`` (the run's
        optimiser steps per phase). ``cli.py`` calls it before any training; ``on_train_start`` again."""

    def unfinished_reason(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str | None:
        """Why this run's pruning did not run to its end (``None``: it did); a run with a reason is
        ``incomplete`` in run.json and ``analyze`` refuses it."""
        return None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.configure_model(pl_module)
            self._check_prunable(pl_module)

    # ------------------------------------------------------------------------------------------
    # applying the masks
    # ------------------------------------------------------------------------------------------
    def _bind(self, pl_module: pl.LightningModule) -> None:
        """Move masks to their parameters' devices and cache (param, float mask) pairs."""
        if not self.masks:
            self._bound = []
            return
        params = self.prunable(pl_module)
        if set(params) != set(self.masks):
            missing = sorted(set(params) ^ set(self.masks))
            raise ValueError(f"pruning masks do not match the model's prunable parameters; differing names: {missing[:5]}")
        bound = []
        for name, p in params.items():
            mask = self.masks[name]
            if tuple(mask.shape) != tuple(p.shape):
                raise ValueError(f"pruning mask for {name} has shape {tuple(mask.shape)}, the parameter {tuple(p.shape)}")
            self.masks[name] = mask.to(device=p.device, dtype=torch.bool)
            bound.append((p, self.masks[name].to(p.dtype)))
        self._bound = bound

    @torch.no_grad()
    def apply_masks(self) -> None:
        """``w.mul_(mask)`` for every masked parameter (in place, no autograd)."""
        if self._bound:
            torch._foreach_mul_([p for p, _ in self._bound], [f for _, f in self._bound])

    @torch.no_grad()
    def _mask_gradients(self) -> None:
        pairs = [(p.grad, f) for p, f in self._bound if p.grad is not None]
        if pairs:
            torch._foreach_mul_([g for g, _ in pairs], [f for _, f in pairs])

    @torch.no_grad()
    def _mask_optimizer_state(self, trainer: pl.Trainer) -> None:
        """Zero momentum/moment buffers of pruned entries, so nothing pushes them after a change."""
        for optimizer in trainer.optimizers:
            for p, f in self._bound:
                for value in optimizer.state.get(p, {}).values():
                    if isinstance(value, Tensor) and value.shape == p.shape:
                        value.mul_(f.to(value.dtype))

    # ------------------------------------------------------------------------------------------
    # changing the masks
    # ------------------------------------------------------------------------------------------
    def update_masks(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sparsity: float) -> None:
        """Recompute the masks for ``sparsity`` from the current weights and apply them everywhere."""
        params = self.prunable(pl_module)
        weights = {name: p.detach() for name, p in params.items()}
        previous = self.masks
        new = self.compute_new_masks(trainer, pl_module, weights, sparsity)
        self.masks = self._agree_across_ranks(trainer, new)
        self._bind(pl_module)
        self.apply_masks()
        self._mask_optimizer_state(trainer)
        self.after_mask_change(trainer, pl_module, previous)
        measured = sparsity_of(weights)
        change = mask_change(previous or None, self.masks)
        self.last_change = change
        self.events.append(
            {"step": int(trainer.global_step), "target": float(sparsity), "measured": measured, "oscillation": change.flipped}
        )
        empty = [name for name, mask in self.masks.items() if not bool(mask.any())]
        if empty:
            rank_zero_warn(
                f"pruning to sparsity {sparsity:g} left no weights in {', '.join(empty)}; "
                "set min_layer_density > 0 to keep every layer alive"
            )
        self._log(trainer, weights, sparsity, measured)
        self._log_dynamics(trainer, pl_module, change)

    def after_mask_change(self, trainer: pl.Trainer, pl_module: pl.LightningModule, previous: dict[str, Tensor]) -> None:
        """Called right after new masks were applied (before the sparsity is measured): e.g. give
        revived weights their values back (SyncCP's ``revival``)."""

    def compute_new_masks(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, weights: dict[str, Tensor], sparsity: float
    ) -> dict[str, Tensor]:
        """New masks for ``sparsity`` from ``weights`` (the current masks stay pruned: no revival).

        The one place a subclass changes *how* masks are chosen: other scores (an EMA of |w|) or a
        topology update after the magnitude step (drop and regrow). Must be deterministic given the
        weights, so every DDP rank computes the same masks.
        """
        return compute_masks(
            weights, sparsity, scope=self.scope, granularity=self.granularity, n=self.n, m=self.m,
            norm=self.norm, current_masks=self.masks or None, min_layer_density=self.min_layer_density,
        )

    def _agree_across_ranks(self, trainer: pl.Trainer, masks: dict[str, Tensor]) -> dict[str, Tensor]:
        """Broadcast rank 0's masks and check that this rank computed the same ones."""
        if trainer.world_size <= 1:
            return masks
        local = {name: mask.cpu() for name, mask in masks.items()}
        reference: dict[str, Tensor] = trainer.strategy.broadcast(local, src=0)
        differing = [name for name in local if not torch.equal(local[name], reference[name])]
        if differing:
            warnings.warn(
                f"rank {trainer.global_rank} computed different masks for {', '.join(differing[:3])}; "
                "using rank 0's",
                RuntimeWarning,
                stacklevel=2,
            )
        return {name: reference[name].to(masks[name].device) for name in masks}

    def _maybe_update(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = int(trainer.global_step)
        key = self.event_key(trainer, step)
        if key is not None and key != self._last_event:
            self.update_masks(trainer, pl_module, self.target_sparsity(trainer, step))
            self._last_event = key

    # ------------------------------------------------------------------------------------------
    # mask dynamics and training cost
    # ------------------------------------------------------------------------------------------
    def target_densities(self) -> dict[str, float]:
        """Kept fraction of each prunable layer's copy in a momentum encoder, keyed by the *online*
        parameter name (missing = dense). Plain schedules leave the momentum encoder dense."""
        return {}

    def branch_costs(self, pl_module: pl.LightningModule) -> Branches:
        """``(forward passes per image, layer densities)`` of every copy of the prunable layers that a
        training image goes through: the trained encoder (3 passes: forward and two backward) and,
        when the module has a momentum encoder (``target_pairs()``), its forward pass."""
        costs: Branches = [(TRAIN_FORWARD_MULTIPLIER, mask_densities(self.masks))]
        if callable(getattr(pl_module, "target_pairs", None)):
            costs.append((1.0, self.target_densities()))
        return costs

    def _log_dynamics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, change: MaskChange, prefix: str = "pruning/"
    ) -> None:
        metrics = {
            f"{prefix}oscillation": change.flipped,
            f"{prefix}newly_pruned": change.newly_pruned,
            f"{prefix}revived": change.revived,
        }
        metrics.update({f"{prefix}oscillation/{name}": value for name, value in change.per_layer.items()})
        if prefix == "pruning/":
            metrics.update(self.cost.metrics(self.branch_costs(pl_module), getattr(trainer, "world_size", 1)))
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=int(trainer.global_step))

    def dynamics_summary(self) -> dict[str, Any]:
        """run.json fields: oscillation at the last mask change and on average over the changes after the
        first (the first one is measured against the dense network), cumulative FLOPs saving."""
        oscillations = [e["oscillation"] for e in self.events if "oscillation" in e]
        return {
            "final_oscillation": oscillations[-1] if oscillations else 0.0,
            "mean_oscillation": mean_oscillation(oscillations),
            "flops_saving": self.cost.total.saving,
            "train_flops_dense": self.cost.total.dense,
            "train_flops_sparse": self.cost.total.sparse,
        }

    # ------------------------------------------------------------------------------------------
    # logging and summary
    # ------------------------------------------------------------------------------------------
    def _log(self, trainer: pl.Trainer, weights: dict[str, Tensor], target: float, measured: float) -> None:
        per_layer = layer_sparsities(weights)
        metrics = {"sparsity/global": measured, "sparsity/target": target}
        metrics.update({f"sparsity/{name}": value for name, value in per_layer.items()})
        step = int(trainer.global_step)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
            if isinstance(logger, WandbLogger):
                rows = [[step, name, weights[name].numel(), target, value] for name, value in per_layer.items()]
                logger.log_table(
                    key="pruning/layers", columns=["step", "layer", "numel", "target", "sparsity"], data=rows, step=None
                )

    def achieved_sparsity(self, pl_module: pl.LightningModule) -> float:
        """Zeros / size over all of ``pl_module.prunable_parameters()``, measured from the weights."""
        return sparsity_of({name: p.detach() for name, p in pl_module.prunable_parameters().items()})

    def mask_sha256(self) -> str:
        """SHA-256 (hex) of the masks: for each name in sorted order, the name, the shape and the
        mask's bytes (one byte per entry, True = kept). Equal digests = identical masks."""
        digest = hashlib.sha256()
        for name in sorted(self.masks):
            mask = self.masks[name].detach().to(device="cpu", dtype=torch.bool).contiguous()
            digest.update(f"{name}:{tuple(mask.shape)}:".encode())
            digest.update(mask.numpy().tobytes())
        return digest.hexdigest()

    def gather_mask_sha256(self, trainer: pl.Trainer) -> list[str]:
        """Every rank's :meth:`mask_sha256`, in rank order (all-gathered; a collective call)."""
        local = self.mask_sha256()
        if trainer.world_size <= 1:
            return [local]
        as_tensor = torch.tensor(list(bytes.fromhex(local)), dtype=torch.long, device=trainer.strategy.root_device)
        gathered = trainer.strategy.all_gather(as_tensor).reshape(-1, as_tensor.numel()).cpu()
        return [bytes(row.tolist()).hex() for row in gathered]

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """``pruning``, ``target_sparsity``, ``achieved_sparsity`` (+ options, the event table and
        :meth:`dynamics_summary`)."""
        return {
            "pruning": self.schedule_name,
            "target_sparsity": self.final_sparsity,
            "achieved_sparsity": self.achieved_sparsity(pl_module),
            "achieved_sparsity_targets": sparsity_of({n: p.detach() for n, p in self.prunable(pl_module).items()}),
            "pruning_targets": self.targets,
            "pruning_scope": self.scope,
            "pruning_granularity": self.granularity,
            "mask_sha256_per_rank": self.mask_sha256_per_rank,
            "pruning_events": [[e["step"], e["target"], e["measured"]] for e in self.events],
            **self.dynamics_summary(),
        }

    # ------------------------------------------------------------------------------------------
    # Lightning hooks
    # ------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after any checkpoint restore: bind restored masks, re-apply, and catch an event due now
        self._bind(pl_module)
        self.apply_masks()
        self._applied_step = int(trainer.global_step)
        self._maybe_update(trainer, pl_module)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.cost.layer_flops is None and callable(getattr(pl_module, "encode", None)):
            # once per fit (also after a resume): layer output sizes from one forward pass
            self.cost.measure(pl_module, list(self.prunable(pl_module)), pl_module.encode, batch)
        self.cost.add_batch(batch, self.branch_costs(pl_module), head_phase=_phase(pl_module) == "head")

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self._mask_gradients()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # every rank hashes its masks; run.json's mask_sha256_per_rank proves they are identical
        self.mask_sha256_per_rank = self.gather_mask_sha256(trainer)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = int(trainer.global_step)
        if step == self._applied_step:
            return  # gradient accumulation: no optimiser step since the last call
        self._applied_step = step
        self.apply_masks()
        self.cost.end_step(trainer.world_size)
        self._maybe_update(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = self.cost.metrics()
        if metrics:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=int(trainer.global_step))

    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": {name: mask.detach().cpu().clone() for name, mask in self.masks.items()},
            "last_event": self._last_event,
            "events": [dict(e) for e in self.events],
            "final_sparsity": self.final_sparsity,
            "flops": self.cost.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.masks = {name: mask.to(torch.bool) for name, mask in state_dict.get("masks", {}).items()}
        self._last_event = state_dict.get("last_event")
        self.events = [dict(e) for e in state_dict.get("events", [])]
        self._bound = []
        self._applied_step = None
        self.cost.load_state_dict(state_dict.get("flops", {}))


def _phase(pl_module: pl.LightningModule) -> str | None:
    try:
        return str(pl_module.phase)
    except (AttributeError, NotImplementedError, RuntimeError):
        return None
