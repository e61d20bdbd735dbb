"""What the pruning callbacks ask of the LightningModule, in one place.

The callbacks work with any LightningModule that offers what a schedule needs, and look for each
capability by name: the parameters to prune, a momentum encoder's pairs, the encoder's forward
pass (for the FLOPs), the run's :class:`~lightning_modules.plan.TrainingPlan` and current phase,
the end of pretraining, One-Shot's fine-tune hooks and BYOL's momentum update. Every such look-up
is one function here, with the answer for a module that lacks the capability; the capabilities
are the single-method protocols of :mod:`common.protocols` (``Prunable``, ``HasTargetPairs``,
``Encodes``, ``HasPlan``, ``HasPretrainEnd``, ``FineTunable``, ``ChecksFitConfig``); what is left
here as ``getattr`` reads plain attributes with a default (``phase``, ``method``, BYOL's ``tau``
and ``last_momentum_update_step``). Nothing else in :mod:`callbacks.pruning` inspects the module. (The project's modules
are :class:`lightning_modules.base.RepresentationModule` and its subclasses.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from common.errors import ConfigError
from common.protocols import ChecksFitConfig, Encodes, FineTunable, HasPlan, HasPretrainEnd, HasTargetPairs, Prunable


def prunable_parameters(pl_module: Any, targets: str = "encoder", *, caller: str) -> dict[str, nn.Parameter]:
    """``pl_module.prunable_parameters(targets)`` (called without arguments for the default
    ``"encoder"``, so a module may define it without the ``targets`` parameter).

    Raises:
        ConfigError: the module has no ``prunable_parameters`` (``caller`` names who needs it).
    """
    if not isinstance(pl_module, Prunable):
        raise ConfigError(f"{caller} needs model.prunable_parameters(); {type(pl_module).__name__} does not define it")
    return dict(pl_module.prunable_parameters(targets)) if targets != "encoder" else dict(pl_module.prunable_parameters())


def has_momentum_encoder(pl_module: Any) -> bool:
    """Whether the module has a momentum (target) encoder: it defines ``target_pairs()``."""
    return isinstance(pl_module, HasTargetPairs)


def target_pairs(pl_module: Any) -> dict[str, nn.Parameter]:
    """``{online parameter name: target parameter}`` of a momentum encoder; ``{}`` without one."""
    return dict(pl_module.target_pairs()) if isinstance(pl_module, HasTargetPairs) else {}


def encoder_forward(pl_module: Any) -> Callable[[Tensor], Any] | None:
    """The module's ``encode(x)`` (the prunable encoder's forward pass), or None."""
    return pl_module.encode if isinstance(pl_module, Encodes) else None


def training_plan(pl_module: Any) -> Any:
    """``pl_module.plan()``, the run's :class:`~lightning_modules.plan.TrainingPlan`, or None when the
    module has no ``plan()`` (or ``pl_module`` is None)."""
    return pl_module.plan() if isinstance(pl_module, HasPlan) else None


def phase(pl_module: Any) -> str | None:
    """The module's current phase (``"contrastive"``, ``"head"``, ...), or None when it has none or
    cannot tell yet."""
    try:
        return str(pl_module.phase)
    except (AttributeError, NotImplementedError, RuntimeError):
        return None


def phase_attribute(pl_module: Any) -> Any:
    """The module's ``phase`` attribute as it is, None when it has none; unlike :func:`phase`, a
    module that cannot tell its phase raises (the classifier schedule needs the real answer)."""
    return getattr(pl_module, "phase", None)


def pretrain_end_step(pl_module: Any) -> int | None:
    """Optimiser step at which the module's pretraining phase ends (the SSL modules), or None."""
    return int(pl_module.pretrain_end_step()) if isinstance(pl_module, HasPretrainEnd) else None


def method(pl_module: Any) -> str | None:
    """The module's method name as run.json writes it (``"sup"``, ``"byol"``, ...), or None."""
    return getattr(pl_module, "method", None)


def has_finetune_phase(pl_module: Any) -> bool:
    """Whether the module can run One-Shot's fine-tune phase (it has ``finetune_epochs``)."""
    return isinstance(pl_module, FineTunable)


def check_fit_config(pl_module: Any, max_epochs: int | None) -> None:
    """The module's own ``check_fit_config(max_epochs, None)``, if it has one (raises ConfigError)."""
    if isinstance(pl_module, ChecksFitConfig):
        pl_module.check_fit_config(max_epochs, None)


def last_momentum_update_step(pl_module: Any) -> int | None:
    """Optimiser step of the module's last momentum (EMA) update, or None."""
    return getattr(pl_module, "last_momentum_update_step", None)


def momentum_tau(pl_module: Any) -> float:
    """EMA coefficient of the module's last momentum update (1.0: the target did not move)."""
    return float(getattr(pl_module, "tau", 1.0))


__all__ = [
    "check_fit_config",
    "encoder_forward",
    "has_finetune_phase",
    "has_momentum_encoder",
    "last_momentum_update_step",
    "method",
    "momentum_tau",
    "phase",
    "phase_attribute",
    "pretrain_end_step",
    "prunable_parameters",
    "target_pairs",
    "training_plan",
]
