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

The fits run through ``tests/pinned_cli.py``: CPU arithmetic that does not depend on the CPU model
(oneDNN and NNPACK off, ``ATEN_CPU_CAPABILITY=default``, ``MKL_CBWR=COMPATIBLE``, 2 threads; the same
bits with MKL limited to AVX2). With the default kernels a recording held only on the CPU model it was
made on: on a Xeon with AVX-512 and AMX, the old and the new code agreed with each other bit for bit
but not with the recording made on another machine, from step 3 on.
Record again from the old code with ``python tests/test_speed_equivalence.py --record <checkout of
5ed8d52>`` (this machine's venv).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO, cli_env, read_run_json
from pinned_cli import PINNED_ENV

GOLDEN_FILE = REPO / "tests" / "golden" / "training_before_speed_work.json"
COMMON = [
    "--data.init_args.batch_size", "64", "--model.init_args.backbone", "wrn", "--model.init_args.depth", "10",
    "--model.init_args.widen_factor", "1", "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "2",
    "--trainer.accelerator", "cpu", "--run.wandb_mode", "disabled", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip
NAMES = ("sup_gmp", "supcon")


def runs(root: Path) -> dict[str, list[str]]:
    """The two recorded fits, with the configs of the checkout at ``root``."""
    return {
        "sup_gmp": ["--config", str(root / "configs/experiments/sup_gmp.yaml"), "--data", str(root / "configs/data/fashion_mnist_mini.yaml"),
                    *COMMON, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "12", "--pruning.init_args.begin_step", "4",
                    "--pruning.init_args.end_step", "16", "--pruning.init_args.frequency", "4"],
        "supcon": ["--config", str(root / "configs/experiments/supcon_dense.yaml"),
                   "--data", str(root / "configs/data/fashion_mnist_mini_contrastive.yaml"), *COMMON, "--trainer.max_epochs", "3",
                   "--model.init_args.head_epochs", "1", "--trainer.limit_train_batches", "8"],
    }  # fmt: skip


def pinned_fit(root: Path, name: str, run: Path) -> None:
    """One recorded fit with the checkout at ``root`` (its ``cli.py``), CPU arithmetic pinned."""
    env = {**cli_env(), **PINNED_ENV}
    run.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "pinned_cli.py"), str(root / "cli.py"), "fit", *runs(root)[name], "--run.dir", str(run)],
        cwd=run.parent, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def record(run: Path) -> dict[str, Any]:
    """What the golden file keeps of a finished fit."""
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open(newline="")))
    summary = read_run_json(run)
    arrays = np.load(run / "per_sample" / "test.npz")
    return {
        "step_losses": [[int(r["step"]), r["train/loss_step"]] for r in rows if r.get("train/loss_step")],
        "val_acc": [r["val/acc"] for r in rows if r.get("val/acc")],
        "probe_val_acc": [r["probe/val_acc"] for r in rows if r.get("probe/val_acc")],
        "mask_sha256": summary.get("mask_sha256_per_rank"),
        "test_acc": summary["test_acc"],
        "per_sample_sha256": {k: hashlib.sha256(np.ascontiguousarray(arrays[k]).tobytes()).hexdigest() for k in sorted(arrays.files)},
    }


@pytest.mark.parametrize("name", NAMES)
def test_training_is_bit_identical_to_before_the_speed_work(name: str, tmp_path: Path) -> None:
    pinned_fit(REPO, name, tmp_path / "run")
    got, want = record(tmp_path / "run"), json.loads(GOLDEN_FILE.read_text())["runs"][name]
    for key in want:  # one key at a time: the failure names what differs
        assert got[key] == want[key], key


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Record the golden file from the code before the speed work.")
    parser.add_argument("--record", type=Path, required=True, help="a checkout of commit 5ed8d52")
    old = parser.parse_args().record.resolve()
    golden = {"generated_by": f"commit 5ed8d52 (before the GPU speed work), torch {__import__('torch').__version__} CPU, "
                              "through tests/pinned_cli.py; tests/test_speed_equivalence.py --record", "runs": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in NAMES:
            pinned_fit(old, name, Path(tmp) / name / "run")
            golden["runs"][name] = record(Path(tmp) / name / "run")
    GOLDEN_FILE.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN_FILE}")
