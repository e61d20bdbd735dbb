"""Fashion-MNIST (60k train / 10k test, 28x28 grey, 10 classes), served as 3x32x32 images.

Reads the four standard idx files (``train-images-idx3-ubyte[.gz]`` ...) from ``data_dir`` — e.g.
Debian's ``dataset-fashion-mnist`` package installs them in ``/usr/share/datasets/fashion-mnist`` —
or from ``<data_dir>/FashionMNIST/raw``; downloads them there through torchvision when missing.
Images are zero-padded to 32x32 and repeated to 3 channels so every encoder and transform of the
CIFAR pipeline applies unchanged.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import datasets

from datamodules.base import ImageDataModule
from lightning_modules.errors import ConfigError

FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped): magic ``0x0000 dtype ndim``, big-endian sizes, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ConfigError(f"{path} is not an unsigned-byte idx file (magic {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ConfigError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {array.size}")
    return array.reshape(shape)


class FashionMNISTDataModule(ImageDataModule):
    """Fashion-MNIST padded to 3x32x32; mean/std measured on the padded training images."""

    name = "fashion_mnist"
    num_classes = 10
    mean = (0.2190, 0.2190, 0.2190)
    std = (0.3318, 0.3318, 0.3318)

    def __init__(self, data_dir: str = "/usr/share/datasets/fashion-mnist", **kwargs) -> None:
        super().__init__(data_dir=data_dir, **kwargs)

    def _find(self, stem: str) -> Path | None:
        for folder in (Path(self.data_dir), Path(self.data_dir) / "FashionMNIST" / "raw"):
            for name in (stem, stem + ".gz"):
                if (folder / name).is_file():
                    return folder / name
        return None

    def load_arrays(self, train: bool) -> tuple[Tensor, Tensor]:
        paths = [self._find(stem) for stem in FILES[train]]
        if None in paths and self.download:
            try:
                datasets.FashionMNIST(self.data_dir, train=train, download=True)
            except (URLError, OSError, RuntimeError) as exc:
                raise self._missing(f"download failed ({type(exc).__name__}: {exc})") from exc
            paths = [self._find(stem) for stem in FILES[train]]
        if None in paths:
            raise self._missing("download=False" if not self.download else "download gave no files")
        images = torch.from_numpy(read_idx(paths[0]).copy())
        labels = torch.from_numpy(read_idx(paths[1]).astype(np.int64))
        images = F.pad(images, (2, 2, 2, 2)).unsqueeze(1).repeat(1, 3, 1, 1)
        return images.contiguous(), labels

    def _missing(self, reason: str) -> ConfigError:
        where = Path(self.data_dir).resolve()
        return ConfigError(
            f"Fashion-MNIST idx files not found in {where} (or {where}/FashionMNIST/raw) and {reason}; "
            "on Debian/Ubuntu run `apt-get install dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist) "
            "or copy train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            "t10k-labels-idx1-ubyte.gz there and set --data.init_args.data_dir"
        )
