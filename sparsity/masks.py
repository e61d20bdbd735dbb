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

Masks = dict[str, Tensor]

SCOPES = ("global", "layerwise")
GRANULARITIES = ("unstructured", "nm", "channel")
NORMS = (1, 2)


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
# core: prune exactly k smallest scores
# --------------------------------------------------------------------------------------------------
def _score_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _scores(
    tensors: Mapping[str, Tensor], current_masks: Mapping[str, Tensor] | None, allow_regrowth: bool
) -> dict[str, Tensor]:
    """|w| as float32 (float64 stays), with already-pruned entries set to -1 (below every |w|)."""
    scores: dict[str, Tensor] = {}
    for name, w in tensors.items():
        s = w.detach().abs().to(_score_dtype(w))
        if current_masks is not None and not allow_regrowth:
            s = s.masked_fill(~current_masks[name].to(s.device), -1.0)
        scores[name] = s
    return scores


def _keep_all_but_smallest(scores: Tensor, k: int) -> Tensor:
    """Bool mask over flat ``scores`` that is False at exactly ``k`` smallest entries.

    ``+inf`` entries are never pruned (``k`` is capped at the number of finite entries). Ties at the
    threshold are broken by position: the first ones in flat order are pruned. One selection
    (``kthvalue``) instead of a full sort, so it is O(numel).
    """
    keep = torch.ones_like(scores, dtype=torch.bool)
    k = min(int(k), int(torch.isfinite(scores).sum()))
    if k <= 0:
        return keep
    threshold = scores.kthvalue(k).values
    below = scores < threshold
    keep &= ~below
    missing = k - int(below.sum())
    ties = (scores == threshold).nonzero().flatten()[:missing]
    keep[ties] = False
    return keep


def _check_same_keys(tensors: Mapping[str, Tensor], other: Mapping[str, Tensor] | None, what: str) -> None:
    if other is None:
        return
    missing = [k for k in tensors if k not in other]
    if missing:
        raise ValueError(f"{what} has no entry for {missing[0]!r}")
    for name, t in tensors.items():
        if tuple(other[name].shape) != tuple(t.shape):
            raise ValueError(f"{what}[{name!r}] has shape {tuple(other[name].shape)}, expected {tuple(t.shape)}")


def _finish(keep: Masks, current_masks: Mapping[str, Tensor] | None, allow_regrowth: bool) -> Masks:
    """AND with the current masks (no revival) unless regrowth is allowed."""
    if current_masks is None or allow_regrowth:
        return keep
    return {name: k & current_masks[name].to(k.device) for name, k in keep.items()}


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
# N:M fine-grained
# --------------------------------------------------------------------------------------------------
def nm_indivisible(tensors: Mapping[str, Tensor], m: int) -> list[str]:
    """Names of tensors whose input-channel axis (dim 1) is not a multiple of ``m`` (or is missing)."""
    return [name for name, w in tensors.items() if w.dim() < 2 or w.shape[1] % m != 0]


def nm_masks(
    tensors: Mapping[str, Tensor],
    n: int,
    m: int,
    *,
    current_masks: Mapping[str, Tensor] | None = None,
    allow_regrowth: bool = False,
) -> Masks:
    """N:M masks: in every group of ``m`` consecutive weights along the input-channel axis keep the
    ``n`` largest |w|.

    The input-channel axis is dim 1 of a Conv2d weight ``[out, in, kh, kw]`` or a Linear weight
    ``[out, in]``; a group is ``m`` consecutive input channels at one (output channel, kh, kw)
    position (the layout sparse tensor cores use for 2:4). Ties keep the lower input channel.
    Already-pruned weights rank lowest in their group and stay pruned (a group may then keep fewer
    than ``n``). Sparsity of the result: ``1 - n/m`` when nothing was pruned before.

    Raises:
        ConfigError: ``n > m``, or ``m`` does not divide a tensor's input channels.
    """
    check_range("m", m, low=1)
    check_range("n", n, low=1, high=m)
    _check_same_keys(tensors, current_masks, "current_masks")
    bad = nm_indivisible(tensors, m)
    if bad:
        w = tensors[bad[0]]
        channels = w.shape[1] if w.dim() >= 2 else None
        raise ConfigError(
            f"m={m} does not divide the input channels of {bad[0]} (shape {list(w.shape)}, "
            f"{channels} input channels); m must divide dim 1 of every pruned weight"
        )
    scores = _scores(tensors, current_masks, allow_regrowth)
    keep: Masks = {}
    for name in tensors:
        s = scores[name].movedim(1, -1)  # [out, *kernel, in]: groups are consecutive in memory
        grouped = s.reshape(-1, m)
        order = torch.argsort(grouped, dim=1, descending=True, stable=True)
        kept = torch.zeros_like(grouped, dtype=torch.bool)
        kept.scatter_(1, order[:, :n], True)
        keep[name] = kept.reshape(s.shape).movedim(-1, 1).contiguous()
    return _finish(keep, current_masks, allow_regrowth)


# --------------------------------------------------------------------------------------------------
# structured: whole output filters
# --------------------------------------------------------------------------------------------------
def channel_masks(
    tensors: Mapping[str, Tensor],
    sparsity: float,
    norm: int = 1,
    *,
    current_masks: Mapping[str, Tensor] | None = None,
    allow_regrowth: bool = False,
) -> Masks:
    """Prune whole output filters (dim 0) with the smallest L1 or L2 norm, per tensor.

    In each tensor exactly ``round(sparsity * out_channels)`` filters are pruned, so its sparsity is
    that count over ``out_channels`` (a multiple of ``1/out_channels``, not exactly ``sparsity``).
    Norms are taken of the masked weights; a filter already fully pruned ranks lowest and stays
    pruned. Ties keep the higher filter index (the first ones in order are pruned).
    """
    check_range("sparsity", sparsity, low=0.0, high=1.0, high_inclusive=False)
    check_choice("norm", norm, NORMS)
    _check_same_keys(tensors, current_masks, "current_masks")
    keep: Masks = {}
    for name, w in tensors.items():
        flat = w.detach().to(_score_dtype(w)).reshape(w.shape[0], -1)
        if current_masks is not None:
            flat = flat * current_masks[name].to(flat.device).reshape(w.shape[0], -1)
        score = flat.norm(p=norm, dim=1)
        if current_masks is not None and not allow_regrowth:
            dead = ~current_masks[name].to(flat.device).reshape(w.shape[0], -1).any(dim=1)
            score = score.masked_fill(dead, -1.0)
        kept_filters = _keep_all_but_smallest(score, round(sparsity * w.shape[0]))
        keep[name] = kept_filters.view(-1, *([1] * (w.dim() - 1))).expand(w.shape).contiguous()
    return _finish(keep, current_masks, allow_regrowth)


# --------------------------------------------------------------------------------------------------
# random Erdős–Rényi-Kernel (ERK) masks: a sparse start (SyncCP, RigL)
# --------------------------------------------------------------------------------------------------
def erk_densities(shapes: Mapping[str, tuple[int, ...]], density: float, *, power: float = 1.0) -> dict[str, float]:
    """Per-tensor densities of the ERK distribution with overall ``density`` (Evci et al. 2020).

    A tensor of shape ``[n_out, n_in, k_h, k_w]`` gets density ``eps * (sum(shape) / prod(shape)) ** power``
    with one ``eps`` for all tensors, chosen so that the kept count over all tensors is ``density *
    total``; a tensor whose density would exceed 1 is made dense and ``eps`` recomputed for the rest
    (as solo-learn-sparse's ``Mask.init``). ``density`` in ``(0, 1]``.
    """
    check_range("density", density, low=0.0, high=1.0, low_inclusive=False)
    total = sum(math.prod(s) for s in shapes.values())
    dense: set[str] = set()
    while True:
        rest = [n for n in shapes if n not in dense]
        budget = density * total - sum(math.prod(shapes[n]) for n in dense)
        raw = {n: (sum(shapes[n]) / math.prod(shapes[n])) ** power for n in rest}
        divisor = sum(raw[n] * math.prod(shapes[n]) for n in rest)
        eps = budget / divisor if divisor > 0 else 0.0
        over = [n for n in rest if eps * raw[n] > 1.0]
        if not over:
            break
        dense.add(max(over, key=lambda n: raw[n]))
    return {n: (1.0 if n in dense else eps * raw[n]) for n in shapes}


def random_masks(tensors: Mapping[str, Tensor], densities: Mapping[str, float], *, seed: int) -> Masks:
    """Uniformly random masks keeping exactly ``round(density * numel)`` entries of each tensor,
    drawn from a generator seeded ``seed`` (the same masks on every process)."""
    generator = torch.Generator().manual_seed(int(seed))
    out: Masks = {}
    for name, w in tensors.items():
        keep = round(min(max(float(densities[name]), 0.0), 1.0) * w.numel())
        order = torch.randperm(w.numel(), generator=generator)
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        mask[order[:keep]] = True
        out[name] = mask.view(w.shape).to(w.device)
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
