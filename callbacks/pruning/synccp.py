"""SyncCP: synchronized pruning of both branches of a two-branch SSL model (REFERENCE §5).

The online encoder follows the GMP cubic staircase of :mod:`callbacks.pruning.cubic` (all of its
options: begin/end/frequency, ΔGMP epochs, scope, granularity unstructured / N:M / channel). At the
same events the **target (momentum) encoder** is pruned to ``max(0, s_online - density_gap)``, with
its own masks chosen from its own weights (as in the author code: one global threshold over the
target's |w|), keyed by the target's parameter names (a second
:class:`~sparsity.tracker.MaskTracker`, ``self.target``). Both encoders are masked in place,
so every forward pass of either branch uses ``w * mask``.

The target weights stay an EMA of the online ones (the module's momentum update) and the target masks
are re-applied after every momentum update. Order inside one optimiser step::

    optimizer.step()                     online weights move (their masked gradients were zeroed)
    module.optimizer_step -> momentum_update()     EMA by name (BYOLModel)
    SynchronizedPruning.on_train_batch_end:
        (score="ema": update the EMA of |w| of both encoders)
        re-apply the online masks; at an event: new online masks, then new target masks
        re-apply the target masks                  <- after the momentum update of this step
    next training_step                   both branches compute with w * mask

Scoring: ``score="magnitude"`` ranks by |w| at the event; ``score="ema"`` ranks by an exponential
moving average of |w| updated after every optimiser step (``score_momentum``), which changes less
from one event to the next.

The pairing comes from the module's ``target_pairs() -> {online parameter name: target parameter}``
(:meth:`lightning_modules.BYOLModel.target_pairs`). A module without it (SimCLR / SupCon: one
shared encoder) has nothing to synchronize: the callback then *is* GMP of that encoder and says so
with a warning (``density_gap`` unused, ``synchronized: false`` in run.json).

**The authors' recipe** (mengjian0502/solo-learn-sparse, ``solo/methods/pruner/contrastive_sparse.py``,
``contrastive_momentum_sparse.py`` and ``sparse.py``; ``configs/experiments/byol_synccp.yaml``) adds three
named options:

* ``revival: true`` — the dense weights stay under the masks (the authors' ``SparsConv2d`` multiplies by
  the mask in the forward pass only) and every event recomputes the masks from them, so a pruned
  weight can come back with its value. Here pruned entries are zeroed in place as always, their
  values kept aside (frozen at the moment they were pruned: the masked weights get no loss gradient
  there either) and put back when they revive; scores (|w| or its EMA) are taken of the dense view,
  and the momentum update of the target sees the dense online weights (their EMA with the kept-aside
  values is added back after the module's update).
* ``initial_mask: erk`` — start from random Erdős–Rényi-Kernel masks at density ``1 - initial_sparsity``
  (online) and ``1 - initial_sparsity + density_gap`` (target; dense at 1), as ``Mask.init`` (exact
  counts per tensor, seeded by ``mask_seed``: the same on every rank).
* ``regrow_fraction: r`` — after each event's magnitude step, prune-and-regrow the online encoder:
  drop the fraction ``r`` (cosine-decayed to 0 at ``regrow_end_step``, default the end of pretraining)
  of each tensor's active weights with the smallest |w| and regrow as many by the largest dense
  gradient (``prune_and_regrow``; :mod:`sparsity.regrowth`); events continue every
  ``frequency`` steps after ``end_step`` until then (the sparsity stays at ``final_sparsity``).

Logged at every event, besides the online encoder's ``sparsity/*`` and ``pruning/*`` (base class):
``sparsity/target_encoder`` (measured), ``sparsity/target_encoder_scheduled``, per tensor
``sparsity/target_encoder.<...>.weight``, and ``pruning/target_encoder/oscillation`` (+ per tensor).
run.json adds ``synchronized``, ``density_gap``, ``target_encoder_target_sparsity``,
``target_encoder_achieved_sparsity`` and ``target_encoder_events``.

The class is split by job: :class:`~callbacks.pruning.synccp_target.TargetEncoderMasks` (the target
encoder's masks and the sparse ERK start) and :class:`~callbacks.pruning.synccp_scores.ScoresAndRevival`
(EMA scores, revival's kept-aside values, the dense momentum correction) are its mixins; this
module keeps the arguments, the pairing, the online schedule's overrides and the Lightning hooks.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from callbacks.pruning import module_api
from callbacks.pruning.cubic import CubicSchedulePruning
from callbacks.pruning.synccp_scores import ScoresAndRevival
from callbacks.pruning.synccp_target import TargetEncoderMasks
from common.errors import ConfigError, check_choice, check_range
from sparsity.dynamics import cosine_decay, mask_densities
from sparsity.regrowth import Regrowth
from sparsity.tracker import MaskTracker

SCORES = ("magnitude", "ema")
INITIAL_MASKS = ("magnitude", "erk")
#: checkpoint keys of the target encoder's masks (the field names of MaskTracker.state_dict -> these)
TARGET_STATE_KEYS = {"masks": "target_masks", "events": "target_events"}


class SynchronizedPruning(TargetEncoderMasks, ScoresAndRevival, CubicSchedulePruning):
    """GMP of the online encoder + the target encoder pruned in step at ``online - density_gap``.

    Args:
        final_sparsity, begin_step, end_step, frequency, initial_sparsity, begin_epoch, end_epoch:
            the online encoder's cubic schedule (see :class:`~callbacks.pruning.cubic.CubicSchedulePruning`).
        density_gap: the target encoder's sparsity is lower by this much at every event, in
            ``[0, final_sparsity]`` (author scripts: 0.3).
        score: ``"magnitude"`` (|w|) or ``"ema"`` (an EMA of |w|, per optimiser step).
        score_momentum: EMA coefficient of ``score="ema"``, in ``[0, 1)``.
        revival, initial_mask, mask_seed, regrow_fraction, regrow_end_step: the authors' recipe
            (module docstring); ``initial_mask="erk"`` needs ``initial_sparsity > 0``, ERK and
            regrowth need ``granularity="unstructured"``.
        scope, granularity, n, m, norm, nm_indivisible, min_layer_density, targets: the mask
            options of :class:`~callbacks.pruning.base.PruningCallback`, used for both encoders (N:M
            default 2:4; ``final_sparsity = 1 - n/m`` gives the exact pattern online, the target
            keeps ``density_gap`` more of each layer). Named here rather than taken as
            ``**kwargs``: their order is the order ``--help`` and the "its options are" error list.
    """

    schedule_name = "synccp"

    def __init__(
        self,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        frequency: int,
        density_gap: float = 0.3,
        score: str = "magnitude",
        score_momentum: float = 0.99,
        initial_sparsity: float = 0.0,
        scope: str = "global",
        granularity: str = "unstructured",
        n: int = 2,
        m: int = 4,
        norm: int = 1,
        nm_indivisible: str = "error",
        begin_epoch: int | None = None,
        end_epoch: int | None = None,
        min_layer_density: float = 0.0,
        targets: str = "encoder",
        revival: bool = False,
        initial_mask: str = "magnitude",
        mask_seed: int = 0,
        regrow_fraction: float = 0.0,
        regrow_end_step: int | None = None,
    ) -> None:
        check_choice("initial_mask", initial_mask, INITIAL_MASKS)
        check_range("regrow_fraction", regrow_fraction, low=0.0, high=1.0, high_inclusive=False)
        if initial_mask == "erk" and initial_sparsity <= 0.0:
            raise ConfigError("initial_mask='erk' starts sparse: give initial_sparsity > 0 (the authors: 0.3, density 0.7)")
        if (initial_mask == "erk" or regrow_fraction > 0) and granularity != "unstructured":
            raise ConfigError(f"initial_mask='erk' and regrow_fraction > 0 need granularity='unstructured', not {granularity!r}")
        super().__init__(
            final_sparsity, begin_step, end_step, frequency, initial_sparsity=initial_sparsity, begin_epoch=begin_epoch,
            end_epoch=end_epoch, scope=scope, granularity=granularity, n=n, m=m, norm=norm, nm_indivisible=nm_indivisible,
            min_layer_density=min_layer_density, targets=targets,
        )  # fmt: skip
        check_range("density_gap", density_gap, low=0.0, high=final_sparsity)
        check_choice("score", score, SCORES)
        check_range("score_momentum", score_momentum, low=0.0, high=1.0, high_inclusive=False)
        self.density_gap = float(density_gap)
        self.score = score
        self.score_momentum = float(score_momentum)
        #: the target encoder's masks (keyed by target parameter name) and their events
        self.target = MaskTracker()
        #: whether the module has a momentum encoder to synchronize (set in setup)
        self.synchronized: bool | None = None
        self._target_names: dict[str, str] = {}  # online name -> target name
        self._ema_scores: dict[str, Tensor] = {}  # param name (online or target) -> EMA of |w|
        self.revival = bool(revival)
        self.initial_mask = initial_mask
        self.mask_seed = int(mask_seed)
        self.regrow_fraction = float(regrow_fraction)
        self.regrow_end_step = regrow_end_step
        self.regrow_end = regrow_end_step
        #: revival: values of the pruned entries (online and target names), 0 where kept
        self._shadow: dict[str, Tensor] = {}
        self._dense_online: dict[str, Tensor] | None = None
        #: regrow_fraction > 0: the dense gradients of an event's step and one record per topology update
        self.regrowth = Regrowth()

    @property
    def target_masks(self) -> dict[str, Tensor]:
        """Target parameter name -> BoolTensor (True = kept); empty while the target is dense."""
        return self.target.masks

    @property
    def target_events(self) -> list[dict[str, Any]]:
        """One record per target mask change: ``{"step", "target", "measured", "oscillation"}``."""
        return self.target.events

    @property
    def regrow_events(self) -> list[dict[str, Any]]:
        """One record per topology update (``regrow_fraction > 0``): ``{"step", "drop_fraction", "regrown"}``."""
        return self.regrowth.events

    # ------------------------------------------------------------------------------------------
    # pairing
    # ------------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        pairs = module_api.target_pairs(pl_module)
        if not pairs:
            self.synchronized = False
            self._target_names = {}
            if stage == "fit":
                rank_zero_warn(
                    f"SynchronizedPruning: {type(pl_module).__name__} has one shared encoder (no momentum encoder, "
                    f"no target_pairs()), so there is nothing to synchronize: this run is plain gradual magnitude "
                    f"pruning of that encoder (density_gap={self.density_gap:g} is unused)"
                )
            return
        names = {id(p): name for name, p in pl_module.named_parameters()}
        mapping: dict[str, str] = {}
        for online in self.prunable(pl_module):
            if online not in pairs:
                raise ValueError(f"{type(pl_module).__name__}.target_pairs() has no target for prunable {online!r}")
            target = pairs[online]
            if id(target) not in names:
                raise ValueError(f"the target of {online!r} is not a parameter of {type(pl_module).__name__}")
            if tuple(target.shape) != tuple(pl_module.get_parameter(online).shape):
                raise ValueError(f"the target of {online!r} has shape {tuple(target.shape)}, the online weight another")
            mapping[online] = names[id(target)]
        self.synchronized = True
        self._target_names = mapping

    @override
    def compute_new_masks(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, weights: dict[str, Tensor], sparsity: float
    ) -> dict[str, Tensor]:
        dense = {name: self._dense(name, w) for name, w in weights.items()} if self.revival else weights
        scores = self._scores(dense)
        if self.revival:  # from the dense weights, every entry a candidate: a pruned weight can revive
            masks = self.options.compute(scores, sparsity, allow_regrowth=True)
        else:
            masks = super().compute_new_masks(trainer, pl_module, scores, sparsity)
        if self.regrow_fraction <= 0.0:
            return masks
        # the authors' prune_and_regrow after the magnitude step
        step = int(trainer.global_step)
        r = cosine_decay(self.regrow_fraction, step, begin_step=self.schedule_begin, end_step=int(self.regrow_end or 0))
        return self.regrowth.regrow(step, dense, masks, r)

    @override
    def event_key(self, trainer: pl.Trainer, step: int) -> int | None:
        if self.regrow_fraction <= 0.0 or self.regrow_end is None or step < self.schedule_end:
            return super().event_key(trainer, step)
        # topology updates go on every `frequency` steps after the schedule's end, until regrow_end
        last = max(0, (int(self.regrow_end) - 1 - self.schedule_begin) // self.frequency)
        return min((step - self.schedule_begin) // self.frequency, last) + 1

    @override
    @torch.no_grad()
    def after_mask_change(self, trainer: pl.Trainer, pl_module: pl.LightningModule, previous: dict[str, Tensor]) -> None:
        if self.revival:
            self._keep_aside(self.prunable(pl_module), self.masks, previous, self._dense_online)

    @override
    def update_masks(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sparsity: float) -> None:
        if self.revival:  # the dense online view before the change
            self._dense_online = {n: self._dense(n, p.detach()).clone() for n, p in self.prunable(pl_module).items()}
        super().update_masks(trainer, pl_module, sparsity)
        self._dense_online = None
        if self.synchronized:
            self.update_target_masks(trainer, pl_module, self.target_schedule(sparsity))

    @override
    def target_densities(self) -> dict[str, float]:
        densities = mask_densities(self.target_masks)
        return {online: densities[target] for online, target in self._target_names.items() if target in densities}

    # ------------------------------------------------------------------------------------------
    # hooks
    # ------------------------------------------------------------------------------------------
    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after a checkpoint restore: bind and re-apply the target masks before the online schedule
        # (which may run an event right now, updating both)
        self._bind_target(pl_module)
        self.target.apply()
        if self.regrow_fraction > 0 and self.regrow_end_step is None:
            pretrain_end = module_api.pretrain_end_step(pl_module)
            self.regrow_end = pretrain_end if pretrain_end is not None else int(trainer.estimated_stepping_batches)
        if self._erk_start_due(trainer):
            self.schedule_begin, self.schedule_end = self.resolve_schedule(trainer, pl_module)
            self._erk_start(trainer, pl_module)
        super().on_train_start(trainer, pl_module)

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if self.regrow_fraction > 0:
            self.regrowth.gradients = self.dense_gradients_before_event(trainer, pl_module)
        super().on_before_optimizer_step(trainer, pl_module, optimizer)  # masks the gradients

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stepped = self._optimizer_stepped(trainer)  # False within gradient accumulation
        if stepped:
            self._dense_momentum_correction(trainer, pl_module)
        if stepped and self.score == "ema":
            self._update_ema_scores(pl_module)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self.regrowth.gradients = None  # used by this step's update, or not needed: never reuse old gradients
        if stepped:
            # the module's momentum update of this step already ran (BYOLModel.optimizer_step)
            self.target.apply()

    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(self.target.state_dict(TARGET_STATE_KEYS))
        if self.score == "ema":
            state["ema_scores"] = {name: s.detach().cpu().clone() for name, s in self._ema_scores.items()}
        if self.revival:
            state["shadow"] = {name: s.detach().cpu().clone() for name, s in self._shadow.items()}
        if self.regrow_fraction > 0:
            state["regrow_events"] = [dict(e) for e in self.regrow_events]
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.target.load_state_dict(state_dict, TARGET_STATE_KEYS)
        self._ema_scores = {name: s.clone() for name, s in state_dict.get("ema_scores", {}).items()}
        self._shadow = {name: s.clone() for name, s in state_dict.get("shadow", {}).items()}
        self.regrowth.events = [dict(e) for e in state_dict.get("regrow_events", [])]

    @override
    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        out = super().run_summary(trainer, pl_module)
        out["synchronized"] = bool(self.synchronized)
        out["density_gap"] = self.density_gap
        out["pruning_score"] = self.score
        out["pruning_revival"] = self.revival
        out["pruning_initial_mask"] = self.initial_mask
        if self.regrow_fraction > 0:
            out["regrown_total"] = int(sum(e["regrown"] for e in self.regrow_events))
            out["pruning_schedule"].update(regrow_fraction=self.regrow_fraction, regrow_end_step=self.regrow_end)
        if self.synchronized:
            out["target_encoder_target_sparsity"] = self.target_schedule(self.final_sparsity)
            out["target_encoder_achieved_sparsity"] = self.target_achieved_sparsity(pl_module)
            out["target_encoder_events"] = [[e["step"], e["target"], e["measured"]] for e in self.target_events]
            osc = [e["oscillation"] for e in self.target_events]
            out["target_encoder_final_oscillation"] = osc[-1] if osc else 0.0
        return out


__all__ = ["SynchronizedPruning", "SCORES"]
