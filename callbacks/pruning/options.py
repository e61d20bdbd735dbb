"""The mask options every pruning schedule shares, in one validated object.

A schedule says *when* and *to what sparsity* the masks change; :class:`MaskOptions` says *which*
weights a mask keeps: the largest |w| over all prunable tensors or per tensor (``scope``), single
weights, N:M groups or whole filters (``granularity`` with ``n``/``m``/``norm``), what to do with a
tensor N:M cannot divide, a per-tensor density floor, and which tensors are pruned (``targets``).

The options are validated once, here, when a callback is built: a bad value is a one-line
:class:`~common.errors.ConfigError` naming the parameter and the allowed values, before any
training. The command line keeps giving them one by one (``--pruning.init_args.scope layerwise``):
:class:`~callbacks.pruning.base.PruningCallback` takes them as plain keyword arguments (that is what
jsonargparse reads) and builds this object from them; the schedules pass theirs through
``**kwargs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from common.errors import check_choice
from lightning_modules.base import PRUNING_TARGETS
from sparsity.masks import compute_masks, validate_mask_options

#: what to do with a weight N:M cannot divide (its input channels are not a multiple of ``m``)
NM_INDIVISIBLE = ("error", "skip")


@dataclass(frozen=True)
class MaskOptions:
    """How masks are chosen (see :class:`~callbacks.pruning.base.PruningCallback` for each field).

    Raises:
        ConfigError: an impossible value or combination (one line; checked in the order the
            fields are listed, targets first).
    """

    final_sparsity: float
    scope: str = "global"
    granularity: str = "unstructured"
    n: int = 2
    m: int = 4
    norm: int = 1
    nm_indivisible: str = "error"
    min_layer_density: float = 0.0
    targets: str = "encoder"

    def __post_init__(self) -> None:
        check_choice("targets", self.targets, PRUNING_TARGETS)
        validate_mask_options(
            sparsity=self.final_sparsity, scope=self.scope, granularity=self.granularity, n=self.n, m=self.m,
            norm=self.norm, min_layer_density=self.min_layer_density,
        )  # fmt: skip
        check_choice("nm_indivisible", self.nm_indivisible, NM_INDIVISIBLE)
        # a frozen dataclass: normalise the numbers once (YAML may give an int for a float)
        object.__setattr__(self, "final_sparsity", float(self.final_sparsity))
        object.__setattr__(self, "min_layer_density", float(self.min_layer_density))

    def compute(
        self,
        weights: Mapping[str, Tensor],
        sparsity: float,
        *,
        current_masks: Mapping[str, Tensor] | None = None,
        allow_regrowth: bool = False,
    ) -> dict[str, Tensor]:
        """Masks for ``sparsity`` from ``weights`` (or scores) under these options
        (:func:`sparsity.masks.compute_masks`)."""
        return compute_masks(
            weights, sparsity, scope=self.scope, granularity=self.granularity, n=self.n, m=self.m, norm=self.norm,
            current_masks=current_masks, min_layer_density=self.min_layer_density, allow_regrowth=allow_regrowth,
        )  # fmt: skip


__all__ = ["MaskOptions", "NM_INDIVISIBLE"]
