"""The protocol every training method implements, and what they share.

Callbacks rely only on this surface (DESIGN.md):

* ``encode(x) -> h`` — the representation ``[B, D]`` (128-d pooled output for WRN-16-2);
* ``classify(x) -> logits`` ``[B, num_classes]`` — the classifier that reports test accuracy;
* ``probe_features(x) -> list[Tensor]`` — pooled hidden representations for prediction depth;
* ``prunable_parameters(targets) -> dict[name, Parameter]`` — the tensors a pruning callback may
  prune (:data:`PRUNING_TARGETS`; default: encoder Conv2d/Linear weights), names as in
  ``named_parameters()`` (so they match state-dict keys);
* ``phase`` — ``"supervised"``, ``"contrastive"``, ``"head"`` or ``"finetune"`` for the current
  epoch, from :meth:`RepresentationModule.phase_epochs` counted back from ``trainer.max_epochs``
  (the one source of truth for a run's length); ``finetune_epochs`` and ``finetune_spec`` are set by
  a pruning callback that fine-tunes at the end (One-Shot);
* ``train_data_specs()`` — per phase, what it trains on (augmentation, views, batch size; ``None`` =
  the datamodule's own arguments); the datamodule serves the current phase's loader;
* ``training_plan()`` — optimiser steps per phase (:class:`~lightning_modules.plan.TrainingPlan`);
* ``validation_step``/``test_step`` return ``{"index", "label", "logits", "features"}`` (detached),
  so metric callbacks read per-sample outputs without a second forward pass.

Evaluation metrics (``val/acc``, ``val/loss``, ``test/acc``, ``test/loss``, ``test/acc_class_<c>``)
are computed at epoch end from the per-sample predictions of all ranks, **de-duplicated by sample
index** — ``DistributedSampler`` pads the last batch with repeated samples, which a per-rank running
accuracy would count twice — so under DDP they equal the per-sample file exactly.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.data import extract_batch_size
from torch import Tensor, nn
from torchmetrics import Metric
from typing_extensions import override

from common.data_spec import TrainDataSpec
from common.distributed import gather_unique_rows
from common.errors import ConfigError, check_choice, check_range
from common.protocols import PlannedData
from lightning_modules.accuracy import EpochMean
from lightning_modules.backbones import build_backbone
from lightning_modules.plan import TrainingPlan, limited_batches, optimizer_steps

#: what ``prunable_parameters(targets)`` can return:
#: ``encoder`` — every Conv2d and Linear weight of the encoder (never BatchNorm, never biases);
#: ``encoder_conv`` — the encoder's Conv2d weights only (Corti et al.'s SCL GMP);
#: ``network`` — every Conv2d weight and every Linear weight *and bias* of encoder + classifier
#: (Corti et al.'s Sup GMP and their One-Shot pool; projection heads and probes excluded);
#: ``classifier`` — the linear classifier's weight and bias (SCL: pruned during the head phase).
PRUNING_TARGETS = ("encoder", "encoder_conv", "network", "classifier")


class RepresentationModule(pl.LightningModule):
    """Encoder + linear classifier, the evaluation loops and the shared protocol.

    Subclasses implement ``training_step`` and ``configure_optimizers``.
    """

    method: str = "base"
    #: the encoder runs once per training step with its own parameters, so callbacks.cuda_graphs can
    #: replay it from CUDA graphs (False for a module that substitutes its parameters, as SDCLR does)
    cuda_graph_safe: bool = True

    def __init__(
        self,
        backbone: str = "wrn16_2",
        num_classes: int = 10,
        in_channels: int = 3,
        depth: int = 16,
        widen_factor: int = 2,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        check_range("model.num_classes", num_classes, low=2)
        self.encoder = build_backbone(backbone, in_channels=in_channels, depth=depth, widen_factor=widen_factor)
        self.feature_dim: int = self.encoder.feature_dim
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        self.num_classes = num_classes
        self.channels_last = channels_last
        self.finetune_epochs = 0
        #: the fine-tune phase's training data (set with finetune_epochs by One-Shot; None = datamodule's)
        self.finetune_spec: TrainDataSpec | None = None
        #: a One-Shot child of a trained parent: the whole run is the fine-tune phase
        self.finetune_only = False
        self._eval_rows: dict[str, list[dict[str, Tensor]]] = {"val": [], "test": []}
        self._plan: TrainingPlan | None = None
        self._epoch_started: float | None = None
        # log_train / log_train_metric: this step's values, the epoch's means and metrics (not submodules)
        self._step_logs: dict[str, tuple[Any, bool]] = {}
        self._epoch_means: dict[str, EpochMean] = {}
        self._epoch_logs: dict[str, tuple[Metric, bool, str | None]] = {}
        self._epoch_trained: float | None = None
        #: set by PredictionDepth during test: _eval_step then also returns the pooled "probes"
        self.collect_probes = False
        if channels_last:
            self.to(memory_format=torch.channels_last)

    # -- protocol -------------------------------------------------------------------------------
    def _prep(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(self._prep(x))

    def classify(self, x: Tensor) -> Tensor:
        return self.classifier(self.encode(x))

    def probe_features(self, x: Tensor) -> list[Tensor]:
        return self.encoder.probe_features(self._prep(x))

    def prunable_parameters(self, targets: str = "encoder") -> dict[str, nn.Parameter]:
        """The tensors of :data:`PRUNING_TARGETS` ``targets`` (default: the encoder's Conv2d and
        Linear weights), keyed by their ``named_parameters()`` names."""
        check_choice("targets", targets, PRUNING_TARGETS)
        out: dict[str, nn.Parameter] = {}
        roots = {"encoder": self.encoder} if targets != "network" else {"encoder": self.encoder, "classifier": self.classifier}
        if targets == "classifier":
            roots = {"classifier": self.classifier}
        for root_name, root in roots.items():
            for mod_name, module in root.named_modules():
                prefix = f"{root_name}.{mod_name}." if mod_name else f"{root_name}."
                if isinstance(module, nn.Conv2d):
                    out[prefix + "weight"] = module.weight
                elif isinstance(module, nn.Linear) and targets != "encoder_conv":
                    out[prefix + "weight"] = module.weight
                    if targets in ("network", "classifier") and module.bias is not None:
                        out[prefix + "bias"] = module.bias
        return out

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.classify(x)

    # -- phases ---------------------------------------------------------------------------------
    def phase_epochs(self, max_epochs: int) -> list[tuple[str, int]]:
        """The run's phases in training order with their epochs (they sum to ``max_epochs``)."""
        if self.finetune_only:
            return [("finetune", max_epochs)]
        return [("supervised", max_epochs - self.finetune_epochs), ("finetune", self.finetune_epochs)]

    @property
    def phase(self) -> str:
        """The phase of the current epoch (see :meth:`phase_epochs`)."""
        epoch, start = self.current_epoch, 0
        phases = [p for p in self.phase_epochs(self._max_epochs()) if p[1] > 0]
        for name, epochs in phases:
            if epoch < start + epochs:
                return name
            start += epochs
        return phases[-1][0]

    def train_data_specs(self) -> dict[str, TrainDataSpec | None]:
        """Per phase, the training data it needs (``None``: the datamodule's own arguments)."""
        return {"finetune": self.finetune_spec}

    def train_data_spec(self) -> TrainDataSpec | None:
        """The current phase's training data (called by the datamodule's ``train_dataloader``)."""
        return self.train_data_specs().get(self.phase)

    def training_plan(self, trainer: pl.Trainer | None = None, datamodule: Any = None) -> TrainingPlan:
        """Optimiser steps of every phase of this run, from the datamodule's loader sizes and the
        trainer's world size, ``limit_train_batches``, ``accumulate_grad_batches``, ``max_epochs``
        and ``max_steps`` (usable before ``fit``: ``cli.py`` checks pruning schedules with it)."""
        trainer = trainer or self.trainer
        datamodule = datamodule if datamodule is not None else trainer.datamodule
        max_epochs = int(trainer.max_epochs) if trainer.max_epochs is not None else 1
        specs = self.train_data_specs()
        phases = []
        for name, epochs in self.phase_epochs(max_epochs):
            if isinstance(datamodule, PlannedData):
                spec = specs.get(name) or datamodule.default_spec()
                batches = datamodule.batches_per_epoch(spec, trainer.world_size)
                batches = limited_batches(batches, trainer.limit_train_batches)
            else:  # plain dataloaders: one loader for every phase
                batches = int(trainer.num_training_batches)
            phases.append((name, epochs, optimizer_steps(batches, trainer.accumulate_grad_batches)))
        return TrainingPlan.build(phases, trainer.max_steps)

    def plan(self) -> TrainingPlan:
        """:meth:`training_plan` of the current fit (computed once per fit)."""
        if self._plan is None:
            self._plan = self.training_plan()
        return self._plan

    @override
    def on_fit_start(self) -> None:
        self._plan = None

    def phase_start_step(self, name: str) -> int | None:
        """Global step at which phase ``name`` starts in this run's plan (``None``: no such phase)."""
        phase = self.plan().phase(name)
        return None if phase is None else phase.first_step

    def _finetune_start_epoch(self) -> int:
        return self._max_epochs() - self.finetune_epochs

    def _max_epochs(self) -> int:
        trainer = self._trainer
        if trainer is None or trainer.max_epochs is None:
            raise RuntimeError("the run's length comes from trainer.max_epochs, which is not set")
        return int(trainer.max_epochs)

    # -- validation shared by all methods ------------------------------------------------------
    def check_fit_config(self, max_epochs: int | None, datamodule: Any = None) -> None:
        """Raise :class:`ConfigError` when this module cannot train for ``max_epochs`` on ``datamodule``.

        Called by the CLI before any logger or training starts, and again from ``setup("fit")``
        (after callbacks such as One-Shot have set ``finetune_epochs``).
        """
        if max_epochs is None or max_epochs < 1:
            raise ConfigError(
                f"trainer.max_epochs={max_epochs!r} is not allowed; it must be a whole number >= 1 "
                "(the run's length and every phase are counted from it)"
            )
        if self.finetune_only:
            if self.finetune_epochs != max_epochs:
                raise ConfigError(
                    f"trainer.max_epochs={max_epochs} must equal finetune_epochs={self.finetune_epochs} for a One-Shot "
                    "child of a trained parent (the whole run is the fine-tune); set both to the same number"
                )
        elif self.finetune_epochs >= max_epochs:
            raise ConfigError(f"finetune_epochs={self.finetune_epochs} must be below trainer.max_epochs={max_epochs}")

    @override
    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.check_fit_config(self.trainer.max_epochs, self.trainer.datamodule)

    # -- evaluation ----------------------------------------------------------------------------
    def _eval_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        probes: list[Tensor] | None = None
        if self.collect_probes:  # one pass gives h and the prediction-depth probes
            features, probes = self.encoder.forward_with_probes(self._prep(batch["image"]))
        else:
            features = self.encode(batch["image"])
        logits = self.classifier(features)
        out: dict[str, Any] = {"index": batch["index"], "label": batch["label"], "logits": logits.detach(), "features": features.detach()}
        if probes is not None:
            out["probes"] = [p.detach() for p in probes]
        return out

    def _eval_columns(self, stage: str) -> dict[str, torch.dtype]:
        """Per-sample columns kept from every eval batch (a subclass adds its own, e.g. a probe)."""
        return {"index": torch.long, "label": torch.long, "pred": torch.long, "loss": torch.float32}

    def _keep_eval_rows(self, stage: str, out: dict[str, Tensor], **extra: Tensor) -> None:
        """This rank's per-sample columns of one eval batch (index, label, prediction, loss, ...)."""
        rows = {
            "index": out["index"].detach().long().cpu(),
            "label": out["label"].detach().long().cpu(),
            "pred": out["logits"].argmax(dim=1).detach().cpu(),
            "loss": F.cross_entropy(out["logits"].float(), out["label"], reduction="none").detach().float().cpu(),
        }
        rows.update({k: v.detach().cpu() for k, v in extra.items()})
        self._eval_rows[stage].append(rows)

    def _gathered_eval_rows(self, stage: str) -> dict[str, Tensor] | None:
        """All ranks' rows of ``stage``, one per sample index (a collective; the same on every rank)."""
        parts, self._eval_rows[stage] = self._eval_rows[stage], []
        local = {
            name: torch.cat([p[name] for p in parts]).to(dtype) if parts else torch.zeros(0, dtype=dtype)
            for name, dtype in self._eval_columns(stage).items()
        }
        rows = gather_unique_rows(self.trainer, local)
        return rows if len(rows["index"]) else None

    @override
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        out = self._eval_step(batch)
        self._keep_eval_rows("val", out, **self._extra_val_columns(out))
        return out

    def _extra_val_columns(self, out: dict[str, Tensor]) -> dict[str, Tensor]:
        return {}

    @override
    def on_validation_epoch_end(self) -> None:
        rows = self._gathered_eval_rows("val")
        if rows is None:
            return
        if self._classifier_is_trained():
            self.log("val/loss", rows["loss"].mean().item())
            self.log("val/acc", (rows["pred"] == rows["label"]).float().mean().item())
        self._log_extra_val(rows)

    def _log_extra_val(self, rows: dict[str, Tensor]) -> None:
        pass

    @override
    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        out = self._eval_step(batch)
        self._keep_eval_rows("test", out)
        return out

    @override
    def on_test_epoch_end(self) -> None:
        rows = self._gathered_eval_rows("test")
        if rows is None:
            return
        correct = (rows["pred"] == rows["label"]).float()
        self.log("test/loss", rows["loss"].float().mean().item())
        self.log("test/acc", correct.mean().item())
        for k in range(self.num_classes):
            of_class = rows["label"] == k
            if bool(of_class.any()):
                self.log(f"test/acc_class_{k}", correct[of_class].mean().item())

    def _classifier_is_trained(self) -> bool:
        return True

    # -- train/eval mode per phase ---------------------------------------------------------------
    def frozen_modules(self) -> list[nn.Module]:
        """Modules held in eval mode (BatchNorm statistics fixed) in the current phase; all others
        train. Default: none (the fine-tune phase trains the whole network, as the authors'
        ``model.train()``)."""
        return []

    @override
    def train(self, mode: bool = True) -> RepresentationModule:
        # whoever puts the module in train mode (Lightning at fit start, a callback after an eval
        # pass of its own) leaves the current phase's frozen modules in eval mode; Lightning's
        # validation restores each submodule's mode as it found it
        super().train(mode)
        if mode and self._trainer is not None:
            for module in self.frozen_modules():
                module.eval()
        return self

    # -- logging from a training step ------------------------------------------------------------
    # Lightning's self.log costs ~0.5 ms of host time a call whatever the value (it walks its result
    # object's attributes to move them to the value's device), and a training step made 2-3 calls: on a
    # GPU, more than a small model's step. log_train and log_train_metric record the same things —
    # "<name>_step" at every step the loggers write (every log_every_n_steps, and at a stop),
    # "<name>_epoch" the epoch's batch-size-weighted mean synced over ranks, a Metric's epoch value —
    # with two device operations a step, calling self.log only when Lightning writes to the loggers.
    def log_train(self, name: str, value: Any, batch: Any, *, on_step: bool = True, on_epoch: bool = True, sync_dist: bool = True) -> None:
        """From ``training_step``: what ``self.log(name, value, on_step=..., on_epoch=..., sync_dist=...)``
        records (names ``<name>_step`` / ``<name>_epoch`` when both, else ``name``)."""
        if on_step:
            self._step_logs[f"{name}_step" if on_epoch else name] = (value.detach() if isinstance(value, Tensor) else value, sync_dist)
        if on_epoch:
            epoch_name = f"{name}_epoch" if on_step else name
            mean = self._epoch_means.get(epoch_name)
            if mean is None:
                mean = self._epoch_means[epoch_name] = EpochMean().to(value.device)
            mean.update(value.detach(), extract_batch_size(batch))
            self._epoch_logs[epoch_name] = (mean, False, f"_epoch_means[{epoch_name!r}]")  # not an attribute Lightning can find

    def log_train_metric(self, name: str, metric: Metric, *, prog_bar: bool = False) -> None:
        """From ``training_step``: ``self.log(name, metric, on_step=False, on_epoch=True)`` (the
        metric updated by the caller), logged once at the epoch's end."""
        self._epoch_logs[name] = (metric, prog_bar, None)

    def _write_step_logs(self) -> None:
        trainer = self.trainer
        if not self._step_logs or not trainer._logger_connector.should_update_logs:
            return
        # every log_every_n_steps the loggers write on every rank: sync as asked; at a stop between
        # those steps (trainer.should_stop) a collective could wait for a rank that is not stopping
        every = trainer.log_every_n_steps
        periodic = every > 0 and (trainer.fit_loop.epoch_loop._batches_that_stepped + 1) % every == 0
        for name, (value, sync_dist) in self._step_logs.items():
            self.log(name, value, on_step=True, on_epoch=False, sync_dist=sync_dist and periodic)

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._write_step_logs()
        self._step_logs.clear()

    # -- timing --------------------------------------------------------------------------------
    # train/epoch_time_s: the whole epoch (training, then validation); train/epoch_train_time_s: its
    # training batches alone (until the epoch's first validation starts, or its end)
    @override
    def on_train_epoch_start(self) -> None:
        # phases change at epoch starts: the head phase freezes part of the module, the next phase
        # must not find it frozen (once an epoch, not at every batch: ~0.2 ms of host time a step)
        self.train()
        self._epoch_started = time.perf_counter()
        self._epoch_trained = None

    @override
    def on_validation_epoch_start(self) -> None:
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking and self._epoch_started and self._epoch_trained is None:
            self._epoch_trained = time.perf_counter()

    @override
    def on_train_epoch_end(self) -> None:
        for name, (metric, prog_bar, attribute) in self._epoch_logs.items():  # Lightning computes, syncs and resets them
            self.log(name, metric, on_step=False, on_epoch=True, prog_bar=prog_bar, metric_attribute=attribute)
        self._epoch_logs.clear()
        if self._epoch_started is not None:
            now = time.perf_counter()
            trained = self._epoch_trained or now
            self.log("train/epoch_time_s", now - self._epoch_started, sync_dist=True)
            self.log("train/epoch_train_time_s", trained - self._epoch_started, sync_dist=True)

    def run_summary(self, trainer: pl.Trainer | None, pl_module: pl.LightningModule | None) -> dict[str, Any]:
        return {
            "method": self.method,
            "backbone": self.hparams.get("backbone"),
            "encoder_parameters": sum(p.numel() for p in self.encoder.parameters()),
        }

