"""DataModules: CIFAR-10 on-disk format, Fashion-MNIST idx files, synthetic data, indices, errors."""

from __future__ import annotations

import gzip
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
from conftest import write_fake_cifar10

from common.errors import ConfigError
from datamodules import CIFAR10DataModule, FashionMNISTDataModule, SyntheticDataModule

CIFAR_MEAN = np.array([0.4915, 0.4823, 0.4468])
CIFAR_STD = np.array([0.2047, 0.2435, 0.2616])


@pytest.fixture
def fake_cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, np.ndarray]:
    test_images = write_fake_cifar10(tmp_path)
    # only the checksum is patched (the fake files cannot have CIFAR-10's MD5s), as torchvision's tests do
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    return tmp_path, test_images


def test_cifar10_reads_the_on_disk_format_and_batches_carry_indices(fake_cifar) -> None:
    root, test_images = fake_cifar
    dm = CIFAR10DataModule(data_dir=str(root), batch_size=8, num_workers=0, augment_on="loader")
    dm.prepare_data()
    dm.setup("fit")
    assert dm.num_classes == 10
    batch = next(iter(dm.test_dataloader()))
    assert batch["index"].tolist() == list(range(8))  # the test order is fixed
    assert batch["image"].shape == (8, 3, 32, 32)
    # the eval transform is exactly (x/255 - mean)/std on the file's pixels
    expected = (test_images[:8] / 255.0 - CIFAR_MEAN) / CIFAR_STD
    np.testing.assert_allclose(batch["image"].permute(0, 2, 3, 1).numpy(), expected, atol=1e-5)
    train = next(iter(dm.train_dataloader()))
    assert set(train) == {"index", "label", "image"} and train["image"].shape == (8, 3, 32, 32)
    assert len(dm.train_dataloader().dataset) == 100
    # augment_on=device (the default): the loader yields indices, the batch is augmented after transfer
    on_device = CIFAR10DataModule(data_dir=str(root), batch_size=8, num_workers=0)
    on_device.setup("fit")
    raw = next(iter(on_device.train_dataloader()))
    assert set(raw) == {"index", "label", "epoch", "first", "device_split"}  # plain values stay on the host
    assert isinstance(raw["epoch"], int) and raw["first"] == int(raw["index"][0]) and raw["device_split"] == "train"
    done = on_device.on_after_batch_transfer(raw, 0)
    assert set(done) == {"index", "label", "image"} and done["image"].shape == (8, 3, 32, 32)
    assert done["image"].dtype == torch.float32
    # evaluation on the device: the same tensors, bit for bit, as torchvision's transform in the loader
    for on_dev, in_loader in ((on_device.test_dataloader(), dm.test_dataloader()), (on_device.val_dataloader(), dm.val_dataloader())):
        for raw_eval, ref in zip(on_dev, in_loader):
            got = on_device.on_after_batch_transfer(raw_eval, 0)
            assert set(got) == {"index", "label", "image"} and all(torch.equal(got[k], ref[k]) for k in ref)


def test_cifar10_two_views_for_contrastive_training(fake_cifar) -> None:
    root, _ = fake_cifar
    dm = CIFAR10DataModule(data_dir=str(root), batch_size=16, views=2, augmentation="contrastive", num_workers=0, augment_on="loader")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert len(batch["views"]) == 2 and batch["views"][0].shape == (16, 3, 32, 32)
    assert not torch.equal(batch["views"][0], batch["views"][1])  # independently augmented
    assert len(dm.train_dataloader()) == 7  # the authors' loaders keep the last incomplete batch: ceil(100 / 16)
    dropping = CIFAR10DataModule(data_dir=str(root), batch_size=16, views=2, augmentation="contrastive", num_workers=0, drop_last=True)
    dropping.setup("fit")
    assert len(dropping.train_dataloader()) == 100 // 16


def test_holdout_validation_is_disjoint_from_training(fake_cifar) -> None:
    root, _ = fake_cifar
    dm = CIFAR10DataModule(data_dir=str(root), batch_size=8, val_source="holdout", holdout_size=20, num_workers=0)
    dm.setup("fit")
    train = set(dm.train_dataloader().dataset.indices.tolist())
    val = set(dm.val_dataloader().dataset.indices.tolist())
    assert len(train) == 80 and len(val) == 20 and not train & val


def test_missing_cifar10_when_download_fails_says_where_and_how(tmp_path: Path, monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_network)
    dm = CIFAR10DataModule(data_dir=str(tmp_path / "nowhere"), num_workers=0)
    with pytest.raises(ConfigError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert "\n" not in message
    assert f"cifar10 not found or corrupted in {(tmp_path / 'nowhere' / 'cifar-10-batches-py').resolve()}" in message
    assert "download failed (URLError" in message
    assert "--data.init_args.data_dir" in message and "fashion_mnist.yaml" in message


def test_missing_cifar10_without_download(tmp_path: Path) -> None:
    dm = CIFAR10DataModule(data_dir=str(tmp_path), download=False, num_workers=0)
    with pytest.raises(ConfigError, match="not found or corrupted in .* and download=False"):
        dm.prepare_data()


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files_and_pads_to_3x32x32(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = {True: rng.integers(0, 256, (40, 28, 28)), False: rng.integers(0, 256, (20, 28, 28))}
    labels = {True: rng.integers(0, 10, 40), False: rng.integers(0, 10, 20)}
    for train, (img_name, lab_name) in {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                                        False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():  # fmt: skip
        _write_idx(tmp_path / f"{img_name}.gz", images[train])
        _write_idx(tmp_path / f"{lab_name}.gz", labels[train])
    dm = FashionMNISTDataModule(data_dir=str(tmp_path), download=False, batch_size=4, num_workers=0)
    x, y = dm.load_arrays(train=False)
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0, 2:30, 2:30], torch.as_tensor(images[False], dtype=torch.uint8))
    assert torch.equal(x[:, 0], x[:, 2]) and x[:, :, :2].sum() == 0
    assert y.tolist() == labels[False].tolist()


def test_missing_fashion_mnist_names_the_folder_and_the_package(tmp_path: Path) -> None:
    dm = FashionMNISTDataModule(data_dir=str(tmp_path / "fm"), download=False, num_workers=0)
    with pytest.raises(ConfigError) as err:
        dm.prepare_data()
    assert "Fashion-MNIST idx files not found in" in str(err.value)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")  # fmt: skip
def test_real_fashion_mnist_from_debian() -> None:
    x, y = FashionMNISTDataModule(num_workers=0).load_arrays(train=True)
    assert x.shape == (60000, 3, 32, 32) and torch.bincount(y).tolist() == [6000] * 10


def test_synthetic_is_deterministic_balanced_and_never_the_default() -> None:
    a = SyntheticDataModule(train_size=100, test_size=50, seed=3)
    b = SyntheticDataModule(train_size=100, test_size=50, seed=3)
    xa, ya = a.load_arrays(True)
    xb, yb = b.load_arrays(True)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.bincount(ya).tolist() == [10] * 10
    xt, _ = a.load_arrays(False)
    assert not torch.equal(xt, xa[:50])  # test split is a different draw
    assert CIFAR10DataModule().download is True  # the real download path stays the default


def test_probe_loader_is_unaugmented_and_subsets_deterministically() -> None:
    dm = SyntheticDataModule(train_size=100, test_size=20, num_workers=0, batch_size=32)
    dm.setup("fit")
    loader = dm.probe_train_dataloader(subset_size=30, seed=1)
    idx = torch.cat([b["index"] for b in loader])
    assert len(idx) == 30 and torch.equal(idx, idx.sort().values)
    again = torch.cat([b["image"] for b in dm.probe_train_dataloader(subset_size=30, seed=1)])
    first = torch.cat([b["image"] for b in loader])
    assert torch.equal(first, again)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"batch_size": 0}, r"data.batch_size=0 is out of range; it must be in \[1, inf\)"),
        ({"views": 0}, r"data.views=0 is out of range"),
        ({"augmentation": "heavy"}, r"data.augmentation='heavy' is not allowed; choose one of 'supervised', 'contrastive', 'none'"),
        ({"val_source": "train"}, r"data.val_source='train' is not allowed; choose one of 'test', 'holdout'"),
    ],
)
def test_bad_datamodule_arguments(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        SyntheticDataModule(**kwargs)


def test_cifar10_class_names_are_the_files_label_names_and_label_the_plots(fake_cifar) -> None:
    import pickle
    from types import SimpleNamespace

    from callbacks.metrics.predictions import _class_names

    root, _ = fake_cifar
    meta = pickle.loads((root / "cifar-10-batches-py" / "batches.meta").read_bytes())
    assert CIFAR10DataModule.class_names == tuple(meta["label_names"])  # known before any file is read (analyze uses it)
    dm = CIFAR10DataModule(data_dir=str(root), batch_size=8, num_workers=0)
    dm.setup("test")
    assert dm.class_names == tuple(meta["label_names"])
    assert _class_names(SimpleNamespace(datamodule=dm), 10) == meta["label_names"]  # confusion matrix / per_class_acc keys
    assert _class_names(SimpleNamespace(datamodule=SyntheticDataModule()), 10) == [str(c) for c in range(10)]
