"""SyncCP: synchronized pruning of both branches of a two-branch SSL model (REFERENCE §5).

The online encoder follows the GMP cubic staircase of :class:`GradualMagnitudePruning` (all of its
options: begin/end/frequency, ΔGMP epochs, scope, granularity unstructured / N:M / channel). At the
same events the **target (momentum) encoder** is pruned to ``max(0, s_online - density_gap)``, with
its own masks chosen from its own weights (as in the author code: one global threshold over the
target's |w|), keyed by the target's parameter names. Both encoders are masked in place, so every
forward pass of either branch uses ``w * mask``.

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
  gradient (``prune_and_regrow``); events continue every ``frequency`` steps after ``end_step`` until
  then (the sparsity stays at ``final_sparsity``).

Logged at every event, besides the online encoder's ``sparsity/*`` and ``pruning/*`` (base class):
``sparsity/target_encoder`` (measured), ``sparsity/target_encoder_scheduled``, per tensor
``sparsity/target_encoder.<...>.weight``, and ``pruning/target_encoder/oscillation`` (+ per tensor).
run.json adds ``synchronized``, ``density_gap``, ``target_encoder_target_sparsity``,
``target_encoder_achieved_sparsity`` and ``target_encoder_events``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from callbacks.pruning.dynamics import cosine_decay, drop_and_regrow, mask_change, mask_densities
from callbacks.pruning.gmp import GradualMagnitudePruning
from callbacks.pruning.masks import compute_masks, erk_densities, layer_sparsities, random_masks, sparsity_of
from common.errors import ConfigError, check_choice, check_range

SCORES = ("magnitude", "ema")
INITIAL_MASKS = ("magnitude", "erk")


class SynchronizedPruning(GradualMagnitudePruning):
    """GMP of the online encoder + the target encoder pruned in step at ``online - density_gap``.

    Args:
        final_sparsity, begin_step, end_step, frequency, initial_sparsity, begin_epoch, end_epoch:
            the online encoder's cubic schedule (see :class:`GradualMagnitudePruning`).
        density_gap: the target encoder's sparsity is lower by this much at every event, in
            ``[0, final_sparsity]`` (author scripts: 0.3).
        score: ``"magnitude"`` (|w|) or ``"ema"`` (an EMA of |w|, per optimiser step).
        score_momentum: EMA coefficient of ``score="ema"``, in ``[0, 1)``.
        scope, granularity, n, m, norm, nm_indivisible, min_layer_density: the mask options of
            :class:`~callbacks.pruning.base.PruningCallback`, used for both encoders (N:M default
            2:4; ``final_sparsity = 1 - n/m`` gives the exact pattern online, the target keeps
            ``density_gap`` more of each layer).
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
            final_sparsity, begin_step, end_step, frequency, initial_sparsity=initial_sparsity, scope=scope,
            granularity=granularity, n=n, m=m, norm=norm, nm_indivisible=nm_indivisible, begin_epoch=begin_epoch,
            end_epoch=end_epoch, min_layer_density=min_layer_density, targets=targets,
        )
        check_range("density_gap", density_gap, low=0.0, high=final_sparsity)
        check_choice("score", score, SCORES)
        check_range("score_momentum", score_momentum, low=0.0, high=1.0, high_inclusive=False)
        self.schedule_name = "synccp"
        self.density_gap = float(density_gap)
        self.score = score
        self.score_momentum = float(score_momentum)
        #: target parameter name -> BoolTensor (True = kept)
        self.target_masks: dict[str, Tensor] = {}
        #: one record per target mask change: {"step", "target", "measured", "oscillation"}
        self.target_events: list[dict[str, float]] = []
        #: whether the module has a momentum encoder to synchronize (set in setup)
        self.synchronized: bool | None = None
        self._target_names: dict[str, str] = {}  # online name -> target name
        self._target_bound: list[tuple[nn.Parameter, Tensor]] = []
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
        self._grads: dict[str, Tensor] | None = None
        #: one record per topology update: {"step", "drop_fraction", "regrown"}
        self.regrow_events: list[dict[str, float]] = []

    # ------------------------------------------------------------------------------------------
    # pairing
    # ------------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        pairs_of = getattr(pl_module, "target_pairs", None)
        if not callable(pairs_of) or not pairs_of():
            self.synchronized = False
            self._target_names = {}
            if stage == "fit":
                rank_zero_warn(
                    f"SynchronizedPruning: {type(pl_module).__name__} has one shared encoder (no momentum encoder, "
                    f"no target_pairs()), so there is nothing to synchronize: this run is plain gradual magnitude "
                    f"pruning of that encoder (density_gap={self.density_gap:g} is unused)"
                )
            return
        pairs = pairs_of()
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

    def _target_params(self, pl_module: pl.LightningModule) -> dict[str, nn.Parameter]:
        return {target: pl_module.get_parameter(target) for target in self._target_names.values()}

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

    def compute_new_masks(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, weights: dict[str, Tensor], sparsity: float
    ) -> dict[str, Tensor]:
        dense = {name: self._dense(name, w) for name, w in weights.items()} if self.revival else weights
        scores = self._scores(dense)
        if self.revival:  # from the dense weights, every entry a candidate: a pruned weight can revive
            masks = compute_masks(
                scores, sparsity, scope=self.scope, granularity=self.granularity, n=self.n, m=self.m, norm=self.norm,
                min_layer_density=self.min_layer_density, allow_regrowth=True,
            )  # fmt: skip
        else:
            masks = super().compute_new_masks(trainer, pl_module, scores, sparsity)
        return self._regrow(trainer, dense, masks)

    def _regrow(self, trainer: pl.Trainer, weights: dict[str, Tensor], masks: dict[str, Tensor]) -> dict[str, Tensor]:
        """The authors' prune_and_regrow after the magnitude step (``regrow_fraction > 0``)."""
        grads, self._grads = self._grads, None
        if self.regrow_fraction <= 0.0:
            return masks
        step = int(trainer.global_step)
        r = cosine_decay(self.regrow_fraction, step, begin_step=self.schedule_begin, end_step=int(self.regrow_end or 0))
        if grads is None or set(grads) != set(masks) or r <= 0.0 or not any(bool(g.any()) for g in grads.values()):
            self.regrow_events.append({"step": step, "drop_fraction": r, "regrown": 0})
            return masks
        new, regrown = drop_and_regrow(weights, grads, masks, r)
        self.regrow_events.append({"step": step, "drop_fraction": r, "regrown": int(sum(regrown.values()))})
        return new

    def event_key(self, trainer: pl.Trainer, step: int) -> int | None:
        if self.regrow_fraction <= 0.0 or self.regrow_end is None or step < self.schedule_end:
            return super().event_key(trainer, step)
        # topology updates go on every `frequency` steps after the schedule's end, until regrow_end
        last = max(0, (int(self.regrow_end) - 1 - self.schedule_begin) // self.frequency)
        return min((step - self.schedule_begin) // self.frequency, last) + 1

    @torch.no_grad()
    def after_mask_change(self, trainer: pl.Trainer, pl_module: pl.LightningModule, previous: dict[str, Tensor]) -> None:
        if self.revival:
            self._keep_aside(self.prunable(pl_module), self.masks, previous, self._dense_online)

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

    def update_masks(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sparsity: float) -> None:
        if self.revival:  # the dense online view before the change
            self._dense_online = {n: self._dense(n, p.detach()).clone() for n, p in self.prunable(pl_module).items()}
        super().update_masks(trainer, pl_module, sparsity)
        self._dense_online = None
        if self.synchronized:
            self.update_target_masks(trainer, pl_module, self.target_schedule(sparsity))

    # ------------------------------------------------------------------------------------------
    # target masks
    # ------------------------------------------------------------------------------------------
    def _bind_target(self, pl_module: pl.LightningModule) -> None:
        if not self.target_masks or not self.synchronized:
            self._target_bound = []
            return
        params = self._target_params(pl_module)
        if set(params) != set(self.target_masks):
            differing = sorted(set(params) ^ set(self.target_masks))
            raise ValueError(f"target-encoder masks do not match the model's target parameters; differing names: {differing[:5]}")
        bound = []
        for name, p in params.items():
            mask = self.target_masks[name].to(device=p.device, dtype=torch.bool)
            self.target_masks[name] = mask
            bound.append((p, mask.to(p.dtype)))
        self._target_bound = bound

    @torch.no_grad()
    def apply_target_masks(self) -> None:
        """``w.mul_(mask)`` for every masked target-encoder parameter."""
        if self._target_bound:
            torch._foreach_mul_([p for p, _ in self._target_bound], [f for _, f in self._target_bound])

    def target_schedule(self, online_sparsity: float) -> float:
        """The target encoder's sparsity for an online sparsity: ``max(0, online - density_gap)``."""
        return max(0.0, float(online_sparsity) - self.density_gap)

    def update_target_masks(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sparsity: float) -> None:
        """Recompute the target encoder's masks for ``sparsity`` from its own weights; apply them."""
        params = self._target_params(pl_module)
        weights = {name: p.detach() for name, p in params.items()}
        dense = {name: self._dense(name, w).clone() for name, w in weights.items()} if self.revival else None
        previous = self.target_masks
        new = compute_masks(
            self._scores(dense if dense is not None else weights), sparsity, scope=self.scope, granularity=self.granularity,
            n=self.n, m=self.m, norm=self.norm, current_masks=None if self.revival else (self.target_masks or None),
            min_layer_density=self.min_layer_density, allow_regrowth=self.revival,
        )  # fmt: skip
        self.target_masks = self._agree_across_ranks(trainer, new)
        self._bind_target(pl_module)
        self.apply_target_masks()
        if self.revival:
            self._keep_aside(params, self.target_masks, previous, dense)
        measured = sparsity_of(weights)
        change = mask_change(previous or None, self.target_masks)
        step = int(trainer.global_step)
        self.target_events.append({"step": step, "target": float(sparsity), "measured": measured, "oscillation": change.flipped})
        metrics = {"sparsity/target_encoder": measured, "sparsity/target_encoder_scheduled": float(sparsity)}
        metrics.update({f"sparsity/{name}": value for name, value in layer_sparsities(weights).items()})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        self._log_dynamics(trainer, pl_module, change, prefix="pruning/target_encoder/")

    def target_densities(self) -> dict[str, float]:
        densities = mask_densities(self.target_masks)
        return {online: densities[target] for online, target in self._target_names.items() if target in densities}

    def target_achieved_sparsity(self, pl_module: pl.LightningModule) -> float:
        """Zeros / size over the target encoder's copies of the prunable weights, measured."""
        return sparsity_of({name: p.detach() for name, p in self._target_params(pl_module).items()})

    # ------------------------------------------------------------------------------------------
    # hooks
    # ------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after a checkpoint restore: bind and re-apply the target masks before the online schedule
        # (which may run an event right now, updating both)
        self._bind_target(pl_module)
        self.apply_target_masks()
        if self.regrow_fraction > 0 and self.regrow_end_step is None:
            pretrain_end = getattr(pl_module, "pretrain_end_step", None)
            self.regrow_end = int(pretrain_end()) if callable(pretrain_end) else int(trainer.estimated_stepping_batches)
        if self.initial_mask == "erk" and not self.masks and int(trainer.global_step) == 0:
            self.schedule_begin, self.schedule_end = self.resolve_schedule(trainer, pl_module)
            self._erk_start(trainer, pl_module)
        super().on_train_start(trainer, pl_module)

    @torch.no_grad()
    def _erk_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Random ERK masks at density 1 - initial_sparsity (online) and + density_gap (target)."""
        params = self.prunable(pl_module)
        shapes = {name: tuple(p.shape) for name, p in params.items()}
        online = random_masks(params, erk_densities(shapes, 1.0 - self.initial_sparsity), seed=self.mask_seed)
        self._dense_online = {n: p.detach().clone() for n, p in params.items()} if self.revival else None
        self.masks = self._agree_across_ranks(trainer, online)
        self._bind(pl_module)
        self.apply_masks()
        self.after_mask_change(trainer, pl_module, {})
        self._dense_online = None
        measured = sparsity_of({n: p.detach() for n, p in params.items()})
        change = mask_change(None, self.masks)
        self.events.append({"step": 0, "target": self.initial_sparsity, "measured": measured, "oscillation": change.flipped})
        self._log(trainer, {n: p.detach() for n, p in params.items()}, self.initial_sparsity, measured)
        self._log_dynamics(trainer, pl_module, change)
        if self.synchronized:
            target_density = min(1.0, 1.0 - self.initial_sparsity + self.density_gap)
            targets = self._target_params(pl_module)
            if target_density < 1.0:
                t_shapes = {name: tuple(p.shape) for name, p in targets.items()}
                masks = random_masks(targets, erk_densities(t_shapes, target_density), seed=self.mask_seed + 1)
            else:
                masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in targets.items()}
            self.target_masks = self._agree_across_ranks(trainer, masks)
            self._bind_target(pl_module)
            self.apply_target_masks()
            if self.revival:
                self._keep_aside(targets, self.target_masks, {}, {n: p.detach().clone() for n, p in targets.items()})
            t_measured = sparsity_of({n: p.detach() for n, p in targets.items()})
            self.target_events.append({"step": 0, "target": 1.0 - target_density, "measured": t_measured,
                                       "oscillation": mask_change(None, self.target_masks).flipped})  # fmt: skip
        self._last_event = self.event_key(trainer, 0)  # the start is this event: no magnitude masks on top

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if self.regrow_fraction > 0:
            # the step about to happen is global_step + 1: if it brings an event, keep the dense
            # gradients (pruned entries included) before the base class masks them
            key = self.event_key(trainer, int(trainer.global_step) + 1)
            params = self.prunable(pl_module)
            if key is not None and key != self._last_event and all(p.grad is not None for p in params.values()):
                self._grads = {name: p.grad.detach().clone() for name, p in params.items()}
        super().on_before_optimizer_step(trainer, pl_module, optimizer)

    @torch.no_grad()
    def _dense_momentum_correction(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Revival: the module's EMA used the zeroed online entries; the authors' target averages the
        dense online weights, so add ``(1 - tau) * kept-aside value`` where the online mask is off."""
        if not (self.revival and self.synchronized) or getattr(pl_module, "last_momentum_update_step", None) != int(trainer.global_step):
            return
        tau = float(getattr(pl_module, "tau", 1.0))
        params = self._target_params(pl_module)
        for online, target in self._target_names.items():
            shadow = self._shadow.get(online)
            if shadow is not None:
                params[target].add_(shadow.to(params[target].device), alpha=1.0 - tau)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stepped = int(trainer.global_step) != self._applied_step  # False within gradient accumulation
        if stepped:
            self._dense_momentum_correction(trainer, pl_module)
        if stepped and self.score == "ema":
            self._update_ema_scores(pl_module)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._grads = None  # used by this step's update, or not needed: never reuse old gradients
        if stepped:
            # the module's momentum update of this step already ran (BYOLModel.optimizer_step)
            self.apply_target_masks()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["target_masks"] = {name: mask.detach().cpu().clone() for name, mask in self.target_masks.items()}
        state["target_events"] = [dict(e) for e in self.target_events]
        if self.score == "ema":
            state["ema_scores"] = {name: s.detach().cpu().clone() for name, s in self._ema_scores.items()}
        if self.revival:
            state["shadow"] = {name: s.detach().cpu().clone() for name, s in self._shadow.items()}
        if self.regrow_fraction > 0:
            state["regrow_events"] = [dict(e) for e in self.regrow_events]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.target_masks = {name: m.to(torch.bool) for name, m in state_dict.get("target_masks", {}).items()}
        self.target_events = [dict(e) for e in state_dict.get("target_events", [])]
        self._ema_scores = {name: s.clone() for name, s in state_dict.get("ema_scores", {}).items()}
        self._shadow = {name: s.clone() for name, s in state_dict.get("shadow", {}).items()}
        self.regrow_events = [dict(e) for e in state_dict.get("regrow_events", [])]
        self._target_bound = []

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
