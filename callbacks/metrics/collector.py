"""Collect per-sample tensors batch by batch on each rank, then gather them across ranks."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from callbacks.metrics.arrays import INDEX, dedup_sort
from common.distributed import all_gather_columns


class PerSampleCollector:
    """Per-batch tensors of this rank, keyed by name, with an ``index`` column.

    ``add(index=..., name=tensor, ...)`` stores detached CPU copies; :meth:`gather` returns NumPy
    arrays of all ranks, one row per distinct index, sorted by index.
    """

    def __init__(self) -> None:
        self._parts: dict[str, list[Tensor]] = {}

    def add(self, **tensors: Tensor) -> None:
        if INDEX not in tensors:
            raise KeyError(f"PerSampleCollector.add needs an {INDEX!r} tensor, got {sorted(tensors)}")
        n = len(tensors[INDEX])
        for name, value in tensors.items():
            value = torch.as_tensor(value).detach()
            if value.ndim == 0 or value.shape[0] != n:
                raise ValueError(f"per-sample tensor {name!r} has shape {tuple(value.shape)}, expected {n} rows")
            self._parts.setdefault(name, []).append(value.cpu())
        missing = set(self._parts) - set(tensors)
        if missing:
            raise KeyError(f"per-sample tensors {sorted(missing)} were given before but not in this batch")

    def clear(self) -> None:
        self._parts = {}

    def __len__(self) -> int:
        return sum(len(t) for t in self._parts.get(INDEX, []))

    def local(self) -> dict[str, Tensor]:
        """This rank's rows (concatenated, not de-duplicated)."""
        return {name: torch.cat(parts) for name, parts in self._parts.items()}

    def gather(self, trainer: pl.Trainer) -> dict[str, np.ndarray] | None:
        """All ranks' rows, de-duplicated by index and sorted (a collective: call on every rank).

        Returns ``None`` when no rank collected anything.
        """
        gathered = all_gather_columns(trainer, self.local())
        if not gathered:
            return None
        return dedup_sort({k: v.numpy() for k, v in gathered.items()})


__all__ = ["PerSampleCollector"]
