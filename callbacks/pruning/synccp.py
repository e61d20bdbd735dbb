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

from callbacks.pruning.dynamics import mask_change, mask_densities
from callbacks.pruning.gmp import GradualMagnitudePruning
from callbacks.pruning.masks import compute_masks, layer_sparsities, sparsity_of
from lightning_modules.errors import check_choice, check_range

SCORES = ("magnitude", "ema")


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
    ) -> None:
        super().__init__(
            final_sparsity, begin_step, end_step, frequency, initial_sparsity=initial_sparsity, scope=scope,
            granularity=granularity, n=n, m=m, norm=norm, nm_indivisible=nm_indivisible, begin_epoch=begin_epoch,
            end_epoch=end_epoch, min_layer_density=min_layer_density,
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
    @torch.no_grad()
    def _update_ema_scores(self, pl_module: pl.LightningModule) -> None:
        params = {**self.prunable(pl_module), **(self._target_params(pl_module) if self.synchronized else {})}
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
        return super().compute_new_masks(trainer, pl_module, self._scores(weights), sparsity)

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

    def update_masks(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sparsity: float) -> None:
        super().update_masks(trainer, pl_module, sparsity)
        if self.synchronized:
            self.update_target_masks(trainer, pl_module, self.target_schedule(sparsity))

    def update_target_masks(self, trainer: pl.Trainer, pl_module: pl.LightningModule, sparsity: float) -> None:
        """Recompute the target encoder's masks for ``sparsity`` from its own weights; apply them."""
        weights = {name: p.detach() for name, p in self._target_params(pl_module).items()}
        previous = self.target_masks
        new = compute_masks(
            self._scores(weights), sparsity, scope=self.scope, granularity=self.granularity, n=self.n, m=self.m,
            norm=self.norm, current_masks=self.target_masks or None, min_layer_density=self.min_layer_density,
        )
        self.target_masks = self._agree_across_ranks(trainer, new)
        self._bind_target(pl_module)
        self.apply_target_masks()
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
        super().on_train_start(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stepped = int(trainer.global_step) != self._applied_step  # False within gradient accumulation
        if stepped and self.score == "ema":
            self._update_ema_scores(pl_module)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if stepped:
            # the module's momentum update of this step already ran (BYOLModel.optimizer_step)
            self.apply_target_masks()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["target_masks"] = {name: mask.detach().cpu().clone() for name, mask in self.target_masks.items()}
        state["target_events"] = [dict(e) for e in self.target_events]
        if self.score == "ema":
            state["ema_scores"] = {name: s.detach().cpu().clone() for name, s in self._ema_scores.items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.target_masks = {name: m.to(torch.bool) for name, m in state_dict.get("target_masks", {}).items()}
        self.target_events = [dict(e) for e in state_dict.get("target_events", [])]
        self._ema_scores = {name: s.clone() for name, s in state_dict.get("ema_scores", {}).items()}
        self._target_bound = []

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        out = super().run_summary(trainer, pl_module)
        out["synchronized"] = bool(self.synchronized)
        out["density_gap"] = self.density_gap
        out["pruning_score"] = self.score
        if self.synchronized:
            out["target_encoder_target_sparsity"] = self.target_schedule(self.final_sparsity)
            out["target_encoder_achieved_sparsity"] = self.target_achieved_sparsity(pl_module)
            out["target_encoder_events"] = [[e["step"], e["target"], e["measured"]] for e in self.target_events]
            osc = [e["oscillation"] for e in self.target_events]
            out["target_encoder_final_oscillation"] = osc[-1] if osc else 0.0
        return out


__all__ = ["SynchronizedPruning", "SCORES"]
