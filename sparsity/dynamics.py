"""Mask dynamics and training cost of sparse training: pure tensor maths, no Lightning import.

Masks are ``dict[name, BoolTensor]`` (True = kept) as everywhere in :mod:`callbacks.pruning`.

* **Oscillation** (REFERENCE §5): the fraction of mask entries that flipped between two consecutive
  mask updates, globally and per tensor (:func:`mask_change`). It also splits the flips into
  newly pruned (1 -> 0) and revived (0 -> 1) entries: gradual magnitude pruning only ever prunes
  (``revived == 0``, flips = the growth of the sparsity), prune-and-regrow also revives, which is
  what makes its architecture oscillate. The first update is measured against the dense network;
  :func:`mean_oscillation` averages the updates after it.
* **FLOPs** (:func:`layer_flops_per_sample`, :func:`measure_layer_flops`, :func:`forward_flops`):
  the theoretical multiply-add cost of the prunable Conv2d/Linear layers. A Conv2d costs
  ``2 * k_h * k_w * (C_in / groups) * C_out * H_out * W_out`` FLOPs per image (``2 * numel(w) *
  H_out * W_out``), a Linear ``2 * C_in * C_out`` per row; a layer with a fraction ``d`` of its
  weights kept costs ``d`` times that (unstructured sparsity counted as if it were free to skip).
  A training step costs ~3x the forward pass (forward, backward to inputs, backward to weights:
  :data:`TRAIN_FORWARD_MULTIPLIER`); a branch that only runs forward (a momentum encoder) 1x.
  :class:`TrainingCostMeter` counts the batches of a run (per step and cumulative, dense and
  sparse; the totals in a :class:`FlopsCounter`).
* **Drop and regrow** (RigL / GraNet, :func:`drop_and_regrow`): per tensor drop the fraction ``r``
  of the active weights with the smallest |w| and regrow as many inactive ones with the largest
  |gradient|; :func:`cosine_decay` is GraNet's schedule of ``r``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from common.errors import check_range
from common.schedules import cosine_factor
from sparsity.masks import _keep_all_but_smallest

Masks = dict[str, Tensor]

#: training FLOPs of a step / forward FLOPs of the same images (forward + 2 backward matmuls)
TRAIN_FORWARD_MULTIPLIER = 3.0


# --------------------------------------------------------------------------------------------------
# oscillation
# --------------------------------------------------------------------------------------------------
@dataclass
class MaskChange:
    """How a mask update changed the masks (fractions of all entries, in ``[0, 1]``)."""

    flipped: float  #: entries whose kept/pruned state changed (the oscillation)
    newly_pruned: float  #: 1 -> 0
    revived: float  #: 0 -> 1
    per_layer: dict[str, float] = field(default_factory=dict)  #: flipped fraction of each tensor


def mask_change(old: Mapping[str, Tensor] | None, new: Mapping[str, Tensor]) -> MaskChange:
    """Flip fractions between ``old`` and ``new`` masks (same keys and shapes).

    ``old=None`` (or a name missing from ``old``) means dense: every entry kept. Global fractions are
    over all entries of all tensors of ``new``.
    """
    flipped = pruned = revived = total = 0
    per_layer: dict[str, float] = {}
    for name, now in new.items():
        before = None if old is None else old.get(name)
        now = now.to(torch.bool)
        if before is None:
            lost, gained = int((~now).sum()), 0
        else:
            before = before.to(device=now.device, dtype=torch.bool)
            if before.shape != now.shape:
                raise ValueError(f"mask {name!r} changed shape from {tuple(before.shape)} to {tuple(now.shape)}")
            lost = int((before & ~now).sum())
            gained = int((~before & now).sum())
        per_layer[name] = (lost + gained) / now.numel() if now.numel() else 0.0
        flipped += lost + gained
        pruned += lost
        revived += gained
        total += now.numel()
    if total == 0:
        return MaskChange(0.0, 0.0, 0.0, per_layer)
    return MaskChange(flipped / total, pruned / total, revived / total, per_layer)


def mean_oscillation(oscillations: list[float]) -> float:
    """Mean flip fraction over the mask updates after the first (the first is measured against the
    dense network, so it is a pruning step, not an oscillation); 0 with fewer than two updates."""
    later = oscillations[1:]
    return sum(later) / len(later) if later else 0.0


# --------------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------------
def layer_flops_per_sample(weight_shape: tuple[int, ...] | torch.Size, output_shape: tuple[int, ...] | torch.Size) -> float:
    """Dense forward FLOPs of one Conv2d/Linear layer for one sample.

    ``weight_shape``: ``[C_out, C_in/groups, k_h, k_w]`` or ``[C_out, C_in]``; ``output_shape``: the
    layer's output for a batch, ``[B, C_out, H_out, W_out]`` or ``[B, ..., C_out]``. Each output
    element costs ``2 * numel(w) / C_out`` FLOPs (a multiply and an add per weight), so a conv gives
    ``2 * k_h * k_w * (C_in/groups) * C_out * H_out * W_out``.
    """
    numel = math.prod(weight_shape)
    out_channels = weight_shape[0]
    batch = output_shape[0]
    outputs_per_channel = math.prod(output_shape) / (batch * out_channels)
    return 2.0 * numel * outputs_per_channel


@torch.no_grad()
def measure_layer_flops(root: nn.Module, param_names: list[str], run: Callable[[], Any]) -> dict[str, float]:
    """Per-sample dense forward FLOPs of the layers owning ``param_names`` (``"<module path>.weight"``
    relative to ``root``), from their output sizes in one forward pass ``run()`` (forward hooks,
    removed afterwards).

    Every module of ``root`` is put in eval mode for the pass (BatchNorm statistics do not move)
    and restored; the RNG state is preserved. Layers that did not run are left out.
    """
    handles = []
    out: dict[str, float] = {}
    for name in param_names:
        module_path, _, attr = name.rpartition(".")
        module = root.get_submodule(module_path)
        weight_shape = tuple(getattr(module, attr).shape)

        def hook(_mod: nn.Module, _inp: Any, output: Any, name: str = name, shape: tuple[int, ...] = weight_shape) -> None:
            if isinstance(output, Tensor) and name not in out:
                out[name] = layer_flops_per_sample(shape, tuple(output.shape))

        handles.append(module.register_forward_hook(hook))
    modes = {m: m.training for m in root.modules()}
    try:
        root.eval()
        with torch.random.fork_rng(devices=[]):
            run()
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in modes.items():
            m.training = mode
    return {name: out[name] for name in param_names if name in out}


#: id(mask) -> (a weak reference to it, its version counter, kept fraction): a mask's density is read
#: from the device once per change (a tensor cannot key a WeakKeyDictionary: == compares elements)
_DENSITIES: dict[int, tuple[weakref.ref[Tensor], int, float]] = {}


def _density(mask: Tensor) -> float:
    cached = _DENSITIES.get(id(mask))
    if cached is not None and cached[0]() is mask and cached[1] == mask._version:
        return cached[2]
    value = float(mask.sum()) / mask.numel() if mask.numel() else 1.0
    key = id(mask)
    _DENSITIES[key] = (weakref.ref(mask, lambda _: _DENSITIES.pop(key, None)), mask._version, value)
    return value


def mask_densities(masks: Mapping[str, Tensor]) -> dict[str, float]:
    """Kept fraction of each mask. Remembered per mask tensor until it is replaced or changed in
    place: the training-cost meter asks at every step, and on a GPU each fresh value is a
    device-to-host synchronisation."""
    return {name: _density(m) for name, m in masks.items()}


def forward_flops(layer_flops: Mapping[str, float], densities: Mapping[str, float] | None = None) -> float:
    """``sum_l flops_l * density_l`` (a layer missing from ``densities`` is dense)."""
    densities = densities or {}
    return float(sum(f * densities.get(name, 1.0) for name, f in layer_flops.items()))


@dataclass
class FlopsCounter:
    """Cumulative theoretical training FLOPs of a run, dense and sparse (see module docstring)."""

    dense: float = 0.0
    sparse: float = 0.0
    steps: int = 0

    def add(self, dense: float, sparse: float) -> None:
        self.dense += float(dense)
        self.sparse += float(sparse)
        self.steps += 1

    @property
    def saving(self) -> float:
        """``1 - sparse / dense`` (0 before anything was counted)."""
        return 1.0 - self.sparse / self.dense if self.dense > 0 else 0.0

    def state_dict(self) -> dict[str, float]:
        return {"dense": self.dense, "sparse": self.sparse, "steps": self.steps}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.dense = float(state.get("dense", 0.0))
        self.sparse = float(state.get("sparse", 0.0))
        self.steps = int(state.get("steps", 0))


def first_images(batch: Any) -> Tensor | None:
    """The images of view 0 of a project batch (``{"views": [...]}`` or ``{"image": ...}``)."""
    if isinstance(batch, Mapping):
        views = batch.get("views")
        if isinstance(views, (list, tuple)) and views:
            return views[0]
        if isinstance(batch.get("image"), Tensor):
            return batch["image"]
    return None


def count_images(batch: Any) -> tuple[int, int]:
    """``(images through the encoder, samples)`` of a project batch: ``(views * B, B)`` or ``(B, B)``."""
    if isinstance(batch, Mapping):
        views = batch.get("views")
        if isinstance(views, (list, tuple)) and views:
            return sum(int(v.shape[0]) for v in views), int(views[0].shape[0])
        if isinstance(batch.get("image"), Tensor):
            n = int(batch["image"].shape[0])
            return n, n
    return 0, 0


#: ``(forward passes per image, {online layer name: density})`` of each copy of the prunable layers
Branches = list[tuple[float, Mapping[str, float]]]


class TrainingCostMeter:
    """Theoretical training FLOPs of a run, per optimiser step and cumulative, dense vs sparse.

    Feed it every training batch (:meth:`add_batch`, with the branches in force for that batch) and
    close every optimiser step (:meth:`end_step`); :meth:`metrics` gives the ``flops/*`` values.
    Costs are those of the prunable layers only (what pruning can save), for the global batch
    (``world_size`` ranks). In the linear-head phase (``head_phase=True``) only view 0 runs forward
    through the first branch (the frozen encoder).
    """

    def __init__(self) -> None:
        self.layer_flops: dict[str, float] | None = None  #: per-sample dense forward FLOPs by layer
        self.total = FlopsCounter()
        self.step = (0.0, 0.0)  #: (dense, sparse) of the last optimiser step
        self.step_images = 0  #: images (one rank) of the last optimiser step
        self._pending = [0.0, 0.0]
        self._pending_images = 0

    def measure(self, root: nn.Module, param_names: list[str], encode: Callable[[Tensor], Any], batch: Any) -> None:
        """Measure the layers' output sizes with one forward pass of one image of ``batch``."""
        images = first_images(batch)
        if images is None:
            self.layer_flops = {}
            return
        example = images[:1]
        self.layer_flops = measure_layer_flops(root, param_names, lambda: encode(example))

    def flops_of(self, branches: Branches, n_images: int, head_phase: bool = False) -> tuple[float, float]:
        """(dense, sparse) FLOPs of ``n_images`` images (see class docstring)."""
        if not self.layer_flops:
            return 0.0, 0.0
        if head_phase:
            branches = [(1.0, branches[0][1])]
        dense = sum(passes * forward_flops(self.layer_flops) for passes, _ in branches)
        sparse = sum(passes * forward_flops(self.layer_flops, densities) for passes, densities in branches)
        return dense * n_images, sparse * n_images

    def add_batch(self, batch: Any, branches: Branches, head_phase: bool = False) -> None:
        n_images, n_samples = count_images(batch)
        dense, sparse = self.flops_of(branches, n_samples if head_phase else n_images, head_phase)
        self._pending[0] += dense
        self._pending[1] += sparse
        self._pending_images += n_images

    def end_step(self, world_size: int = 1) -> None:
        world = max(1, int(world_size))
        self.step = (self._pending[0] * world, self._pending[1] * world)
        if self.layer_flops:
            self.total.add(*self.step)
        self.step_images = self._pending_images
        self._pending = [0.0, 0.0]
        self._pending_images = 0

    def metrics(self, branches: Branches | None = None, world_size: int = 1) -> dict[str, float]:
        """``flops/step_*`` (the last step's images under ``branches`` if given, else the last step as
        counted) and ``flops/cumulative_*``."""
        if not self.layer_flops:
            return {}
        if branches is not None and self.step_images:
            dense, sparse = self.flops_of(branches, self.step_images * max(1, int(world_size)))
        else:
            dense, sparse = self.step
        return {
            "flops/step_dense": dense,
            "flops/step_sparse": sparse,
            "flops/step_saving": 1.0 - sparse / dense if dense > 0 else 0.0,
            "flops/cumulative_dense": self.total.dense,
            "flops/cumulative_sparse": self.total.sparse,
            "flops/cumulative_saving": self.total.saving,
        }

    def state_dict(self) -> dict[str, float]:
        return self.total.state_dict()

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.total.load_state_dict(state)


# --------------------------------------------------------------------------------------------------
# drop and regrow
# --------------------------------------------------------------------------------------------------
def cosine_decay(initial: float, step: int, *, begin_step: int, end_step: int) -> float:
    """``initial * (1 + cos(pi * (step - begin) / (end - begin))) / 2``, clipped: ``initial`` at
    ``begin_step``, 0 from ``end_step`` on (GraNet's decay of the drop fraction; :func:`common.schedules.cosine_factor`)."""
    if end_step <= begin_step:
        return 0.0 if step >= end_step else float(initial)
    return float(initial) * cosine_factor((step - begin_step) / (end_step - begin_step))


def drop_and_regrow(
    weights: Mapping[str, Tensor], grads: Mapping[str, Tensor], masks: Mapping[str, Tensor], drop_fraction: float
) -> tuple[Masks, dict[str, int]]:
    """One RigL/GraNet topology update, per tensor; returns the new masks and the regrown counts.

    For each tensor with ``a`` active (True) entries: drop ``k = round(drop_fraction * a)`` active
    entries with the smallest |w|, then regrow ``min(k, #inactive)`` of the entries that were
    *inactive before the drop* with the largest |gradient| (dense gradient, taken before any
    masking). The number of active entries is unchanged when enough inactive entries exist. Ties go
    by position (the first in flat order are dropped, resp. regrown), so every process agrees.

    Args:
        weights, grads, masks: same keys and shapes; ``masks`` True = kept.
        drop_fraction: ``r`` in ``[0, 1]``.
    """
    check_range("drop_fraction", drop_fraction, low=0.0, high=1.0)
    new: Masks = {}
    regrown: dict[str, int] = {}
    for name, mask in masks.items():
        mask = mask.to(torch.bool)
        flat_mask = mask.flatten()
        active = int(flat_mask.sum())
        k = round(drop_fraction * active)
        inactive = ~flat_mask
        k = min(k, int(inactive.sum()))  # regrow exactly what was dropped: never change the count
        if k == 0:
            new[name] = mask.clone()
            regrown[name] = 0
            continue
        w = weights[name].detach().abs().flatten().to(torch.float64)
        keep = _keep_all_but_smallest(w.masked_fill(inactive, math.inf), k) & flat_mask
        g = grads[name].detach().abs().flatten().to(torch.float64).masked_fill(flat_mask, -math.inf)
        order = torch.argsort(g, descending=True, stable=True)[:k]
        keep[order] = True
        new[name] = keep.view_as(mask)
        regrown[name] = k
    return new, regrown


__all__ = [
    "TRAIN_FORWARD_MULTIPLIER",
    "Branches",
    "FlopsCounter",
    "MaskChange",
    "TrainingCostMeter",
    "count_images",
    "first_images",
    "cosine_decay",
    "drop_and_regrow",
    "forward_flops",
    "layer_flops_per_sample",
    "mask_change",
    "mask_densities",
    "mean_oscillation",
    "measure_layer_flops",
]
