"""CIFAR-10 / CIFAR-100 through ``torchvision.datasets`` (download + MD5 checksum by default)."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import torch
from torch import Tensor
from torchvision import datasets
from typing_extensions import override

from common.errors import ConfigError
from datamodules.base import ImageDataModule
from datamodules.datasets import uint8_hwc_to_chw
from datamodules.fashion_mnist import first_line


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 (50k train / 10k test, 32x32 RGB, 10 classes).

    Normalisation: mean (0.4915, 0.4823, 0.4468), std (0.2047, 0.2435, 0.2616) (REFERENCE §1).
    Looks for ``<data_dir>/cifar-10-batches-py``; downloads it there when missing (``download``).
    """

    name = "cifar10"
    num_classes = 10
    #: CIFAR-10's ``batches.meta`` ``label_names`` (torchvision's ``CIFAR10.classes``)
    class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    mean = (0.4915, 0.4823, 0.4468)
    std = (0.2047, 0.2435, 0.2616)
    _dataset_cls = datasets.CIFAR10

    @override
    def load_arrays(self, train: bool) -> tuple[Tensor, Tensor]:
        cls = self._dataset_cls
        folder = Path(self.data_dir) / cls.base_folder
        try:
            ds = cls(self.data_dir, train=train, download=self.download)
        except (URLError, OSError, RuntimeError) as exc:
            # one line: torchvision's texts can span lines; keep the type and the first line
            reason = f"download failed ({first_line(exc)})" if self.download else "download=False"
            raise ConfigError(
                f"{self.name} not found or corrupted in {folder.resolve()} and {reason}; "
                f"put the extracted python version there (from {cls.url}), point --data.init_args.data_dir at the folder "
                "that holds it, or train offline on Fashion-MNIST (configs/data/fashion_mnist.yaml, needs its idx files) "
                "or on its embedded subset, which needs nothing: --data configs/data/fashion_mnist_mini.yaml"
            ) from exc
        if tuple(ds.classes) != tuple(self.class_names or ()):
            self.class_names = tuple(ds.classes)  # CIFAR-100's 100 fine labels, read from its ``meta`` file
        return uint8_hwc_to_chw(ds.data), torch.as_tensor(ds.targets, dtype=torch.long)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 by the same code (100 fine classes, named from the dataset's ``meta`` file once loaded;
    its own normalisation statistics)."""

    name = "cifar100"
    num_classes = 100
    class_names = None
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    _dataset_cls = datasets.CIFAR100
