"""Fashion-MNIST (60k train / 10k test, 28x28 grey, 10 classes), served as 3x32x32 images.

:class:`FashionMNISTDataModule` reads the four standard idx files (``train-images-idx3-ubyte[.gz]``
...) from ``data_dir`` — e.g. Debian's ``dataset-fashion-mnist`` package installs them in
``/usr/share/datasets/fashion-mnist`` — or from ``<data_dir>/FashionMNIST/raw``; downloads them
there through torchvision when missing (into a temporary folder first, so a failed download leaves
nothing behind). :class:`FashionMNISTMiniDataModule` serves the embedded 10,000/2,000-image subset
``datamodules/data/fashion_mnist_mini.npz`` (built by ``scripts/make_fashion_mnist_mini.py``,
verified by SHA-256 at load time), so nothing needs a network or a system package.
Images are zero-padded to 32x32 and repeated to 3 channels so every encoder and transform of the
CIFAR pipeline applies unchanged. Fashion-MNIST is MIT-licensed, (c) Zalando SE.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tempfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import datasets
from torchvision.datasets import utils as tv_utils
from typing_extensions import override

from common.errors import ConfigError
from datamodules.base import ImageDataModule

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# the embedded subset and the SHA-256 that `python scripts/make_fashion_mnist_mini.py` prints
MINI_PATH = Path(__file__).resolve().parent / "data" / "fashion_mnist_mini.npz"
MINI_SHA256 = "622959e41e8daab5981e28bce540471ce0c448a1f7c410a08b27c892199a4aa8"
MINI_FIX = "python scripts/make_fashion_mnist_mini.py --source <idx folder>"


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


def pad_to_3x32x32(images: np.ndarray) -> Tensor:
    """uint8 ``[N, 28, 28]`` -> uint8 ``[N, 3, 32, 32]``: 2 zero pixels each side, grey repeated."""
    x = F.pad(torch.from_numpy(np.array(images, dtype=np.uint8)), (2, 2, 2, 2))  # a copy: idx arrays are read-only
    return x.unsqueeze(1).repeat(1, 3, 1, 1).contiguous()


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` — exception texts can span lines (URL lists, tracebacks)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0].strip()}" if text else type(exc).__name__


class FashionMNISTDataModule(ImageDataModule):
    """Fashion-MNIST padded to 3x32x32; mean/std measured on the padded training images."""

    name = "fashion_mnist"
    num_classes = 10
    class_names = CLASS_NAMES
    mean = (0.2190, 0.2190, 0.2190)
    std = (0.3318, 0.3318, 0.3318)

    def __init__(self, data_dir: str = DEBIAN_DIR, **kwargs) -> None:
        super().__init__(data_dir=data_dir, **kwargs)

    def _find(self, stem: str) -> Path | None:
        for folder in (Path(self.data_dir), Path(self.data_dir) / "FashionMNIST" / "raw"):
            for name in (stem, stem + ".gz"):
                if (folder / name).is_file():
                    return folder / name
        return None

    @override
    def load_arrays(self, train: bool) -> tuple[Tensor, Tensor]:
        paths = [self._find(stem) for stem in FILES[train]]
        if None in paths and self.download:
            self._download([stem for stem, path in zip(FILES[train], paths) if path is None])
            paths = [self._find(stem) for stem in FILES[train]]
        if None in paths:
            raise self._missing("download=False" if not self.download else "download gave no files")
        images = pad_to_3x32x32(read_idx(paths[0]))
        labels = torch.from_numpy(read_idx(paths[1]).astype(np.int64))
        return images, labels

    def _download(self, stems: list[str]) -> None:
        """Fetch ``<stem>.gz`` for each stem (torchvision's mirrors and MD5s) into
        ``<data_dir>/FashionMNIST/raw``: into a temporary folder first, moved into place only when
        all arrived, so a failed attempt creates no file or folder under ``data_dir``."""
        resources = dict(datasets.FashionMNIST.resources)
        target = Path(self.data_dir) / "FashionMNIST" / "raw"
        with tempfile.TemporaryDirectory(prefix="fashion-mnist-download-") as tmp:
            for stem in stems:
                filename = stem + ".gz"
                error: BaseException | None = None
                for mirror in datasets.FashionMNIST.mirrors:
                    try:
                        tv_utils.download_url(f"{mirror}{filename}", root=tmp, filename=filename, md5=resources[filename])
                    except (URLError, OSError, RuntimeError) as exc:
                        error = exc
                        continue
                    error = None
                    break
                if error is not None or not (Path(tmp) / filename).is_file():
                    reason = first_line(error) if error is not None else "no file arrived"
                    raise self._missing(f"download of {filename} failed ({reason})") from error
            self._move_into_place([Path(tmp) / (stem + ".gz") for stem in stems], target)

    def _move_into_place(self, files: list[Path], target: Path) -> None:
        created = [p for p in (target, *target.parents) if not p.exists()]
        moved: list[Path] = []
        try:
            target.mkdir(parents=True, exist_ok=True)
            for src in files:
                moved.append(target / src.name)
                shutil.move(str(src), str(target / src.name))
        except OSError as exc:
            for path in moved:
                path.unlink(missing_ok=True)
            for folder in created:  # deepest first
                if folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
            raise self._missing(f"the downloaded files could not be moved to {target.resolve()} ({first_line(exc)})") from exc

    def _missing(self, reason: str) -> ConfigError:
        where = Path(self.data_dir).resolve()
        return ConfigError(
            f"Fashion-MNIST idx files not found in {where} (or {where}/FashionMNIST/raw) and {reason}; "
            f"on Debian/Ubuntu run `apt-get install dataset-fashion-mnist` (files land in {DEBIAN_DIR}) "
            "or copy train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            "t10k-labels-idx1-ubyte.gz there and set --data.init_args.data_dir, "
            "or train offline on the embedded subset with --data configs/data/fashion_mnist_mini.yaml"
        )


class FashionMNISTMiniDataModule(ImageDataModule):
    """The embedded Fashion-MNIST subset: 10,000 train (1,000 per class) / 2,000 test (200 per class).

    A fixed-seed, class-balanced draw from the official train and test splits, stored unpadded in
    ``datamodules/data/fashion_mnist_mini.npz`` (with each image's index in its official split) and
    served like :class:`FashionMNISTDataModule`: padded to 3x32x32. The file's SHA-256 is checked
    against :data:`MINI_SHA256` on every load. ``data_dir`` and ``download`` play no part.

    Args:
        path: the ``.npz`` to read; ``None`` = the embedded file (:data:`MINI_PATH`).
        **kwargs: as :class:`ImageDataModule`.

    Raises:
        ConfigError: the file is missing or its SHA-256 is not :data:`MINI_SHA256`.
    """

    name = "fashion_mnist_mini"
    num_classes = 10
    class_names = CLASS_NAMES
    # measured by scripts/make_fashion_mnist_mini.py: all pixels of the 10,000 training images,
    # zero-padded to 32x32, scaled to [0, 1] (population std); the 3 channels are equal
    mean = (0.2190, 0.2190, 0.2190)
    std = (0.3313, 0.3313, 0.3313)

    def __init__(self, path: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = Path(path) if path is not None else MINI_PATH
        self._npz: dict[str, np.ndarray] | None = None

    def _read(self) -> dict[str, np.ndarray]:
        if self._npz is None:
            data = self.path.read_bytes() if self.path.is_file() else None
            found = hashlib.sha256(data).hexdigest() if data is not None else "none (file missing)"
            if found != MINI_SHA256:
                raise ConfigError(
                    f"embedded Fashion-MNIST subset {self.path} has SHA-256 {found}, expected {MINI_SHA256}; "
                    f"regenerate it with `{MINI_FIX}` (the folder of the four official idx files, e.g. {DEBIAN_DIR})"
                )
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                self._npz = {key: npz[key] for key in npz.files}
        return self._npz

    @override
    def load_arrays(self, train: bool) -> tuple[Tensor, Tensor]:
        split = "train" if train else "test"
        arrays = self._read()
        images = pad_to_3x32x32(arrays[f"{split}_images"])
        labels = torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64))
        return images, labels

    def source_indices(self, train: bool) -> Tensor:
        """Position of each image in its official Fashion-MNIST split (int64 ``[N]``)."""
        return torch.from_numpy(self._read()[f"{'train' if train else 'test'}_source_indices"].astype(np.int64))
