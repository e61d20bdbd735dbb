"""What the rooms of the project ask of each other, declared once as :class:`typing.Protocol`\\ s.

Callbacks work with any LightningModule and DataModule that offer what they need; the project's
own are :class:`lightning_modules.base.RepresentationModule` and
:class:`datamodules.base.ImageDataModule`. What "offer" means is written here instead of being
duck-typed at each call site:

* :class:`Representation` — ``encode``/``classify``/``probe_features``/``prunable_parameters``: what
  the metric and pruning callbacks call on a module (``lightning_modules/base.py`` documents each);
  :class:`Probed` is its ``probe_features`` alone (prediction depth), :class:`HasEncoder` the one
  ``encoder`` module (``torch.compile``), :class:`ProbesFromTestStep` a ``test_step`` that can
  return the probes;
* :class:`MomentumPairs` — a momentum (target) encoder kept in step with the online one (BYOL):
  ``target_pairs`` and ``momentum_update``, used by SyncCP;
* :class:`PlannedModule` — a module that knows its phases and their optimiser steps
  (``train_data_specs``, ``train_data_spec``, ``training_plan``, ``plan``, ``check_fit_config``);
* :class:`PlannedData` — a datamodule that serves each phase its own loader and can count its
  batches before ``fit`` (``views``, ``default_spec``, ``batches_per_epoch``);
* :class:`ProbeData` — a datamodule with the training bank prediction depth fits its k-NN on;
* :class:`NamedClasses` — a datamodule that names its classes (plots and per-class keys);
* :class:`RunSummaryContributor` — anything that adds keys to ``run.json``: the module, the
  datamodule and every callback, all with the one signature ``run_summary(trainer, pl_module)``;
* :class:`ReportsCompletion` — a callback that can say why a run did not finish what it was asked
  (a pruning schedule that did not reach its end): the run's status is then ``incomplete``.

A callback checks what it needs once, in ``setup``, with :func:`require`: a missing capability is a
one-line :class:`~common.errors.ConfigError` (exit 2 from the CLI) naming the callback, the object
and the missing methods, not an ``AttributeError`` deep in a hook. The protocols are
``runtime_checkable``, so ``isinstance(obj, Protocol)`` answers "does it offer this?" where a
capability is optional. Plain typing, no Lightning import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from common.errors import ConfigError


@runtime_checkable
class Probed(Protocol):
    """A module that returns its pooled hidden representations (prediction depth's probes)."""

    def probe_features(self, x: Tensor) -> list[Tensor]: ...


@runtime_checkable
class ProbesFromTestStep(Protocol):
    """A module whose ``test_step`` also returns the probes when ``collect_probes`` is set (one
    forward pass gives the predictions and prediction depth's probes)."""

    collect_probes: bool


@runtime_checkable
class Representation(Probed, Protocol):
    """A module with a representation, a classifier, probes and the tensors a pruning callback may prune."""

    def encode(self, x: Tensor) -> Tensor: ...

    def classify(self, x: Tensor) -> Tensor: ...

    def prunable_parameters(self, targets: str = "encoder") -> dict[str, nn.Parameter]: ...


@runtime_checkable
class HasEncoder(Protocol):
    """A module whose encoder is one ``nn.Module`` (``torch.compile`` compiles it)."""

    encoder: nn.Module


# -- single capabilities (what one pruning callback asks; callbacks/pruning/module_api.py) ------
@runtime_checkable
class Prunable(Protocol):
    """A module with the tensors a pruning callback may prune."""

    def prunable_parameters(self, targets: str = "encoder") -> dict[str, nn.Parameter]: ...


@runtime_checkable
class Encodes(Protocol):
    """A module with the encoder's forward pass (the training-FLOPs meter runs it once)."""

    def encode(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class HasTargetPairs(Protocol):
    """A module with a momentum (target) encoder, named by its online parameters."""

    def target_pairs(self) -> dict[str, nn.Parameter]: ...


@runtime_checkable
class HasPlan(Protocol):
    """A module that knows the optimiser steps of its run's phases."""

    def plan(self) -> Any: ...


@runtime_checkable
class HasPretrainEnd(Protocol):
    """A phased module: the optimiser step at which its pretraining phase ends."""

    def pretrain_end_step(self) -> int: ...


@runtime_checkable
class FineTunable(Protocol):
    """A module that can run One-Shot's fine-tune phase (the callback sets ``finetune_epochs``)."""

    finetune_epochs: int


@runtime_checkable
class ChecksFitConfig(Protocol):
    """A module that checks its own arguments against the run's length."""

    def check_fit_config(self, max_epochs: int | None, datamodule: Any = None) -> None: ...


@runtime_checkable
class ChecksFit(Protocol):
    """A callback that can tell, once the Trainer exists and before anything is written, whether it
    can run this fit (``training/lightning_cli.py`` calls it; it raises a one-line ``ConfigError``)."""

    def check_fit(self, trainer: Any, pl_module: Any) -> None: ...


@runtime_checkable
class MomentumPairs(Protocol):
    """A momentum encoder: ``target_pairs()`` maps each online parameter's name to its target copy."""

    def target_pairs(self) -> dict[str, nn.Parameter]: ...

    def momentum_update(self, tau: float) -> None: ...


@runtime_checkable
class PlannedModule(Protocol):
    """A module whose phases, loaders and optimiser steps are known before ``fit``."""

    def train_data_specs(self) -> dict[str, Any]: ...

    def train_data_spec(self) -> Any: ...

    def training_plan(self, trainer: Any = None, datamodule: Any = None) -> Any: ...

    def plan(self) -> Any: ...

    def check_fit_config(self, max_epochs: int | None, datamodule: Any = None) -> None: ...


@runtime_checkable
class PlannedData(Protocol):
    """A datamodule that builds each phase's loader from a spec (``views`` per sample by default)
    and counts its batches."""

    views: int

    def default_spec(self) -> Any: ...

    def batches_per_epoch(self, spec: Any, world_size: int = 1) -> int: ...


@runtime_checkable
class ProbeData(Protocol):
    """A datamodule with the training bank of prediction depth."""

    def probe_train_dataloader(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class NamedClasses(Protocol):
    """A datamodule that names its classes (``None`` until known)."""

    class_names: Sequence[str] | None


@runtime_checkable
class RunSummaryContributor(Protocol):
    """Adds keys to ``run.json`` at the end of fit and test."""

    def run_summary(self, trainer: Any, pl_module: Any) -> dict[str, Any]: ...


@runtime_checkable
class ReportsCompletion(Protocol):
    """``unfinished_reason`` is ``None`` when the callback's part of the run is done, else why not."""

    def unfinished_reason(self, trainer: Any, pl_module: Any) -> str | None: ...


def protocol_members(protocol: type) -> list[str]:
    """The public methods and attributes ``protocol`` declares, its own first, then those of the
    protocols it extends (in declaration order)."""
    names: list[str] = []
    for klass in protocol.__mro__:
        if klass is Protocol or klass is object or not getattr(klass, "_is_protocol", False):
            continue
        names += list(vars(klass).get("__annotations__", {}))
        names += [n for n, v in vars(klass).items() if callable(v)]
    return [n for n in dict.fromkeys(names) if not n.startswith("_")]


def missing_members(obj: Any, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``obj`` lacks (empty: ``obj`` offers it)."""
    return [name for name in protocol_members(protocol) if not hasattr(obj, name)]


def require(obj: Any, protocol: type, *, needed_by: str, role: str) -> None:
    """Raise a one-line :class:`ConfigError` unless ``obj`` offers every member of ``protocol``.

    ``needed_by`` names who asks (``"callbacks PredictionDepth"``), ``role`` what ``obj`` is
    (``"model"``, ``"data"``).

    Raises:
        ConfigError: ``obj`` is ``None`` or lacks a member; the message names them all.
    """
    if obj is None:
        raise ConfigError(f"{needed_by} needs a {role} ({protocol.__name__}); none is attached to the trainer")
    missing = missing_members(obj, protocol)
    if missing:
        raise ConfigError(
            f"{needed_by} needs a {role} offering {protocol.__name__} "
            f"({', '.join(protocol_members(protocol))}); {type(obj).__name__} lacks {', '.join(missing)}"
        )


__all__ = [
    "ChecksFitConfig",
    "Encodes",
    "FineTunable",
    "HasEncoder",
    "HasPlan",
    "HasPretrainEnd",
    "HasTargetPairs",
    "MomentumPairs",
    "NamedClasses",
    "PlannedData",
    "PlannedModule",
    "ProbeData",
    "Probed",
    "ProbesFromTestStep",
    "Prunable",
    "ReportsCompletion",
    "Representation",
    "RunSummaryContributor",
    "missing_members",
    "protocol_members",
    "require",
]
