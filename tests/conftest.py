"""Shared test helpers: the real CLI in a subprocess or in-process, fake dataset files."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

# A tiny but real training setup: synthetic data, a WRN-10-1 encoder, no workers, no progress bar.
# The quick start's Sup training (lr 0.1), dense: its pruning schedule is sized for its own data.
TINY_SUP = [
    "--config", str(REPO / "configs/quickstart.yaml"),
    "--pruning", "null",
    "--data", str(REPO / "configs/data/synthetic.yaml"),
    "--data.init_args.train_size", "256",
    "--data.init_args.test_size", "128",
    "--data.init_args.batch_size", "64",
    "--data.init_args.num_workers", "0",
    "--model.init_args.backbone", "wrn",
    "--model.init_args.depth", "10",
    "--model.init_args.widen_factor", "1",
    "--trainer.max_epochs", "2",
    "--trainer.limit_train_batches", "1.0",
    "--trainer.log_every_n_steps", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip

TINY_SUPCON = [
    "--config", str(REPO / "configs/supcon.yaml"),
    "--data", str(REPO / "configs/data/synthetic_contrastive.yaml"),
    "--data.init_args.train_size", "256",
    "--data.init_args.test_size", "128",
    "--data.init_args.batch_size", "64",
    "--data.init_args.num_workers", "0",
    "--model.init_args.backbone", "wrn",
    "--model.init_args.depth", "10",
    "--model.init_args.widen_factor", "1",
    "--model.init_args.head_epochs", "1",
    "--trainer.max_epochs", "3",
    "--trainer.log_every_n_steps", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip


def with_experiment(base: list[str], config: str | Path) -> list[str]:
    """``base`` (TINY_SUP / TINY_SUPCON) with its ``--config`` replaced by ``config`` — an experiment
    config keeps its own ``pruning`` (TINY_SUP's ``--pruning null`` is dropped)."""
    args = list(base)
    args[args.index("--config") + 1] = str(config)
    if "--pruning" in args and args[args.index("--pruning") + 1] == "null":
        at = args.index("--pruning")
        del args[at : at + 2]
    return args


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("CONTRASTIVE_PRUNING_RUN_DIR", raising=False)
    monkeypatch.delenv("WANDB_SERVICE", raising=False)


#: CPU threads of each CLI child: 2 (this machine's cores), 1 when pytest-xdist runs two tests at once
THREADS = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"
if os.environ.get("PYTEST_XDIST_WORKER"):  # and one thread for what a worker computes itself
    import torch

    torch.set_num_threads(1)


def cli_env() -> dict[str, str]:
    # no WANDB_* from this process: an in-process W&B run leaves WANDB_SERVICE pointing at this
    # process's wandb-core, and a child attaching to it writes no .wandb file of its own
    env = {k: v for k, v in os.environ.items() if k != "CONTRASTIVE_PRUNING_RUN_DIR" and not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", PYTHONWARNINGS="ignore", OMP_NUM_THREADS=THREADS)
    # test-only callbacks (e.g. test_protocol.PhaseRecorder) can be named with --trainer.callbacks+=
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_cli(*args: str, cwd: Path, timeout: int = 600, threads: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python cli.py <args>`` in ``cwd`` (runs land in ``cwd/runs``) and return the result
    (``threads``: the child's CPU threads, when a test compares with numbers made at that count)."""
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *args],
        cwd=cwd,
        env={**cli_env(), **({"OMP_NUM_THREADS": threads} if threads else {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def only_run_dir(root: Path) -> Path:
    found = sorted(p.parent for p in root.rglob("run.json"))
    assert len(found) == 1, f"expected one run folder under {root}, found {found}"
    return found[0]


def read_run_json(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def write_fake_cifar10(root: Path, *, n_train_per_batch: int = 20, n_test: int = 30, seed: int = 0) -> np.ndarray:
    """Write CIFAR-10's exact on-disk python format (5 data batches, test batch, meta) under ``root``.

    Returns the test images as ``[N, 32, 32, 3]`` uint8 (HWC) for comparisons. The MD5 checksums
    of course differ from the real files: tests patch only torchvision's integrity check.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(n: int, name: str) -> np.ndarray:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        entry = {
            "batch_label": name,
            "labels": [int(x) for x in rng.integers(0, 10, size=n)],
            "data": data,
            "filenames": [f"img_{i}.png" for i in range(n)],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh)
        return data

    for i in range(1, 6):
        batch(n_train_per_batch, f"data_batch_{i}")
    test = batch(n_test, "test_batch")
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": n_train_per_batch, "num_vis": 3072}  # fmt: skip
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh)
    return test.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
