"""The speed work changed how a step runs, never what is trained: bit-identical on the CPU.

``tests/golden/training_before_speed_work.json`` holds what two short real fits gave before the GPU
speed work (2 CPU threads, commit 5ed8d52: augmentation parameters on the host, one device pass for both views, the
evaluation transform on the device, foreach masks, the sync-free progress bar and accuracy): every
step's loss, the validation accuracies, the GMP masks' SHA-256, the test accuracy and the SHA-256 of
every per-sample array (predictions, losses, logits-derived columns, Q-Score). Sup GMP changes its
masks 4 times and holds them; SCL runs two contrastive epochs (RandomResizedCrop, ColorJitter in
per-sample order, grayscale: the device augmentation of both views) and the linear-head epoch. The
same commands today must give the same bytes. (Regenerate only for an intended change of what is
trained, and say so in the commit.)
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, read_run_json, run_cli

GOLDEN = json.loads((REPO / "tests" / "golden" / "training_before_speed_work.json").read_text())
COMMON = [
    "--data.init_args.batch_size", "64", "--model.init_args.backbone", "wrn", "--model.init_args.depth", "10",
    "--model.init_args.widen_factor", "1", "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "2",
    "--trainer.accelerator", "cpu", "--run.wandb_mode", "disabled", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip
RUNS = {
    "sup_gmp": ["--config", str(REPO / "configs/experiments/sup_gmp.yaml"), "--data", str(REPO / "configs/data/fashion_mnist_mini.yaml"),
                *COMMON, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "12", "--pruning.init_args.begin_step", "4",
                "--pruning.init_args.end_step", "16", "--pruning.init_args.frequency", "4"],
    "supcon": ["--config", str(REPO / "configs/experiments/supcon_dense.yaml"),
               "--data", str(REPO / "configs/data/fashion_mnist_mini_contrastive.yaml"), *COMMON, "--trainer.max_epochs", "3",
               "--model.init_args.head_epochs", "1", "--trainer.limit_train_batches", "8"],
}  # fmt: skip


@pytest.mark.parametrize("name", list(RUNS))
def test_training_is_bit_identical_to_before_the_speed_work(name: str, tmp_path: Path) -> None:
    done = run_cli("fit", *RUNS[name], "--run.dir", str(tmp_path / "run"), cwd=tmp_path, threads="2")  # as recorded
    assert done.returncode == 0, done.stderr[-3000:]
    run, want = tmp_path / "run", GOLDEN["runs"][name]
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open(newline="")))
    assert [[int(r["step"]), r["train/loss_step"]] for r in rows if r.get("train/loss_step")] == want["step_losses"]
    assert [r["val/acc"] for r in rows if r.get("val/acc")] == want["val_acc"]
    assert [r["probe/val_acc"] for r in rows if r.get("probe/val_acc")] == want["probe_val_acc"]
    summary = read_run_json(run)
    assert summary.get("mask_sha256_per_rank") == want["mask_sha256"] and summary["test_acc"] == want["test_acc"]
    arrays = np.load(run / "per_sample" / "test.npz")
    got = {k: hashlib.sha256(np.ascontiguousarray(arrays[k]).tobytes()).hexdigest() for k in sorted(arrays.files)}
    assert got == want["per_sample_sha256"]
