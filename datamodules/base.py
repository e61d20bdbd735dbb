"""Shared DataModule machinery: indexed in-memory image datasets, resumable loaders, phase loaders.

Every dataset here is held as a uint8 tensor ``[N, 3, H, W]`` plus int64 labels, and every batch
is a dict ``{"index": LongTensor[B], "label": LongTensor[B], "image": Tensor[B, 3, H, W]}`` — or,
for multi-view training, ``"views": list[Tensor[B, 3, H, W]]`` instead of ``"image"``. The index
is the position in the underlying split (train or test) and is what per-sample metrics and DDP
de-duplication key on. Validation/test loaders always carry a single un-augmented ``"image"`` and
keep the dataset order.

The samplers and loaders behind it live in :mod:`datamodules.loading` (a training epoch is a pure
function of (seed, epoch), resumable mid-epoch), the indexed datasets in :mod:`datamodules.datasets`.

**Augmentation runs in the loader or on the training device** (``augment_on``): ``loader`` applies
the torchvision transforms per sample in loader workers; ``device`` keeps the uint8 training set on
the training device (GPU memory, or this process's RAM on CPU), lets the loader yield only indices,
and augments each batch there, per sample but batched (:class:`datamodules.device_augment.DeviceAugment`,
the same distributions as torchvision's, tested), in ``on_after_batch_transfer``; its random
parameters come from a seed of (run seed, epoch, the batch's first index, view), so shuffling,
sharding, resuming and repeatability behave as in the loader path (the images drawn differ: same
distribution, other draws).

**Phases own their data** (DESIGN.md step 6): a LightningModule with phases (contrastive
pretraining -> linear head -> One-Shot fine-tune) may define ``train_data_spec() -> TrainDataSpec``
for its current phase (augmentation, views, batch size); :meth:`ImageDataModule.train_dataloader`
serves that phase's loader and, when the specs of a run differ between phases, makes the Trainer
ask for the loader again at every epoch start (``reload_dataloaders_every_n_epochs = 1``; loaders
are cached per spec, so an unchanged phase keeps its loader and its workers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from common.data_spec import AUGMENTATIONS, TrainDataSpec
from common.errors import ConfigError, check_choice, check_range
from common.protocols import PlannedModule
from datamodules.datasets import DEVICE_SPLIT, IndexedImageDataset, IndexedLabels, as_batch, sample_seed
from datamodules.loading import ResumableLoader, ResumableSampler, default_num_workers, ignore_stop_signals, run_seed
from datamodules.transforms import MultiView, build_transform

AUGMENT_ON = ("loader", "device")


class ImageDataModule(pl.LightningDataModule):
    """Base DataModule: subclasses implement :meth:`load_arrays` and set the class attributes.

    Args:
        data_dir: folder holding (or receiving) the dataset files.
        batch_size: training batch size (per device) of the phases that do not set their own.
        eval_batch_size: validation/test/probe batch size (per device); defaults to ``batch_size``.
        views: 1 = one augmented image per sample (``"image"``); >= 2 = that many independently
            augmented views (``"views"``), for contrastive training.
        augmentation: ``"supervised"``, ``"contrastive"`` or ``"none"`` (see ``transforms.py``).
        vflip: every ``"supervised"`` augmentation of the run also flips vertically (the code of
            Corti et al. does, for Sup training, the SCL linear head, One-Shot fine-tuning and the
            prediction-depth k-NN).
        val_source: ``"test"`` validates on the test set (the paper's protocol), ``"holdout"`` on
            ``holdout_size`` training images held out (deterministically, ``holdout_seed``).
        num_workers: loader processes (``None`` = cores - 1, at most 8).
        download: fetch the files when they are not in ``data_dir``.
        sample_seed: seed of the shuffling and augmentation stream (``None`` = the run's
            ``seed_everything``).
        drop_last: drop the last incomplete training batch of every epoch (the authors' loaders
            keep it: CIFAR-10 at batch 1024 gives 49 steps per epoch).
        augment_on: ``"device"`` (default: batched on the training device, measured faster end to
            end — on 2 CPU cores 1.0x the step-only rate vs 0.80-0.87x for the loader path — and on a
            GPU no CPU loader bounds the step) or ``"loader"`` (per sample in loader workers).
    """

    name: str = "base"
    num_classes: int = 10
    mean: Sequence[float] = (0.5, 0.5, 0.5)
    std: Sequence[float] = (0.5, 0.5, 0.5)
    #: display names of the classes (index = label); None = the class indices
    class_names: Sequence[str] | None = None

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
        sample_seed: int | None = None,
        drop_last: bool = False,
        augment_on: str = "device",
    ) -> None:
        super().__init__()
        check_range("data.batch_size", batch_size, low=1)
        if eval_batch_size is not None:
            check_range("data.eval_batch_size", eval_batch_size, low=1)
        check_range("data.views", views, low=1)
        check_choice("data.augmentation", augmentation, AUGMENTATIONS)
        check_choice("data.val_source", val_source, ("test", "holdout"))
        check_range("data.holdout_size", holdout_size, low=1)
        check_choice("data.augment_on", augment_on, AUGMENT_ON)
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
        self.sample_seed = sample_seed
        self.drop_last = drop_last
        self.augment_on = augment_on
        self._device_images: dict[str, Tensor] = {}  # augment_on=device: the uint8 splits on the device
        self._device_augment: dict[str, Any] = {}
        self._device_spec: TrainDataSpec | None = None
        self._arrays: dict[str, tuple[Tensor, Tensor]] | None = None
        self._train_indices: Tensor | None = None
        self._holdout_indices: Tensor | None = None
        self._train_loaders: dict[tuple[TrainDataSpec, int, int], ResumableLoader] = {}

    # -- to implement -------------------------------------------------------------------------
    def load_arrays(self, train: bool) -> tuple[Tensor, Tensor]:
        """Return uint8 images ``[N, 3, H, W]`` and int64 labels ``[N]`` of one split.

        Raise :class:`ConfigError` (one line: where it looked, how to provide the files) when
        the data is missing and cannot be downloaded.
        """
        raise NotImplementedError

    # -- Lightning hooks ----------------------------------------------------------------------
    @override
    def prepare_data(self) -> None:
        # runs on one process per node: download / verify once
        self.load_arrays(train=True)
        self.load_arrays(train=False)

    @override
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

    def check(self, specs: Sequence[TrainDataSpec] = ()) -> None:
        """Raise :class:`ConfigError` for a dataset this run cannot train on: a holdout as large as
        the training set, or (with ``drop_last``) a batch larger than it. Loads the arrays; the CLI
        calls it before any Trainer, logger or run folder exists."""
        self.setup("fit")
        assert self._train_indices is not None
        n = len(self._train_indices)
        for spec in [self.default_spec(), *specs]:
            if self.drop_last and spec.batch_size > n:
                raise ConfigError(
                    f"data.batch_size={spec.batch_size} is larger than the training set ({n} images) and "
                    "data.drop_last=true drops the last incomplete batch, so no batch would remain"
                )

    # -- phases ---------------------------------------------------------------------------------
    def default_spec(self) -> TrainDataSpec:
        """The training data of a phase that does not choose its own: this datamodule's arguments."""
        return TrainDataSpec(self.augmentation, self.views, self.batch_size)

    def current_spec(self) -> TrainDataSpec:
        """The current phase's training data: ``lightning_module.train_data_spec()`` when the
        module defines it (and returns one), else :meth:`default_spec`."""
        trainer = self._trainer_or_none()
        module = trainer.lightning_module if trainer is not None else None
        spec = module.train_data_spec() if isinstance(module, PlannedModule) else None
        return spec or self.default_spec()

    def _trainer_or_none(self) -> pl.Trainer | None:
        return self.trainer if getattr(self, "trainer", None) is not None else None

    def _world(self) -> tuple[int, int]:
        trainer = self._trainer_or_none()
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def batches_per_epoch(self, spec: TrainDataSpec, world_size: int = 1) -> int:
        """Training batches per epoch per device for ``spec`` (before ``limit_train_batches``)."""
        if self._train_indices is None:
            self.setup("fit")
        assert self._train_indices is not None
        per_rank = math.ceil(len(self._train_indices) / world_size)  # DistributedSampler pads
        return per_rank // spec.batch_size if self.drop_last else math.ceil(per_rank / spec.batch_size)

    # -- loaders ----------------------------------------------------------------------------------
    def _seed(self) -> int:
        return run_seed() if self.sample_seed is None else int(self.sample_seed)

    def _transform(self, kind: str) -> Any:
        return build_transform(kind, mean=self.mean, std=self.std, vflip=self.hparams.vflip)

    def _dataset(self, split: str, transform: Any, indices: Tensor | None = None, seed: int = 0) -> IndexedImageDataset:
        assert self._arrays is not None, "call setup() first"
        images, labels = self._arrays[split]
        return IndexedImageDataset(images, labels, transform, indices, seed=seed)

    def _loader(self, dataset: Dataset, *, batch_size: int, shuffle: bool = False, drop_last: bool = False, **kw: Any) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            worker_init_fn=ignore_stop_signals,
            **kw,
        )

    def train_loader(self, spec: TrainDataSpec) -> ResumableLoader:
        """The (cached) resumable training loader of ``spec`` on this rank."""
        if self._arrays is None:
            self.setup("fit")
        world, rank = self._world()
        key = (spec, world, rank)
        if key not in self._train_loaders:
            seed = self._seed()
            on_device = self.augment_on == "device"
            if on_device:  # indices only: no workers needed, the images are gathered on the device
                assert self._arrays is not None and self._train_indices is not None
                ds: Dataset = IndexedLabels(self._arrays["train"][1], self._train_indices, "train")
            else:
                base = self._transform(spec.augmentation)
                transform = base if spec.views == 1 else MultiView(base, spec.views)
                ds = self._dataset("train", transform, self._train_indices, seed=seed)
            sampler = ResumableSampler(ds, num_replicas=world, rank=rank, seed=seed)
            loader = ResumableLoader(
                ds,
                batch_size=spec.batch_size,
                sampler=sampler,
                drop_last=self.drop_last,
                num_workers=0 if on_device else self.num_workers,
                pin_memory=False if on_device else self.pin_memory,
                persistent_workers=False if on_device else self.persistent_workers,
                worker_init_fn=ignore_stop_signals,
                **({"collate_fn": as_batch} if on_device else {}),
            )
            loader.progress = self._batches_done
            self._train_loaders[key] = loader
        self._device_spec = spec
        return self._train_loaders[key]

    # -- augment_on: device ---------------------------------------------------------------------
    def _augmenter(self, kind: str, device: torch.device) -> Any:
        from datamodules.device_augment import DeviceAugment

        if kind not in self._device_augment:
            self._device_augment[kind] = DeviceAugment(kind, mean=self.mean, std=self.std, vflip=self.hparams.vflip)
        return self._device_augment[kind].to(device)

    def _images_on(self, split: str, device: torch.device) -> Tensor:
        """The uint8 images of ``split`` on ``device`` (copied there once)."""
        images = self._device_images.get(split)
        if images is None or images.device != device:
            assert self._arrays is not None
            images = self._device_images[split] = self._arrays[split][0].to(device)
        return images

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``augment_on: device``: the batch's images, gathered from the device-resident split and
        augmented there (training: the phase's augmentation, seeded by (run seed, epoch, first index,
        view)) or eval-transformed (validation, test). Reads nothing back from the device."""
        if self.augment_on != "device" or not isinstance(batch, dict) or DEVICE_SPLIT not in batch:
            return batch
        split = batch.pop(DEVICE_SPLIT)
        index = batch["index"]
        device = index.device
        images = self._images_on(split, device)[index]
        epoch, first = batch.pop("epoch", None), batch.pop("first", 0)
        if epoch is None:  # validation / test: torchvision's eval transform, batched
            batch["image"] = self._augmenter("none", device)(images, seed=0)
            return batch
        spec = self._device_spec or self.current_spec()
        augment = self._augmenter(spec.augmentation, device)
        views = augment.views(images, seeds=[sample_seed(self._seed(), epoch, first) * 8 + v for v in range(spec.views)])
        if spec.views == 1:
            batch["image"] = views[0]
        else:
            batch["views"] = views
        return batch

    def _batches_done(self) -> int:
        trainer = self._trainer_or_none()
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)

    @override
    def train_dataloader(self) -> DataLoader:
        trainer = self._trainer_or_none()
        if trainer is not None and self._phases_differ(trainer) and not trainer.reload_dataloaders_every_n_epochs:
            # a phase boundary changes the loader: ask for it again at every epoch start (cached)
            trainer.reload_dataloaders_every_n_epochs = 1
        return self.train_loader(self.current_spec())

    def _phases_differ(self, trainer: pl.Trainer) -> bool:
        module = trainer.lightning_module
        specs = module.train_data_specs() if isinstance(module, PlannedModule) else {}
        resolved = {spec or self.default_spec() for spec in specs.values()}
        return len(resolved) > 1

    def _eval_loader(self, split: str, indices: Tensor | None = None) -> DataLoader:
        """The eval loader of ``split`` (in index order): with ``augment_on: device`` indices only
        (the eval transform runs on the device, no workers), else per-sample transforms in workers."""
        assert self._arrays is not None, "call setup() first"
        if self.augment_on == "device":
            labels = self._arrays[split][1]
            ds = IndexedLabels(labels, torch.arange(len(labels)) if indices is None else indices, split)
            return DataLoader(ds, batch_size=self.eval_batch_size, num_workers=0, collate_fn=as_batch)
        return self._loader(self._dataset(split, self._transform("none"), indices), batch_size=self.eval_batch_size)

    @override
    def val_dataloader(self) -> DataLoader:
        if self.val_source == "holdout":
            return self._eval_loader("train", self._holdout_indices)
        return self._eval_loader("test")

    @override
    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    @override
    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def probe_train_dataloader(
        self, subset_size: int | None = None, augmentation: str | None = None, seed: int = 0, augment: bool | None = None
    ) -> DataLoader:
        """Training images in index order, single view, for prediction depth / linear probes.

        Args:
            subset_size: that many training images at random (``seed``); ``None`` = all.
            augmentation: transform applied (``"supervised"`` = crop + flips, one pass, as the
                authors fit their PD k-NN; ``None``/``"none"`` = the eval transform). The
                augmentation of sample ``i`` is seeded by ``(seed, 0, i)``: the same on every call.
            seed: which subset and which augmentation draw.
            augment: deprecated boolean form (``True`` = ``"supervised"``).
        """
        if self._arrays is None:
            self.setup("fit")
        if augment is not None and augmentation is None:
            augmentation = "supervised" if augment else "none"
        kind = augmentation or "none"
        check_choice("augmentation", kind, AUGMENTATIONS)
        indices = self._train_indices
        assert indices is not None
        if subset_size is not None:
            check_range("subset_size", subset_size, low=1, high=len(indices))
            pick = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))[:subset_size]
            indices = indices[pick].sort().values
        ds = self._dataset("train", self._transform(kind), indices, seed=seed)
        keys = [(i, 0) for i in range(len(ds))]  # seeded per sample: deterministic augmentation
        return self._loader(ds, batch_size=self.eval_batch_size, sampler=keys)

    def run_summary(self, trainer: pl.Trainer | None, pl_module: pl.LightningModule | None) -> dict[str, Any]:
        return {
            "dataset": self.name,
            "num_classes": self.num_classes,
            "batch_size": self.batch_size,
            "views": self.views,
            "val_source": self.val_source,
            "augment_on": self.augment_on,
        }
