"""Save a run's test representations small, for the UMAP figure of a committed study.

A study commits only its runs' small files (run.json, config.yaml, per_sample/test.npz), not their
checkpoints; the UMAP figure (paper Figure 5) needs each population's test representations h. This
script loads a complete run's ``checkpoints/last.ckpt``, encodes the test set of the dataset in its
``config.yaml`` (the evaluation transform, eval mode, no gradients) and writes
``<run>/per_sample/representations.npz``: ``index`` (a fixed subset of the test set: ``--subset``
samples drawn with ``numpy.random.default_rng(--seed)``, sorted — the subset ``analyze`` embeds),
``label`` and ``features`` (float16, ``[subset, D]``; 2,000 x 64 = 256 kB for WRN-16-1).

    python scripts/export_representations.py studies/fashion_mnist/runs/*/*-s0-*
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from analysis.images import data_config  # noqa: E402
from datamodules.device_augment import DeviceAugment  # noqa: E402

OUT_FILE = Path("per_sample") / "representations.npz"


def _class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def export(run: Path, *, subset: int, seed: int, batch: int = 500) -> Path:
    """Write ``<run>/per_sample/representations.npz`` (see the module doc); returns its path."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"error: {run}: no checkpoints/last.ckpt (train the run first; a study commits no checkpoint)")
    model = _class(config["model"]["class_path"]).load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
    model.eval()
    class_path, init_args = data_config(run)
    datamodule = _class(class_path)(**{**init_args, "download": False, "num_workers": 0})
    images, labels = datamodule.load_arrays(train=False)
    n = len(labels)
    keep = np.sort(np.random.default_rng(seed).choice(n, size=subset, replace=False)) if 0 < subset < n else np.arange(n)
    evaluate = DeviceAugment("none", mean=datamodule.mean, std=datamodule.std)  # torchvision's eval transform, batched
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(keep), batch):
            rows = torch.from_numpy(keep[start : start + batch])
            chunks.append(model.encode(evaluate(images[rows], seed=0)).float())
    out = run / OUT_FILE
    np.savez_compressed(out, index=keep.astype(np.int64), label=labels[torch.from_numpy(keep)].numpy().astype(np.int64),
                        features=torch.cat(chunks).numpy().astype(np.float16))  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with config.yaml and checkpoints/last.ckpt)")
    parser.add_argument("--subset", type=int, default=2000, help="test samples kept (default 2000; 0 = all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset (analyze --umap-seed; default 0)")
    args = parser.parse_args()
    for run in args.runs:
        path = export(run, subset=args.subset, seed=args.seed)
        print(f"{path}: {path.stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    main()
