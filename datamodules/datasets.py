"""The in-memory indexed datasets of :mod:`datamodules.base`: what one sample (or one batch of indices) is.

* :class:`IndexedImageDataset` — uint8 images ``[N, 3, H, W]`` + labels, dict samples carrying their
  index, augmented per sample (``augment_on: loader``) with a seed of :func:`sample_seed`.
* :class:`IndexedLabels` — a split as indices and labels only (``augment_on: device``), fetched a
  whole batch at a time; :func:`as_batch` is its loaders' ``collate_fn``.
* :func:`uint8_hwc_to_chw` — the layout every dataset is held in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

_MIX = (1 << 61) - 1  # a Mersenne prime: (seed, epoch, index) -> one 61-bit seed


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of sample ``index`` in epoch ``epoch`` of a run seeded ``seed``."""
    return ((seed * 1_000_003 + epoch) * 2_147_483_647 + index) % _MIX


class IndexedImageDataset(Dataset):
    """uint8 images ``[N, 3, H, W]`` + labels ``[N]`` -> dict samples carrying their index.

    ``dataset[i]`` (an int position) applies ``transform`` with the global RNG (eval transforms are
    deterministic anyway); ``dataset[(i, epoch)]`` — what :class:`ResumableSampler` yields — applies
    it with the torch RNG seeded by :func:`sample_seed` ``(seed, epoch, index)`` and restores the RNG
    afterwards, so the sample is the same whatever process, worker or batch computes it.
    """

    def __init__(
        self, images: Tensor, labels: Tensor, transform: Any, indices: Tensor | None = None, *, seed: int = 0
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.labels = labels.long()
        self.transform = transform
        self.indices = torch.arange(len(images)) if indices is None else indices.long()
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(key, tuple):
            position, epoch = key
            index = int(self.indices[position])
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(self.seed, int(epoch), index))
                out = self.transform(self.images[index])
        else:
            index = int(self.indices[key])
            out = self.transform(self.images[index])
        name = "views" if isinstance(out, list) else "image"
        return {"index": index, "label": int(self.labels[index]), name: out}


#: the batch key naming the device-resident split a batch of indices comes from (``augment_on: device``)
DEVICE_SPLIT = "device_split"


class IndexedLabels(Dataset):
    """A split as indices and labels only (``augment_on: device``): the images stay on the training
    device and are gathered (and augmented, or eval-transformed) there after the batch is transferred.

    A loader fetches whole batches (``__getitems__``): ``{"index", "label"}`` tensors and, as plain
    Python values that stay on the host, the split and — for the training loader, whose keys are
    ``(position, epoch)`` — the epoch and the batch's first index, which seed its augmentation. So
    nothing about a batch has to be read back from the device.
    """

    def __init__(self, labels: Tensor, indices: Tensor, split: str = "train") -> None:
        # NumPy on the host: gathering a batch's indices and labels dispatches no tensor operation
        self.labels = labels.long().numpy()
        self.indices = indices.long().numpy()
        self.split = split

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        return self.__getitems__([key])

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> dict[str, Any]:
        epoch = None
        if keys and isinstance(keys[0], tuple):
            positions = [int(k[0]) for k in keys]  # type: ignore[index]
            epoch = int(keys[0][1])  # type: ignore[index]
        else:
            positions = [int(k) for k in keys]  # type: ignore[arg-type]
        index = self.indices[np.asarray(positions, dtype=np.int64)]
        batch: dict[str, Any] = {"index": torch.from_numpy(index), "label": torch.from_numpy(self.labels[index]), DEVICE_SPLIT: self.split}
        if epoch is not None:
            batch["epoch"] = epoch
            batch["first"] = int(index[0]) if len(index) else 0
        return batch


def as_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """``collate_fn`` of the index loaders: :meth:`IndexedLabels.__getitems__` returns whole batches."""
    return batch


def uint8_hwc_to_chw(array: Any) -> Tensor:
    """numpy uint8 ``[N, H, W, C]`` (or ``[N, H, W]``) -> torch uint8 ``[N, C, H, W]``."""
    t = torch.as_tensor(array)
    if t.ndim == 3:
        t = t.unsqueeze(-1)
    return t.permute(0, 3, 1, 2).contiguous()
