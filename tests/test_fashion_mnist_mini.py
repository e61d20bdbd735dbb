"""The embedded Fashion-MNIST subset (file, checksum, reproducibility, DataModule) and one-line data errors."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
import torchvision.datasets.utils as tv_utils
import yaml
from conftest import REPO, run_cli

from common.errors import ConfigError
from datamodules import CIFAR10DataModule, FashionMNISTDataModule, FashionMNISTMiniDataModule
from datamodules.fashion_mnist import CLASS_NAMES, DEBIAN_DIR, FILES, MINI_PATH, MINI_SHA256, read_idx

DEBIAN = Path(DEBIAN_DIR)
HAVE_DEBIAN = all((DEBIAN / f"{stem}.gz").is_file() for stems in FILES.values() for stem in stems)
needs_debian = pytest.mark.skipif(
    not HAVE_DEBIAN, reason=f"the official idx files are not in {DEBIAN_DIR} (Debian package dataset-fashion-mnist)"
)
FIX = "python scripts/make_fashion_mnist_mini.py --source <idx folder>"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path) -> list[str]:
    """Everything under ``root`` (relative paths), or a marker when ``root`` does not exist."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else ["<absent>"]


def script():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        return importlib.import_module("make_fashion_mnist_mini")
    finally:
        sys.path.remove(str(REPO / "scripts"))


@pytest.fixture(scope="module")
def mini() -> FashionMNISTMiniDataModule:
    dm = FashionMNISTMiniDataModule(batch_size=16, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    return dm


# -- the file -------------------------------------------------------------------------------------
def test_embedded_file_is_small_matches_its_constant_and_is_written_deterministically() -> None:
    assert MINI_PATH.is_file(), f"{MINI_PATH} is missing; run {FIX}"
    data = MINI_PATH.read_bytes()
    assert len(data) <= 5_000_000
    assert sha256(data) == MINI_SHA256
    with zipfile.ZipFile(MINI_PATH) as zf:  # no timestamps, no platform bits in the container
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert [i.filename for i in zf.infolist()] == [
            f"{split}_{what}.npy" for split in ("train", "test") for what in ("images", "labels", "source_indices")
        ]
    with np.load(MINI_PATH) as npz:  # stored unpadded, as 28x28 uint8
        assert npz["train_images"].shape == (10000, 28, 28) and npz["train_images"].dtype == np.uint8
        assert npz["test_images"].shape == (2000, 28, 28) and npz["test_images"].dtype == np.uint8


@needs_debian
def test_script_check_regenerates_the_committed_file_byte_for_byte() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/make_fashion_mnist_mini.py"), "--check", "--source", DEBIAN_DIR],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"sha256 {MINI_SHA256}" in result.stdout and "check passed" in result.stdout
    assert f"mean {FashionMNISTMiniDataModule.mean[0]:.4f}, std {FashionMNISTMiniDataModule.std[0]:.4f}" in result.stdout


def test_script_check_fails_on_a_different_file(tmp_path: Path, monkeypatch, capsys) -> None:
    module = script()
    monkeypatch.setattr(module, "build", lambda source: (MINI_PATH.read_bytes(), {"mean": 0.0, "std": 0.0}))
    other = tmp_path / "other.npz"
    other.write_bytes(b"not the subset")
    assert module.main(["--check", "--out", str(other)]) == 1
    out = capsys.readouterr().out
    assert f"MISMATCH: {other} has sha256 {sha256(b'not the subset')}, regenerated {MINI_SHA256}" in out
    assert module.main(["--check", "--out", str(MINI_PATH)]) == 0


def test_script_without_source_files_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as err:
        script().main(["--source", str(tmp_path), "--out", str(tmp_path / "x.npz")])
    assert str(err.value) == (
        f"error: train-images-idx3-ubyte[.gz] not found in {tmp_path}; install Debian's dataset-fashion-mnist "
        f"(files land in {DEBIAN_DIR}) or pass --source <folder of the four official idx files>"
    )
    assert not (tmp_path / "x.npz").exists()


# -- the DataModule -------------------------------------------------------------------------------
def test_mini_has_10000_and_2000_balanced_padded_images(mini: FashionMNISTMiniDataModule) -> None:
    with np.load(MINI_PATH) as npz:
        stored = {split: npz[f"{split}_images"] for split in ("train", "test")}
    for train, n, per_class in ((True, 10000, 1000), (False, 2000, 200)):
        x, y = mini.load_arrays(train=train)
        assert x.shape == (n, 3, 32, 32) and x.dtype == torch.uint8
        assert y.dtype == torch.int64 and torch.bincount(y, minlength=10).tolist() == [per_class] * 10
        assert torch.equal(x[:, 0, 2:30, 2:30], torch.from_numpy(stored["train" if train else "test"]))
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
        assert x[:, :, :2].sum() == 0 and x[:, :, 30:].sum() == 0 and x[:, :, :, :2].sum() == 0 and x[:, :, :, 30:].sum() == 0
    assert len(mini.train_dataloader().dataset) == 10000 and len(mini.test_dataloader().dataset) == 2000


def test_mini_mean_and_std_are_those_of_its_padded_training_images(mini: FashionMNISTMiniDataModule) -> None:
    x, _ = mini.load_arrays(train=True)
    pixels = x[:, 0].double() / 255.0
    assert mini.mean == (round(pixels.mean().item(), 4),) * 3
    assert mini.std == (round(pixels.std(unbiased=False).item(), 4),) * 3


@needs_debian
def test_mini_images_and_labels_are_the_official_ones_at_the_recorded_indices(mini: FashionMNISTMiniDataModule) -> None:
    for train, size in ((True, 60000), (False, 10000)):
        official_x = read_idx(DEBIAN / f"{FILES[train][0]}.gz")
        official_y = read_idx(DEBIAN / f"{FILES[train][1]}.gz").astype(np.int64)
        idx = mini.source_indices(train).numpy()
        assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < size  # sorted, unique, in range
        x, y = mini.load_arrays(train=train)
        assert y.tolist() == official_y[idx].tolist()
        assert np.array_equal(x[:, 0, 2:30, 2:30].numpy(), official_x[idx])


def test_mini_batches_carry_indices_in_one_and_two_view_form(mini: FashionMNISTMiniDataModule) -> None:
    # the default augment_on=device: the training loader yields indices, augmented after the transfer
    batch = mini.on_after_batch_transfer(next(iter(mini.train_dataloader())), 0)
    assert set(batch) == {"index", "label", "image"} and batch["image"].shape == (16, 3, 32, 32)
    assert batch["image"].dtype == torch.float32 and batch["index"].dtype == torch.int64
    _, labels = mini.load_arrays(train=True)
    assert torch.equal(batch["label"], labels[batch["index"]])
    test = mini.on_after_batch_transfer(next(iter(mini.test_dataloader())), 0)
    assert test["index"].tolist() == list(range(16)) and test["image"].shape == (16, 3, 32, 32)  # the test order is fixed

    two = FashionMNISTMiniDataModule(batch_size=8, views=2, augmentation="contrastive", num_workers=0)
    two.setup("fit")
    batch = two.on_after_batch_transfer(next(iter(two.train_dataloader())), 0)
    assert set(batch) == {"index", "label", "views"} and len(batch["views"]) == 2
    assert batch["views"][0].shape == (8, 3, 32, 32) and not torch.equal(batch["views"][0], batch["views"][1])


@pytest.mark.parametrize("name,views", [("fashion_mnist_mini.yaml", 1), ("fashion_mnist_mini_contrastive.yaml", 2)])
def test_config_fragments_build_the_mini_module(name: str, views: int) -> None:
    cfg = yaml.safe_load((REPO / "configs/data" / name).read_text())
    assert cfg["class_path"] == "datamodules.FashionMNISTMiniDataModule"
    dm = FashionMNISTMiniDataModule(**cfg["init_args"], num_workers=0)
    assert dm.views == views and dm.augmentation == ("supervised" if views == 1 else "contrastive")


def test_class_names() -> None:
    names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert CLASS_NAMES == names
    assert FashionMNISTMiniDataModule.class_names == names and FashionMNISTDataModule.class_names == names


# -- one-line errors ------------------------------------------------------------------------------
def test_a_corrupted_copy_is_one_line_config_error(tmp_path: Path) -> None:
    data = bytearray(MINI_PATH.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "fashion_mnist_mini.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ConfigError) as err:
        FashionMNISTMiniDataModule(path=str(bad), num_workers=0).prepare_data()
    assert str(err.value) == (
        f"embedded Fashion-MNIST subset {bad} has SHA-256 {sha256(bytes(data))}, expected {MINI_SHA256}; "
        f"regenerate it with `{FIX}` (the folder of the four official idx files, e.g. {DEBIAN_DIR})"
    )


def test_a_missing_file_is_one_line_config_error(tmp_path: Path, monkeypatch) -> None:
    import datamodules.fashion_mnist as fm

    monkeypatch.setattr(fm, "MINI_PATH", tmp_path / "gone.npz")
    with pytest.raises(ConfigError) as err:
        FashionMNISTMiniDataModule(num_workers=0).setup("fit")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"embedded Fashion-MNIST subset {tmp_path / 'gone.npz'} has SHA-256 none (file missing), expected {MINI_SHA256}")
    assert FIX in message


def test_cli_prints_the_corrupted_file_error_as_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(MINI_PATH.read_bytes()[:-1])
    result = run_cli(
        "fit", "--config", str(REPO / "configs/quickstart.yaml"),
        "--data", str(REPO / "configs/data/fashion_mnist_mini.yaml"),
        "--data.init_args.path", str(bad), "--data.init_args.num_workers", "0",
        "--run.wandb_mode", "disabled", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"{bad} has SHA-256" in lines[0] and FIX in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def _fake_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("exists", [True, False])
def test_failed_fashion_mnist_download_is_one_line_and_leaves_no_folder(tmp_path: Path, monkeypatch, exists: bool) -> None:
    roots: list[str] = []

    def no_network(url, root, filename=None, md5=None, **kwargs):
        roots.append(root)
        Path(root).mkdir(parents=True, exist_ok=True)
        (Path(root) / filename).write_bytes(b"partial")  # what a broken transfer leaves
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_url", no_network)
    data_dir = tmp_path / "fm"
    if exists:
        data_dir.mkdir()
    before = tree(data_dir)
    with pytest.raises(ConfigError) as err:
        FashionMNISTDataModule(data_dir=str(data_dir), download=True, num_workers=0).prepare_data()
    where = data_dir.resolve()
    assert str(err.value) == (
        f"Fashion-MNIST idx files not found in {where} (or {where}/FashionMNIST/raw) and download of "
        "train-images-idx3-ubyte.gz failed (URLError: <urlopen error [Errno -3] Temporary failure in name resolution>); "
        f"on Debian/Ubuntu run `apt-get install dataset-fashion-mnist` (files land in {DEBIAN_DIR}) "
        "or copy train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz there and set --data.init_args.data_dir, "
        "or train offline on the embedded subset with --data configs/data/fashion_mnist_mini.yaml"
    )
    assert tree(data_dir) == before  # no FashionMNIST/raw, no partial file
    assert roots and not any(Path(r).exists() for r in roots)  # the temporary folder is gone too


def test_multi_line_download_errors_become_their_first_line(tmp_path: Path, monkeypatch) -> None:
    def failing(url, root, filename=None, md5=None, **kwargs):
        raise RuntimeError("Error downloading x.gz:\nTried http://a/, got:\nHTTP Error 404\n")

    monkeypatch.setattr(tv_utils, "download_url", failing)
    with pytest.raises(ConfigError) as err:
        FashionMNISTDataModule(data_dir=str(tmp_path), num_workers=0).load_arrays(train=False)
    assert "\n" not in str(err.value) and "http://a/" not in str(err.value)
    assert "download of t10k-images-idx3-ubyte.gz failed (RuntimeError: Error downloading x.gz:)" in str(err.value)
    assert tree(tmp_path) == []


def test_successful_download_lands_in_fashionmnist_raw(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    payload = {"t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28)), "t10k-labels-idx1-ubyte.gz": np.arange(6)}

    def fake_download(url, root, filename=None, md5=None, **kwargs):
        _fake_idx_gz(Path(root) / filename, payload[filename])

    monkeypatch.setattr(tv_utils, "download_url", fake_download)
    x, y = FashionMNISTDataModule(data_dir=str(tmp_path / "fm"), num_workers=0).load_arrays(train=False)
    assert x.shape == (6, 3, 32, 32) and y.tolist() == list(range(6))
    assert tree(tmp_path / "fm") == ["FashionMNIST", "FashionMNIST/raw", *(f"FashionMNIST/raw/{n}" for n in sorted(payload))]


def test_cifar10_download_error_is_one_line_and_points_to_the_embedded_set(tmp_path: Path, monkeypatch) -> None:
    def failing(*args, **kwargs):
        raise RuntimeError("Error downloading cifar-10-python.tar.gz:\nTried https://x/, got:\n<urlopen error>\n")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", failing)
    with pytest.raises(ConfigError) as err:
        CIFAR10DataModule(data_dir=str(tmp_path / "nowhere"), num_workers=0).prepare_data()
    message = str(err.value)
    assert "\n" not in message and "https://x/" not in message
    assert "download failed (RuntimeError: Error downloading cifar-10-python.tar.gz:)" in message
    assert message.endswith("--data configs/data/fashion_mnist_mini.yaml")
