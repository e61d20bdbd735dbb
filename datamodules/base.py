"""Shared DataModule machinery: indexed in-memory image datasets and the loaders.

Every dataset here is held as a uint8 tensor ``[N, 3, H, W]`` plus int64 labels, and every batch
is a dict ``{"index": LongTensor[B], "label": LongTensor[B], "image": Tensor[B, 3, H, W]}`` — or,
for multi-view training, ``"views": list[Tensor[B, 3, H, W]]`` instead of ``"image"``. The index
is the position in the underlying split (train or test) and is what per-sample metrics and DDP
de-duplication key on. Validation/test/probe loaders always carry a single un-augmented
``"image"`` and keep the dataset order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules.transforms import AUGMENTATIONS, MultiView, build_transform
from lightning_modules.errors import ConfigError, check_choice, check_range


class IndexedImageDataset(Dataset):
    """uint8 images ``[N, 3, H, W]`` + labels ``[N]`` -> dict samples carrying their index."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Any, indices: Tensor | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.labels = labels.long()
        self.transform = transform
        self.indices = torch.arange(len(images)) if indices is None else indices.long()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = int(self.indices[i])
        out = self.transform(self.images[index])
        key = "views" if isinstance(out, list) else "image"
        return {"index": index, "label": int(self.labels[index]), key: out}


def default_num_workers() -> int:
    """Loader workers: the usable CPU cores minus one for the training process, capped at 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores - 1))


class ImageDataModule(pl.LightningDataModule):
    """Base DataModule: subclasses implement :meth:`load_arrays` and set the class attributes.

    Args:
        data_dir: folder holding (or receiving) the dataset files.
        batch_size: training batch size (per device).
        eval_batch_size: validation/test/probe batch size (per device); defaults to ``batch_size``.
        views: 1 = one augmented image per sample (``"image"``); >= 2 = that many independently
            augmented views (``"views"``), for contrastive training.
        augmentation: ``"supervised"``, ``"contrastive"`` or ``"none"`` (see ``transforms.py``).
        val_source: ``"test"`` validates on the test set (the paper's protocol), ``"holdout"`` on
            ``holdout_size`` training images held out (deterministically, ``holdout_seed``).
        num_workers: loader processes (``None`` = cores - 1, at most 8).
        download: fetch the files when they are not in ``data_dir``.
    """

    name: str = "base"
    num_classes: int = 10
    mean: Sequence[float] = (0.5, 0.5, 0.5)
    std: Sequence[float] = (0.5, 0.5, 0.5)

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        views: int = 1,
        augmentation: str = "supervised",
        vflip: bool = False,
        val_source: str = "test",
        holdout_size: int = 5000,
        holdout_seed: int = 0,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        download: bool = True,
    ) -> None:
        super().__init__()
        check_range("data.batch_size", batch_size, low=1)
        if eval_batch_size is not None:
            check_range("data.eval_batch_size", eval_batch_size, low=1)
        check_range("data.views", views, low=1)
        check_choice("data.augmentation", augmentation, AUGMENTATIONS)
        check_choice("data.val_source", val_source, ("test", "holdout"))
        check_range("data.holdout_size", holdout_size, low=1)
        if num_workers is not None:
            check_range("data.num_workers", num_workers, low=0)
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.views = views
        self.augmentation = augmentation
        self.val_source = val_source
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and self.num_workers > 0
        self.download = download
        self._arrays: dict[str, tuple[Tensor, Tensor]] | None = None
        self._train_indices: Tensor | None = None
        self._holdout_indices: Tensor | None = None

    # -- to implement -------------------------------------------------------------------------
    def load_arrays(self, train: bool) -> tuple[Tensor, Tensor]:
        """Return uint8 images ``[N, 3, H, W]`` and int64 labels ``[N]`` of one split.

        Raise :class:`ConfigError` (one line: where it looked, how to provide the files) when
        the data is missing and cannot be downloaded.
        """
        raise NotImplementedError

    # -- Lightning hooks ----------------------------------------------------------------------
    def prepare_data(self) -> None:
        # runs on one process per node: download / verify once
        self.load_arrays(train=True)
        self.load_arrays(train=False)

    def setup(self, stage: str | None = None) -> None:
        if self._arrays is not None:
            return
        self._arrays = {"train": self.load_arrays(train=True), "test": self.load_arrays(train=False)}
        n_train = len(self._arrays["train"][1])
        if self.val_source == "holdout":
            if self.hparams.holdout_size >= n_train:
                raise ConfigError(
                    f"data.holdout_size={self.hparams.holdout_size} must be smaller than the training set ({n_train} images)"
                )
            perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(self.hparams.holdout_seed))
            self._holdout_indices = perm[: self.hparams.holdout_size].sort().values
            self._train_indices = perm[self.hparams.holdout_size :].sort().values
        else:
            self._train_indices = torch.arange(n_train)
        if self.views > 1 and len(self._train_indices) < self.batch_size:
            raise ConfigError(
                f"data.batch_size={self.batch_size} is larger than the training set ({len(self._train_indices)} images); "
                "contrastive training drops the last incomplete batch, so no batch would remain"
            )

    def _transform(self, kind: str) -> Any:
        return build_transform(kind, mean=self.mean, std=self.std, vflip=self.hparams.vflip)

    def _dataset(self, split: str, transform: Any, indices: Tensor | None = None) -> IndexedImageDataset:
        assert self._arrays is not None, "call setup() first"
        images, labels = self._arrays[split]
        return IndexedImageDataset(images, labels, transform, indices)

    def _loader(self, dataset: Dataset, *, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def train_dataloader(self) -> DataLoader:
        base = self._transform(self.augmentation)
        transform = base if self.views == 1 else MultiView(base, self.views)
        ds = self._dataset("train", transform, self._train_indices)
        # multi-view (contrastive) training needs equal batch sizes on every rank and step
        return self._loader(ds, batch_size=self.batch_size, shuffle=True, drop_last=self.views > 1)

    def val_dataloader(self) -> DataLoader:
        if self.val_source == "holdout":
            ds = self._dataset("train", self._transform("none"), self._holdout_indices)
        else:
            ds = self._dataset("test", self._transform("none"))
        return self._loader(ds, batch_size=self.eval_batch_size, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        ds = self._dataset("test", self._transform("none"))
        return self._loader(ds, batch_size=self.eval_batch_size, shuffle=False, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def probe_train_dataloader(self, subset_size: int | None = None, augment: bool = False, seed: int = 0) -> DataLoader:
        """Training images in index order, un-augmented unless ``augment`` (single view).

        ``subset_size`` picks that many training images at random (``seed``); ``None`` = all.
        Used by prediction depth (k-NN probes) and linear-probe evaluation.
        """
        if self._arrays is None:
            self.setup("fit")
        indices = self._train_indices
        assert indices is not None
        if subset_size is not None:
            check_range("subset_size", subset_size, low=1, high=len(indices))
            pick = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))[:subset_size]
            indices = indices[pick].sort().values
        kind = "supervised" if augment and self.augmentation == "none" else (self.augmentation if augment else "none")
        ds = self._dataset("train", self._transform(kind), indices)
        return self._loader(ds, batch_size=self.eval_batch_size, shuffle=False, drop_last=False)

    def run_summary(self) -> dict[str, Any]:
        return {
            "dataset": self.name,
            "num_classes": self.num_classes,
            "batch_size": self.batch_size,
            "views": self.views,
            "val_source": self.val_source,
        }


def uint8_hwc_to_chw(array: Any) -> Tensor:
    """numpy uint8 ``[N, H, W, C]`` (or ``[N, H, W]``) -> torch uint8 ``[N, C, H, W]``."""
    t = torch.as_tensor(array)
    if t.ndim == 3:
        t = t.unsqueeze(-1)
    return t.permute(0, 3, 1, 2).contiguous()
