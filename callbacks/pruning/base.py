"""The base pruning callback: owns boolean masks keyed by parameter name and keeps them true.

What every pruning schedule shares (DESIGN.md "How data flows", step 3):

* The masks live in a :class:`~sparsity.tracker.MaskTracker` (``self.tracker``; plain
  torch): ``masks: dict[name, BoolTensor]`` (True = kept), names as in
  ``pl_module.named_parameters()`` and therefore as in the checkpoint's ``state_dict`` keys, the
  event history and the training cost. They go into the callback's ``state_dict()``, so a
  Lightning checkpoint carries them and ``fit(ckpt_path=...)`` resumes them. The model itself is
  never re-parametrised (no ``weight_orig``/``weight_mask``, no hooks): its state-dict keys are
  unchanged and a pruned checkpoint loads into a plain model.
* Before each optimiser step the masked gradients are zeroed; after it the masks are re-applied to
  the weights in place (``w.mul_(mask)`` under ``no_grad``), so pruned weights stay exactly 0 under
  momentum and weight decay. At a mask change the optimiser state of pruned entries (momentum
  buffers, Adam moments) is zeroed as well.
* Masks change only at schedule events of ``trainer.global_step`` (optimiser steps, so gradient
  accumulation is accounted for). A subclass says which event is in force at a step
  (:meth:`event_key`) and its target (:meth:`target_sparsity`); the base changes the masks when the
  event key changes, which is also right after resuming at any step.
* *Which* weights a mask keeps is :class:`~callbacks.pruning.options.MaskOptions` (``self.options``:
  scope, granularity, N:M, targets, ...), validated once in ``__init__``.
* DDP (:mod:`callbacks.pruning.agreement`): masks are computed on every rank from the weights
  (identical on every rank under DDP) with deterministic tie-breaking, then rank 0's masks are
  broadcast and every rank checks that its own were equal (a warning names any difference; rank
  0's are used). At the end of training every rank hashes its masks (SHA-256,
  :meth:`mask_sha256`), the digests are all-gathered and ``run_summary()`` reports them, in rank
  order, as ``mask_sha256_per_rank``: ``run.json`` of a DDP run proves that all ranks ended with
  identical masks.
* Logging at each mask change: ``sparsity/global`` (measured from the weights), ``sparsity/target``
  and ``sparsity/<param name>`` to every logger, plus a ``pruning/layers`` table when a
  ``WandbLogger`` is attached.
* ``run_summary()`` adds ``pruning``, ``target_sparsity`` and ``achieved_sparsity`` (zeros / size of
  the prunable weights, measured) to ``run.json``.
* Mask dynamics and cost (:mod:`sparsity.dynamics`): at each mask change
  ``pruning/oscillation`` (fraction of mask entries flipped since the previous change; also per
  tensor, ``pruning/oscillation/<param name>``), ``pruning/newly_pruned`` and ``pruning/revived``;
  and the theoretical training FLOPs of the pruned layers, ``flops/step_{dense,sparse,saving}`` and
  ``flops/cumulative_{dense,sparse,saving}`` (also at every epoch end). Layer output sizes come from
  one forward pass with hooks on the first training batch; a step costs 3x the forward FLOPs of its
  images through the trained encoder (+1x through a momentum encoder, ``target_pairs()``), each
  layer scaled by its mask density. ``run.json`` gets ``final_oscillation``, ``mean_oscillation``,
  ``flops_saving`` (cumulative) and the dense/sparse totals.
* What the callbacks ask of the LightningModule goes through :mod:`callbacks.pruning.module_api`.

Not supported: strategies that re-wrap parameters (FSDP, DeepSpeed) — the masks are keyed by the
LightningModule's own parameter names and applied to those tensors.

The class is split by job: :class:`~callbacks.pruning.prunable.PrunableParameters` (which
parameters are pruned, checked) and :class:`~callbacks.pruning.reports.PruningReports` (mask
dynamics, training cost, logging and ``run_summary``) are its mixins; this module keeps the masks'
life cycle and the Lightning hooks.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from callbacks.pruning import module_api
from callbacks.pruning.agreement import agree_across_ranks, gather_digests
from callbacks.pruning.options import MaskOptions
from callbacks.pruning.prunable import PrunableParameters
from callbacks.pruning.reports import PruningReports
from lightning_modules.plan import TrainingPlan
from sparsity.masks import sparsity_of
from sparsity.tracker import MaskTracker


class PruningCallback(PrunableParameters, PruningReports, pl.Callback):
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

    These are the fields of :class:`~callbacks.pruning.options.MaskOptions`; a schedule takes its
    own arguments and passes these on with ``**kwargs`` (the command line keeps naming them one by
    one: ``--pruning.init_args.scope``).
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
        #: which weights a mask keeps (validated: a bad value is a ConfigError here)
        self.options = MaskOptions(
            final_sparsity, scope=scope, granularity=granularity, n=n, m=m, norm=norm,
            nm_indivisible=nm_indivisible, min_layer_density=min_layer_density, targets=targets,
        )  # fmt: skip
        #: the masks, their events (one per change: step, target, measured, oscillation) and cost;
        #: ``tracker.last_event`` is the :meth:`event_key` of the current masks
        self.tracker = MaskTracker()
        #: SHA-256 of every rank's masks at the end of training (:meth:`mask_sha256`), rank order
        self.mask_sha256_per_rank: list[str] | None = None
        self._applied_step: int | None = None

    @property
    def final_sparsity(self) -> float:
        """The sparsity the schedule ends at (``options.final_sparsity``)."""
        return self.options.final_sparsity

    @property
    def masks(self) -> dict[str, Tensor]:
        """name -> BoolTensor (True = kept); empty while the model is dense."""
        return self.tracker.masks

    @property
    def events(self) -> list[dict[str, Any]]:
        """One record per mask change: ``{"step", "target", "measured", "oscillation"}``."""
        return self.tracker.events

    # ------------------------------------------------------------------------------------------
    # what subclasses define
    # ------------------------------------------------------------------------------------------
    def event_key(self, trainer: pl.Trainer, step: int) -> int | None:
        """Index of the schedule event in force at optimiser step ``step`` (None: no event yet)."""
        return None

    def target_sparsity(self, trainer: pl.Trainer, step: int) -> float:
        """Target sparsity of the event in force at ``step``."""
        return self.final_sparsity

    def configure_model(self, pl_module: pl.LightningModule) -> None:
        """Hand the module what this schedule needs from it before any check runs (One-Shot: its
        fine-tune phase). ``training/lightning_cli.py`` calls it before the Trainer's run; ``setup("fit")`` again."""

    def check_max_epochs(self, max_epochs: int | None) -> None:
        """Raise :class:`ConfigError` when ``trainer.max_epochs`` cannot hold this schedule (One-Shot:
        its fine-tune epochs). Only checks; ``training/lightning_cli.py`` calls it before :meth:`configure_model`."""

    def check_plan(self, plan: TrainingPlan, pl_module: pl.LightningModule) -> None:
        """Raise :class:`ConfigError` when this schedule cannot finish within ``plan`` (the run's
        optimiser steps per phase). ``training/lightning_cli.py`` calls it before any training; ``on_train_start`` again."""

    def unfinished_reason(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str | None:
        """Why this run's pruning did not run to its end (``None``: it did); a run with a reason is
        ``incomplete`` in run.json and ``analyze`` refuses it."""
        return None

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
        return self.options.compute(weights, sparsity, current_masks=self.masks or None)

    def target_densities(self) -> dict[str, float]:
        """Kept fraction of each prunable layer's copy in a momentum encoder, keyed by the *online*
        parameter name (missing = dense). Plain schedules leave the momentum encoder dense."""
        return {}

    # ------------------------------------------------------------------------------------------
    # changing the masks
    # ------------------------------------------------------------------------------------------
    def _bind(self, pl_module: pl.LightningModule) -> None:
        """Bind the masks to the module's prunable parameters (checked to fit)."""
        params = self.prunable(pl_module) if self.masks else {}
        self.tracker.bind(params, kind="pruning", of="prunable parameters")

    def restore_masks(self, pl_module: pl.LightningModule) -> None:
        """Bind the masks (restored from a checkpoint, or kept from an earlier fit) to the module and
        apply them to the weights: the first thing ``on_train_start`` does. A schedule with more
        sets of masks binds and applies those first (GMP: the classifier's)."""
        self._bind(pl_module)
        self.tracker.apply()

    def update_masks(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sparsity: float) -> None:
        """Recompute the masks for ``sparsity`` from the current weights and apply them everywhere."""
        params = self.prunable(pl_module)
        weights = {name: p.detach() for name, p in params.items()}
        previous = self.masks
        new = self.compute_new_masks(trainer, pl_module, weights, sparsity)
        self.tracker.masks = agree_across_ranks(trainer, new)
        self._bind(pl_module)
        self.tracker.apply()
        self.tracker.mask_optimizer_state(trainer.optimizers)
        self.after_mask_change(trainer, pl_module, previous)
        measured = sparsity_of(weights)
        change = self.tracker.record(previous, step=int(trainer.global_step), target=float(sparsity), measured=measured)
        empty = [name for name, mask in self.masks.items() if not bool(mask.any())]
        if empty:
            rank_zero_warn(
                f"pruning to sparsity {sparsity:g} left no weights in {', '.join(empty)}; "
                "set min_layer_density > 0 to keep every layer alive"
            )
        self._log(trainer, weights, sparsity, measured)
        self._log_dynamics(trainer, pl_module, change)

    def _is_new_event(self, key: int | None) -> bool:
        """Whether schedule event ``key`` (:meth:`event_key` of some step) is not the one that made
        the current masks: the masks must change when it comes into force."""
        return key is not None and key != self.tracker.last_event

    def _maybe_update(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = int(trainer.global_step)
        key = self.event_key(trainer, step)
        if self._is_new_event(key):
            self.update_masks(trainer, pl_module, self.target_sparsity(trainer, step))
            self.tracker.last_event = key

    def dense_gradients_before_event(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Tensor] | None:
        """Copies of the prunable parameters' gradients, pruned entries included, when the optimiser
        step about to happen (``global_step + 1``) brings a mask change; None otherwise or when a
        parameter has no gradient. For drop-and-regrow (:mod:`sparsity.regrowth`): call it
        in ``on_before_optimizer_step`` before this class masks the gradients."""
        if not self._is_new_event(self.event_key(trainer, int(trainer.global_step) + 1)):
            return None
        params = self.prunable(pl_module)
        if not all(p.grad is not None for p in params.values()):
            return None
        return {name: p.grad.detach().clone() for name, p in params.items() if p.grad is not None}

    def _optimizer_stepped(self, trainer: pl.Trainer) -> bool:
        """Whether an optimiser step happened since the masks were last applied (False between the
        batches of one gradient-accumulation window)."""
        return int(trainer.global_step) != self._applied_step

    # ------------------------------------------------------------------------------------------
    # Lightning hooks
    # ------------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.configure_model(pl_module)
            self.check_model(pl_module)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after any checkpoint restore: bind restored masks, re-apply, and catch an event due now
        self.restore_masks(pl_module)
        self._applied_step = int(trainer.global_step)
        self._maybe_update(trainer, pl_module)

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        encode = module_api.encoder_forward(pl_module)
        if self.tracker.cost.layer_flops is None and encode is not None:
            # once per fit (also after a resume): layer output sizes from one forward pass
            self.tracker.cost.measure(pl_module, list(self.prunable(pl_module)), encode, batch)
        self.tracker.cost.add_batch(batch, self.branch_costs(pl_module), head_phase=module_api.phase(pl_module) == "head")

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self.tracker.mask_gradients()

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._optimizer_stepped(trainer):
            return  # gradient accumulation: no optimiser step since the last call
        self._applied_step = int(trainer.global_step)
        self.tracker.apply()
        self.tracker.cost.end_step(trainer.world_size)
        self._maybe_update(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = self.tracker.cost.metrics()
        if metrics:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=int(trainer.global_step))

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # every rank hashes its masks; run.json's mask_sha256_per_rank proves they are identical
        self.mask_sha256_per_rank = gather_digests(trainer, self.mask_sha256())

    @override
    def state_dict(self) -> dict[str, Any]:
        state = self.tracker.state_dict()  # masks, last_event, events, flops
        flops = state.pop("flops")
        # final_sparsity is written for whoever reads a checkpoint (load_state_dict does not need it)
        return {**state, "final_sparsity": self.final_sparsity, "flops": flops}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state_dict)
        self._applied_step = None
