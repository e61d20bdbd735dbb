"""On a CUDA GPU (skipped without one): the training step reads nothing back from the device, and the
CUDA-graph fast path trains what the eager path trains.

Both run the real ``cli.py fit`` with ``configs/trainer/gpu.yaml`` (bf16 mixed precision, channels_last,
augmentation on the device) on the embedded Fashion-MNIST subset, W&B offline, the progress bar on.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from conftest import REPO, read_run_json, run_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

GPU = ["--config", str(REPO / "configs/trainer/gpu.yaml")]
GRAPHS = ["--config", str(REPO / "configs/trainer/gpu_graphs.yaml")]
SUP = ["--config", str(REPO / "configs/experiments/sup_dense.yaml"), "--data", str(REPO / "configs/data/fashion_mnist_mini.yaml")]
GMP = ["--config", str(REPO / "configs/experiments/sup_gmp.yaml"), "--data", str(REPO / "configs/data/fashion_mnist_mini.yaml"),
       "--pruning.init_args.begin_step", "2", "--pruning.init_args.end_step", "4", "--pruning.init_args.frequency", "1"]  # fmt: skip
SCL = ["--config", str(REPO / "configs/experiments/supcon_dense.yaml"),
       "--data", str(REPO / "configs/data/fashion_mnist_mini_contrastive.yaml"), "--model.init_args.head_epochs", "1"]  # fmt: skip


class SyncErrorWindow(pl.Callback):
    """Test helper: from the end of training step ``start`` to the end of step ``stop`` (the data
    fetch, transfer and augmentation of the steps between included) any host-device synchronisation
    raises (``torch.cuda.set_sync_debug_mode("error")``); the steps ran are written to ``path``."""

    def __init__(self, start: int, stop: int, path: str) -> None:
        self.start, self.stop, self.path, self.checked = start, stop, path, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.start < step <= self.stop:
            self.checked.append(step)
        if step == self.start:
            torch.cuda.set_sync_debug_mode("error")
        elif step == self.stop:
            torch.cuda.set_sync_debug_mode("default")
            Path(self.path).write_text(json.dumps(self.checked))


@pytest.mark.parametrize("name,args", [("sup", SUP), ("sup_gmp", GMP), ("supcon", SCL)], ids=["sup", "gmp", "scl"])
def test_a_training_step_never_waits_for_the_device(name: str, args: list[str], tmp_path: Path) -> None:
    steps = tmp_path / "steps.json"
    window = "--trainer.callbacks+=" + json.dumps({"class_path": "test_cuda.SyncErrorWindow",
                                                   "init_args": {"start": 6, "stop": 14, "path": str(steps)}})  # fmt: skip
    done = run_cli("fit", *args, *GPU, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "20",
                   "--trainer.limit_val_batches", "2", "--test_after_fit", "false", window, "--run.dir", str(tmp_path / "run"),
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(steps.read_text()) == list(range(7, 15))  # 8 steps (masks held in the GMP run) under "error"


def _losses(run: Path) -> list[float]:
    rows = csv.DictReader((run / "csv" / "metrics.csv").open(newline=""))
    return [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]


@pytest.mark.parametrize("name,args,epochs", [("sup", SUP, "2"), ("supcon", SCL, "3")], ids=["sup", "scl"])
def test_the_cuda_graph_fast_path_trains_the_eager_model(name: str, args: list[str], epochs: str, tmp_path: Path) -> None:
    """Eager and captured, same seed and data, deterministic cuDNN: the loss of every step agrees to
    float noise (a graph that replayed stale weights, or BatchNorm statistics moved by the capture's
    warm-up, would part from the eager curve within a few steps)."""
    common = [*args, "--trainer.max_epochs", epochs, "--trainer.limit_train_batches", "25", "--trainer.limit_val_batches", "2",
              "--trainer.log_every_n_steps", "1", "--trainer.benchmark", "false", "--test_after_fit", "false"]  # fmt: skip
    eager = run_cli("fit", *common, *GPU, "--run.dir", str(tmp_path / "eager"), cwd=tmp_path)
    graphs = run_cli("fit", *common, *GRAPHS, "--run.dir", str(tmp_path / "graphs"), cwd=tmp_path)
    assert eager.returncode == 0 and graphs.returncode == 0, eager.stderr[-3000:] + graphs.stderr[-3000:]
    a, b = _losses(tmp_path / "eager"), _losses(tmp_path / "graphs")
    assert len(a) == len(b) >= 50
    worst = max(abs(x - y) / max(abs(x), 1e-6) for x, y in zip(a, b))
    print(f"{name}: {len(a)} steps, largest relative loss difference {worst:.2e}")
    assert worst < 2e-2, list(zip(a, b))
    assert read_run_json(tmp_path / "graphs")["cuda_graph_shapes"], "no step ran from a CUDA graph"
