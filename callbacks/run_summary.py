"""The run folder and its ``run.json`` summary.

Every run owns one folder, ``trainer.default_root_dir`` (``cli.py`` makes it unique per run):
resolved config, checkpoints, CSV and W&B offline logs, ``per_sample/`` files and ``run.json``.

``run.json`` is assembled by :class:`RunSummary` at the end of ``fit`` and of ``test`` from
 * the LightningModule's ``run_summary()`` (method, backbone, ...),
 * the datamodule's ``run_summary()`` (dataset, ...),
 * every callback that defines ``run_summary(trainer, pl_module) -> dict`` (pruning adds
   ``pruning``, ``target_sparsity``, ``achieved_sparsity``; metric callbacks add their means),
 * the final ``test/*`` metrics (``test_acc`` = ``test/acc``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only


def run_dir(trainer: pl.Trainer) -> Path:
    """This run's folder (``trainer.default_root_dir``)."""
    return Path(trainer.default_root_dir)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file + rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run folders are meant to be shared/read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


class RunSummary(pl.Callback):
    """Write ``<run_dir>/run.json`` at the end of ``fit`` and again after ``test`` (merged)."""

    def __init__(self) -> None:
        self._fit_started: float | None = None
        self._fit_seconds: float | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.perf_counter()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fit_started is not None:
            self._fit_seconds = time.perf_counter() - self._fit_started
        self._write(trainer, pl_module, stage="fit")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, stage="test")

    def collect(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        if hasattr(pl_module, "run_summary"):
            summary.update(pl_module.run_summary())
        dm = getattr(trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "run_summary"):
            summary.update(dm.run_summary())
        for cb in trainer.callbacks:
            if cb is not self and hasattr(cb, "run_summary"):
                summary.update(cb.run_summary(trainer, pl_module))
        summary["seed"] = _seed()
        summary["epochs"] = trainer.max_epochs
        summary["global_step"] = trainer.global_step
        summary["run_dir"] = str(run_dir(trainer).resolve())
        if self._fit_seconds is not None:
            summary["fit_seconds"] = round(self._fit_seconds, 3)
        if stage == "test":
            metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
            summary["test_metrics"] = metrics
            if "test/acc" in metrics:
                summary["test_acc"] = metrics["test/acc"]
        return summary

    @rank_zero_only
    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        path = run_dir(trainer) / "run.json"
        previous: dict[str, Any] = {}
        if path.exists():
            previous = json.loads(path.read_text())
        previous.update(self.collect(trainer, pl_module, stage))
        atomic_write_bytes(path, (json.dumps(_jsonable(previous), indent=2, sort_keys=True) + "\n").encode())


def _seed() -> int | None:
    seed = os.environ.get("PL_GLOBAL_SEED")
    return int(seed) if seed is not None else None
