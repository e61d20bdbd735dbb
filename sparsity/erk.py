"""Random masks with an Erdős–Rényi-Kernel (ERK) distribution of densities: a sparse start (SyncCP, RigL).

Pure tensor maths, no Lightning import; masks as in :mod:`sparsity.masks` (True = kept).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from common.errors import check_range
from sparsity.selection import Masks


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
