"""Build (or check) the embedded Fashion-MNIST subset ``datamodules/data/fashion_mnist_mini.npz``.

The subset is a fixed-seed, class-balanced draw from the official Fashion-MNIST splits
(Fashion-MNIST is MIT-licensed, (c) Zalando SE): 1,000 training images per class (10,000) from the
official train split and 200 test images per class (2,000) from the official test split. Within a
class the images are ranked by ``SHA-256("fashion_mnist_mini:<seed>:<split>:<source index>")`` and
the first ones are kept, so the draw depends on no library's random-number stream; the kept images
stay in their official order.

The file is a NumPy ``.npz`` (a zip of ``.npy`` members, LZMA-compressed, readable by ``np.load``)
with ``{train,test}_images`` (uint8 ``[N, 28, 28]``, unpadded), ``{train,test}_labels`` (uint8
``[N]``) and ``{train,test}_source_indices`` (int32 ``[N]``: the position of each image in its
official split). It is written byte-for-byte deterministically (fixed member order, dates and
attributes), so running this script twice gives the same SHA-256, which
``datamodules.fashion_mnist.MINI_SHA256`` records and the DataModule verifies at load time.

Usage::

    python scripts/make_fashion_mnist_mini.py                     # write it (from the Debian files)
    python scripts/make_fashion_mnist_mini.py --source <idx dir>  # from another folder of idx files
    python scripts/make_fashion_mnist_mini.py --check             # regenerate in memory, compare; exit 1 on mismatch
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from common.io import atomic_write_bytes  # noqa: E402
from datamodules.fashion_mnist import (  # noqa: E402  (after the sys.path line so it runs from a checkout)
    DEBIAN_DIR,
    FILES,
    MINI_PATH,
    MINI_SHA256,
    read_idx,
)

SEED = 0
PER_CLASS = {"train": 1000, "test": 200}
NUM_CLASSES = 10
# fixed zip metadata: the earliest date a zip can hold, Unix "rw-r--r--" regular files
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ZIP_ATTR = (0o100644 << 16)


def find_idx(source: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (source / name).is_file():
            return source / name
    raise SystemExit(
        f"error: {stem}[.gz] not found in {source}; install Debian's dataset-fashion-mnist "
        f"(files land in {DEBIAN_DIR}) or pass --source <folder of the four official idx files>"
    )


def select(labels: np.ndarray, per_class: int, split: str, seed: int = SEED) -> np.ndarray:
    """Sorted source indices: per class, the ``per_class`` indices of smallest SHA-256 rank."""

    def rank(i: int) -> bytes:
        return hashlib.sha256(f"fashion_mnist_mini:{seed}:{split}:{i}".encode()).digest()

    chosen: list[int] = []
    for c in range(NUM_CLASSES):
        members = np.flatnonzero(labels == c).tolist()
        if len(members) < per_class:
            raise SystemExit(f"error: the {split} split has only {len(members)} images of class {c}, need {per_class}")
        chosen += sorted(members, key=rank)[:per_class]
    return np.array(sorted(chosen), dtype=np.int32)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def deterministic_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` whose bytes depend only on ``arrays`` (``np.savez`` stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_LZMA
            info.create_system = 3  # Unix, whatever the platform
            info.external_attr = ZIP_ATTR
            zf.writestr(info, npy_bytes(array))
    return buf.getvalue()


def build(source: Path) -> tuple[bytes, dict[str, float]]:
    """The file's bytes and the normalisation statistics of its padded training images."""
    arrays: dict[str, np.ndarray] = {}
    for split, train in (("train", True), ("test", False)):
        images = read_idx(find_idx(source, FILES[train][0]))
        labels = read_idx(find_idx(source, FILES[train][1]))
        idx = select(labels, PER_CLASS[split], split)
        arrays[f"{split}_images"] = images[idx]
        arrays[f"{split}_labels"] = labels[idx]
        arrays[f"{split}_source_indices"] = idx
    padded = np.pad(arrays["train_images"], ((0, 0), (2, 2), (2, 2))).astype(np.float64) / 255.0
    stats = {"mean": float(padded.mean()), "std": float(padded.std())}
    return deterministic_npz(arrays), stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=Path(DEBIAN_DIR), help="folder of the four official idx files")
    parser.add_argument("--out", type=Path, default=MINI_PATH, help="where to write the .npz")
    parser.add_argument("--check", action="store_true", help="regenerate in memory and compare with --out; exit 1 on mismatch")
    args = parser.parse_args(argv)

    data, stats = build(args.source)
    digest = hashlib.sha256(data).hexdigest()
    print(f"size {len(data)} bytes ({len(data) / 2**20:.2f} MiB), sha256 {digest}")
    print(f"padded 32x32 training images: mean {stats['mean']:.4f}, std {stats['std']:.4f}")

    if args.check:
        found = hashlib.sha256(args.out.read_bytes()).hexdigest() if args.out.is_file() else "none (file missing)"
        ok = True
        if found != digest:
            print(f"MISMATCH: {args.out} has sha256 {found}, regenerated {digest}")
            ok = False
        if digest != MINI_SHA256:
            print(f"MISMATCH: datamodules.fashion_mnist.MINI_SHA256 is {MINI_SHA256}, regenerated {digest}")
            ok = False
        print(f"check {'passed' if ok else 'FAILED'}: {args.out}")
        return 0 if ok else 1

    atomic_write_bytes(args.out, data)
    print(f"wrote {args.out}")
    if digest != MINI_SHA256:
        print(f"note: update MINI_SHA256 in datamodules/fashion_mnist.py to {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
