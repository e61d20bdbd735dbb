"""UMAP (McInnes et al. 2018) picture of the test representations, coloured by class.

:func:`umap_embedding` (umap-learn) and :func:`umap_png` (matplotlib) are plain functions;
:class:`UMAPPlot` is the thin callback. It keeps ``outputs["features"]`` (the encoder output ``h``)
and the labels of the test batches, gathers and de-duplicates them, and on global rank 0 embeds a
random subsample in 2-D, draws it coloured by class — optionally with the PIEs of a given file
highlighted — and saves ``<run_dir>/figures/umap_test.png`` (and ``umap_test.npz`` with the
sample indices and 2-D coordinates), logged to W&B as an image. With ``every_n_val_epochs > 0``
it does the same for validation (``figures/umap_val_epoch<k>.png``).

PIE file formats accepted by ``pie_file``: an ``.npz`` with a boolean ``pie`` column and, when it
does not cover the dataset indices ``0..N-1`` in order, an ``index`` column (as ``analysis/``
writes per-sample files); or an ``.npy`` holding either a boolean mask over dataset indices or the
integer dataset indices of the PIEs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from callbacks.metrics.logs import log_image
from callbacks.metrics.per_sample import PerSampleCallback, figure_path, require_outputs
from common.errors import ConfigError, check_range
from common.io import atomic_write_bytes
from common.protocols import NamedClasses
from common.timing import Stopwatch


def umap_embedding(features: np.ndarray, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP coordinates ``[N, 2]`` of ``features`` ``[N, D]`` (Euclidean; ``seed`` fixes the layout)."""
    import umap  # umap-learn; imported here because it is slow to import (numba)

    n = features.shape[0]
    if n < 3:
        raise ValueError(f"UMAP needs at least 3 samples, got {n}")
    # a fixed random_state makes umap-learn single-threaded anyway; say so to silence its warning
    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist, random_state=seed, n_jobs=1
    )
    return np.asarray(reducer.fit_transform(np.asarray(features, dtype=np.float32)), dtype=np.float32)


def load_pie_mask(path: str | Path, index: np.ndarray) -> np.ndarray:
    """Boolean ``[len(index)]``: which of the dataset indices ``index`` are PIEs according to ``path``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"UMAPPlot.pie_file={str(path)!r} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "pie" not in data.files:
                raise ConfigError(f"UMAPPlot.pie_file={str(path)!r} has no 'pie' array (found {data.files})")
            pie = data["pie"].astype(bool)
            pie_index = data["index"] if "index" in data.files else np.arange(len(pie))
        pies = set(pie_index[pie].tolist())
    elif path.suffix == ".npy":
        values = np.load(path, allow_pickle=False)
        pies = set(np.flatnonzero(values).tolist()) if values.dtype == bool else set(values.astype(np.int64).tolist())
    else:
        raise ConfigError(f"UMAPPlot.pie_file={str(path)!r} must be a .npz (with a 'pie' column) or a .npy file")
    return np.fromiter((int(i) in pies for i in index), dtype=bool, count=len(index))


def umap_png(
    coords: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    highlight: np.ndarray | None = None,
    title: str = "UMAP",
) -> bytes:
    """Scatter ``coords`` ``[N, 2]`` coloured by ``labels``; ``highlight`` ``[N]`` bool drawn as black crosses."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(7, 6))
    try:
        for i, c in enumerate(classes):
            sel = labels == c
            name = class_names[int(c)] if class_names is not None and int(c) < len(class_names) else str(int(c))
            ax.scatter(coords[sel, 0], coords[sel, 1], s=3, color=cmap(i % cmap.N), label=name, alpha=0.7, linewidths=0)
        if highlight is not None and highlight.any():
            ax.scatter(
                coords[highlight, 0], coords[highlight, 1], s=18, marker="x", color="black", linewidths=0.8,
                label=f"PIE ({int(highlight.sum())})",
            )
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(markerscale=3, fontsize=7, loc="best", frameon=False)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=120)
        return buffer.getvalue()
    finally:
        plt.close(fig)


class UMAPPlot(PerSampleCallback):
    """UMAP of the test representations -> ``figures/umap_test.png`` + W&B image ``test/umap``.

    Args:
        subsample: number of test samples embedded, drawn at random with ``seed``
            (``None`` = all; must be >= 3).
        seed: subsample and UMAP layout seed.
        n_neighbors, min_dist: UMAP parameters (umap-learn defaults).
        pie_file: optional PIE file (formats: module docstring) whose PIEs are highlighted.
        every_n_val_epochs: also plot the validation representations every this many epochs
            (0 = test only).
    """

    def __init__(
        self,
        subsample: int | None = 10_000,
        seed: int = 0,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        pie_file: str | None = None,
        every_n_val_epochs: int = 0,
    ) -> None:
        if subsample is not None and subsample < 3:
            raise ConfigError(f"UMAPPlot.subsample={subsample!r} is too small; it must be >= 3 (or null for all test samples)")
        check_range("UMAPPlot.n_neighbors", n_neighbors, low=2)
        check_range("UMAPPlot.min_dist", min_dist, low=0)
        check_range("UMAPPlot.every_n_val_epochs", every_n_val_epochs, low=0)
        if pie_file is not None:
            load_pie_mask(pie_file, np.zeros(0, dtype=np.int64))  # fail now on a missing or malformed file
        self.subsample = subsample
        self.seed = seed
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.pie_file = pie_file
        super().__init__(every_n_val_epochs)
        self._summary: dict[str, Any] = {}

    @override
    def _collect(self, outputs: Any, hook: str) -> None:
        out = require_outputs(outputs, ("index", "label", "features"), who="UMAPPlot", hook=hook)
        self._collector.add(index=out["index"], label=out["label"], features=out["features"].float())

    @override
    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, stage: str, prefix: str) -> Path | None:
        return self._plot(trainer, stage=stage, key=f"{prefix}/umap")

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = self._plot(trainer, stage="test", key="test/umap")
        if path is not None:
            self._summary["umap_png"] = str(path)

    def _plot(self, trainer: pl.Trainer, *, stage: str, key: str) -> Path | None:
        """Gather, fit UMAP and draw (:meth:`_draw`); ``umap_seconds`` is the test picture's whole time."""
        with Stopwatch() as watch:
            path = self._draw(trainer, stage=stage, key=key)
        if path is not None and stage == "test":
            self._summary["umap_seconds"] = watch.rounded()
        return path

    def _draw(self, trainer: pl.Trainer, *, stage: str, key: str) -> Path | None:
        arrays = self._collector.gather(trainer)  # collective: every rank calls it
        self._collector.clear()
        if arrays is None or not trainer.is_global_zero:
            return None
        n = len(arrays["index"])
        keep = np.arange(n)
        if self.subsample is not None and self.subsample < n:
            keep = np.sort(np.random.default_rng(self.seed).choice(n, size=self.subsample, replace=False))
        if len(keep) < 3:
            return None
        index, labels, features = arrays["index"][keep], arrays["label"][keep], arrays["features"][keep]
        with Stopwatch() as fit:
            rank_zero_info(f"UMAPPlot: fitting UMAP on {len(keep)} {stage} representations ({features.shape[1]}-d) ...")
            coords = umap_embedding(features, seed=self.seed, n_neighbors=self.n_neighbors, min_dist=self.min_dist)
        rank_zero_info(f"UMAPPlot: UMAP of {len(keep)} {stage} representations done in {fit.seconds:.1f} s")
        highlight = load_pie_mask(self.pie_file, index) if self.pie_file is not None else None
        names = trainer.datamodule.class_names if isinstance(trainer.datamodule, NamedClasses) else None
        png = umap_png(coords, labels, class_names=names, highlight=highlight, title=f"UMAP of {len(keep)} {stage} representations")
        path = figure_path(trainer, f"umap_{stage}.png")
        atomic_write_bytes(path, png)
        buffer = io.BytesIO()
        np.savez(buffer, index=index, label=labels, umap=coords)
        atomic_write_bytes(path.with_suffix(".npz"), buffer.getvalue())
        log_image(trainer, key, path, caption=stage)
        return path

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """``umap_png`` (path of the test picture) and ``umap_seconds``."""
        return dict(self._summary)


__all__ = ["UMAPPlot", "umap_embedding", "umap_png", "load_pie_mask"]
