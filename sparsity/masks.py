"""Pruning masks from weight magnitudes: global, layer-wise, N:M and whole-channel.

Pure tensor maths, no Lightning import. Every function takes ``tensors: dict[name, Tensor]`` (the
weights to prune, e.g. ``{"encoder.conv1.weight": Tensor[out, in, kh, kw]}``) and returns
``dict[name, BoolTensor]`` of the same shapes, **True = kept**, False = pruned.

Two rules hold everywhere:

* **Exact counts, deterministic ties.** "Prune the ``k`` smallest" prunes exactly ``k`` entries even
  when several weights share the threshold magnitude (e.g. many exact zeros): ties are broken by
  position (flattened order, tensors in dict order). The same inputs give the same masks on every
  process, which is what DDP needs.
* **No revival.** With ``current_masks`` given, an entry that is already pruned stays pruned (it is
  ranked below every live weight, and the result is ANDed with the current mask) unless
  ``allow_regrowth=True``. For a non-decreasing schedule the zero count is then exactly the requested
  one; if a *lower* sparsity is requested, the already-pruned entries are kept pruned and the result
  has more zeros than asked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from common.errors import ConfigError, check_choice, check_range
from sparsity.selection import Masks, _check_same_keys, _finish, _keep_all_but_smallest, _scores
from sparsity.structured import NORMS, channel_masks, nm_masks

SCOPES = ("global", "layerwise")
GRANULARITIES = ("unstructured", "nm", "channel")


# --------------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------------
def _zeros_and_size(x: Tensor) -> tuple[int, int]:
    """Pruned entries of a bool mask (False) or zero entries of a weight tensor, and its size."""
    zeros = int((~x).sum()) if x.dtype == torch.bool else int((x == 0).sum())
    return zeros, x.numel()


def sparsity_of(x: Tensor | Mapping[str, Tensor]) -> float:
    """Fraction of zeros in ``[0, 1]``: ``zeros / size`` over one tensor or all tensors of a dict.

    Works for weights (counts exact zeros) and for bool masks (counts False = pruned). This is the
    reported sparsity of REFERENCE §2 when given the prunable weights.
    """
    items = [x] if isinstance(x, Tensor) else list(x.values())
    zeros = size = 0
    for t in items:
        z, n = _zeros_and_size(t)
        zeros += z
        size += n
    return zeros / size if size else 0.0


def layer_sparsities(tensors: Mapping[str, Tensor]) -> dict[str, float]:
    """Per-tensor :func:`sparsity_of`, keyed like the input."""
    return {name: sparsity_of(t) for name, t in tensors.items()}


# --------------------------------------------------------------------------------------------------
# validation shared by the callbacks
# --------------------------------------------------------------------------------------------------
def validate_mask_options(
    *, sparsity: float, scope: str, granularity: str, n: int, m: int, norm: int, min_layer_density: float
) -> None:
    """Raise :class:`ConfigError` (one line) for an impossible combination of mask options.

    ``sparsity`` is the largest sparsity that will be asked for (a schedule's ``final_sparsity``).
    """
    check_range("final_sparsity", sparsity, low=0.0, high=1.0, high_inclusive=False)
    check_choice("scope", scope, SCOPES)
    check_choice("granularity", granularity, GRANULARITIES)
    check_choice("norm", norm, NORMS)
    check_range("min_layer_density", min_layer_density, low=0.0, high=1.0 - sparsity)
    if granularity == "nm":
        check_range("m", m, low=1)
        check_range("n", n, low=1, high=m)
        if sparsity > 1.0 - n / m + 1e-12:
            raise ConfigError(
                f"final_sparsity={sparsity!r} is out of range for granularity='nm' with n={n}, m={m}; "
                f"it must be in [0, {1 - n / m:g}] (1 - n/m gives the exact {n}:{m} pattern)"
            )
    if granularity == "channel" and scope != "layerwise":
        raise ConfigError(
            f"scope={scope!r} is not allowed with granularity='channel'; choose 'layerwise' "
            "(filter norms of different layers are not comparable)"
        )


# --------------------------------------------------------------------------------------------------
# unstructured
# --------------------------------------------------------------------------------------------------
def global_magnitude_masks(
    tensors: Mapping[str, Tensor],
    sparsity: float,
    *,
    current_masks: Mapping[str, Tensor] | None = None,
    allow_regrowth: bool = False,
    min_layer_density: float = 0.0,
    candidates: Mapping[str, Tensor] | None = None,
) -> Masks:
    """One |w| threshold across all tensors; exactly ``round(sparsity * total)`` entries pruned.

    Args:
        tensors: ``name -> weight`` (any shapes, one device).
        sparsity: fraction of all entries to prune, in ``[0, 1)``.
        current_masks: masks in force; their pruned entries stay pruned (see module docstring).
        allow_regrowth: rank pruned entries by |w| like the others (they may come back).
        min_layer_density: each tensor keeps at least ``ceil(min_layer_density * numel)`` entries (its
            largest |w|); the rest of the budget is taken globally, so the total is still exact.
        candidates: if given, only entries True here may be newly pruned (used for N:M).
    """
    check_range("sparsity", sparsity, low=0.0, high=1.0, high_inclusive=False)
    check_range("min_layer_density", min_layer_density, low=0.0, high=1.0)
    _check_same_keys(tensors, current_masks, "current_masks")
    _check_same_keys(tensors, candidates, "candidates")
    if not tensors:
        return {}
    names = list(tensors)
    scores = _scores(tensors, current_masks, allow_regrowth)
    total = sum(t.numel() for t in tensors.values())
    n_prune = round(sparsity * total)

    if min_layer_density > 0.0:
        protected_total = sum(math.ceil(min_layer_density * t.numel() - 1e-9) for t in tensors.values())
        if protected_total > total - n_prune:
            raise ConfigError(
                f"min_layer_density={min_layer_density!r} cannot be met at sparsity={sparsity!r}; "
                f"it must be in [0, {1 - sparsity:g}]"
            )
        for name in names:
            s = scores[name].flatten()
            keep_min = math.ceil(min_layer_density * s.numel() - 1e-9)
            # the keep_min largest scores of this tensor are protected from global pruning
            protected = _keep_all_but_smallest(s, s.numel() - keep_min)
            scores[name] = s.masked_fill(protected, math.inf).view_as(scores[name])

    if candidates is not None:
        for name in names:
            s = scores[name]
            blocked = ~candidates[name].to(s.device) & (s >= 0)  # already-pruned (-1) stay prunable
            scores[name] = s.masked_fill(blocked, math.inf)

    flat = torch.cat([scores[name].flatten() for name in names])
    keep_flat = _keep_all_but_smallest(flat, n_prune)
    keep: Masks = {}
    offset = 0
    for name in names:
        numel = tensors[name].numel()
        keep[name] = keep_flat[offset : offset + numel].view(tensors[name].shape)
        offset += numel
    return _finish(keep, current_masks, allow_regrowth)


def layerwise_magnitude_masks(
    tensors: Mapping[str, Tensor],
    sparsity: float,
    *,
    current_masks: Mapping[str, Tensor] | None = None,
    allow_regrowth: bool = False,
    candidates: Mapping[str, Tensor] | None = None,
) -> Masks:
    """The same sparsity in every tensor: exactly ``round(sparsity * numel)`` pruned per tensor.

    Arguments as :func:`global_magnitude_masks`; each tensor gets its own threshold.
    """
    check_range("sparsity", sparsity, low=0.0, high=1.0, high_inclusive=False)
    _check_same_keys(tensors, current_masks, "current_masks")
    _check_same_keys(tensors, candidates, "candidates")
    out: Masks = {}
    for name, w in tensors.items():
        one = {name: w}
        out.update(
            global_magnitude_masks(
                one,
                sparsity,
                current_masks=None if current_masks is None else {name: current_masks[name]},
                allow_regrowth=allow_regrowth,
                candidates=None if candidates is None else {name: candidates[name]},
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# one entry point for the callbacks
# --------------------------------------------------------------------------------------------------
def compute_masks(
    tensors: Mapping[str, Tensor],
    sparsity: float,
    *,
    scope: str = "global",
    granularity: str = "unstructured",
    n: int = 2,
    m: int = 4,
    norm: int = 1,
    current_masks: Mapping[str, Tensor] | None = None,
    min_layer_density: float = 0.0,
    allow_regrowth: bool = False,
) -> Masks:
    """Masks for ``sparsity`` under one ``scope`` x ``granularity`` choice.

    * ``unstructured``: :func:`global_magnitude_masks` or :func:`layerwise_magnitude_masks`.
    * ``nm``: only the weights an exact N:M mask would drop are candidates, and among them the
      smallest |w| are pruned (globally or per tensor) up to ``sparsity``. Every intermediate mask
      keeps at least ``n`` per group; at ``sparsity = 1 - n/m`` the mask is exactly N:M. This is how a
      gradual schedule reaches an N:M pattern.
    * ``channel``: :func:`channel_masks` (layer-wise only).
    """
    validate_mask_options(
        sparsity=sparsity, scope=scope, granularity=granularity, n=n, m=m, norm=norm,
        min_layer_density=min_layer_density,
    )
    kwargs: dict[str, Any] = {"current_masks": current_masks, "allow_regrowth": allow_regrowth}
    if granularity == "channel":
        return channel_masks(tensors, sparsity, norm, **kwargs)
    candidates = None
    if granularity == "nm":
        candidates = {k: ~v for k, v in nm_masks(tensors, n, m, **kwargs).items()}
    if scope == "global":
        return global_magnitude_masks(
            tensors, sparsity, min_layer_density=min_layer_density, candidates=candidates, **kwargs
        )
    return layerwise_magnitude_masks(tensors, sparsity, candidates=candidates, **kwargs)
