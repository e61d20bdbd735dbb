"""A killed run resumes where it stopped, in the same W&B run; run.json says whether a run is complete.

The kill test uses the shipped ``configs/experiments/sup_gmp.yaml`` unchanged (no test callbacks,
no extra checkpointing): only the dataset size, the network size and the schedule's steps are
flags, and the CLI's own default checkpoints (every epoch, every ``run.checkpoint_minutes``) and
``--run.resume auto`` must make the resumed run the run it would have been.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from conftest import REPO, TINY_SUP, cli_env, read_run_json, run_cli
from wandb_offline import read_offline_run

from callbacks.resume import AtomicCheckpointIO, truncate_csv

GMP_TINY = [
    "fit", "--config", str(REPO / "configs/experiments/sup_gmp.yaml"),
    "--data", str(REPO / "configs/data/synthetic.yaml"),
    "--data.init_args.train_size", "256", "--data.init_args.test_size", "125",
    "--data.init_args.batch_size", "32", "--data.init_args.num_workers", "0",
    "--model.init_args.backbone", "wrn", "--model.init_args.depth", "10", "--model.init_args.widen_factor", "1",
    "--model.init_args.lr", "0.1", "--model.init_args.milestones", "[100]",
    "--trainer.max_epochs", "6", "--trainer.log_every_n_steps", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    # 8 steps per epoch, 48 in all: events every 4 steps from step 4 to 40
    "--pruning.init_args.begin_step", "4", "--pruning.init_args.end_step", "40", "--pruning.init_args.frequency", "4",
    "--run.checkpoint_minutes", "0.002",  # also checkpoints inside epochs (every ~0.1 s)
]  # fmt: skip


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _step_losses(run: Path) -> list[tuple[int, str]]:
    return [(int(r["step"]), r["train/loss_step"]) for r in _csv_rows(run / "csv" / "metrics.csv") if r.get("train/loss_step")]


def _pruning_state(run: Path) -> dict:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["callbacks"]["GradualMagnitudePruning"]


def _wandb_ids(run: Path) -> set[str]:
    return {p.name.rsplit("-", 1)[-1] for p in (run / "wandb").glob("offline-run-*")}


def _popen(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), *args], cwd=cwd, env=cli_env(),
                            stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen, *, min_step: int, timeout: float = 120.0) -> dict:
    """Poll ``last.json`` until a checkpoint at >= ``min_step`` exists (the process still running)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            info = json.loads((run / "checkpoints" / "last.json").read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("global_step", -1) >= min_step:
            return info
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before a checkpoint at step {min_step}")
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint at step >= {min_step} within {timeout} s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("whole")
    done = run_cli(*GMP_TINY, "--run.dir", str(cwd / "run"), cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return cwd / "run"


def test_kill9_mid_schedule_then_resume_auto_is_the_uninterrupted_run(uninterrupted: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [*GMP_TINY, "--run.dir", str(run), "--run.resume", "auto"]
    proc = _popen(args, tmp_path, tmp_path / "first.log")
    info = _wait_for_checkpoint(run, proc, min_step=12)  # after the schedule's 3rd event, before its end (40)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed = read_run_json(run)
    assert killed["status"] == "running"  # a kill -9 leaves the run unfinished, never "complete"
    assert info["global_step"] < 48

    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed, whole = read_run_json(run), read_run_json(uninterrupted)
    assert resumed["status"] == "complete" and whole["status"] == "complete"
    # the resumed run is the uninterrupted one: masks, events, sparsity, weights, per-sample outputs
    a, b = _pruning_state(uninterrupted), _pruning_state(run)
    assert a["events"] == b["events"] and len(a["events"]) == 10
    assert set(a["masks"]) == set(b["masks"]) and all(torch.equal(a["masks"][k], b["masks"][k]) for k in a["masks"])
    assert resumed["achieved_sparsity"] == whole["achieved_sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert resumed["pruning_events"] == whole["pruning_events"]
    per_a, per_b = np.load(uninterrupted / "per_sample" / "test.npz"), np.load(run / "per_sample" / "test.npz")
    assert sorted(per_a.files) == sorted(per_b.files)
    for name in per_a.files:
        assert np.array_equal(per_a[name], per_b[name]), name
    assert resumed["test_acc"] == whole["test_acc"]
    # one W&B run (same id in both offline folders), a complete CSV with every step once
    assert len(list((run / "wandb").glob("offline-run-*"))) == 2 and len(_wandb_ids(run)) == 1
    assert _wandb_ids(run) == {resumed["wandb_run_id"]}
    steps = _step_losses(run)
    assert [s for s, _ in steps] == list(range(48)) and steps == _step_losses(uninterrupted)
    # run.json records both segments; the killed one as lost
    segments = resumed["segments"]
    assert len(segments) == 2 and segments[0]["ended_as"] == "lost" and segments[1]["ended_as"] == "fit_end"
    assert segments[1]["start_step"] == info["global_step"] or segments[1]["start_step"] > 12
    assert segments[1]["resumed_from"].endswith("checkpoints/last.ckpt")


def test_resume_of_a_complete_run_says_so_and_changes_nothing(uninterrupted: Path, tmp_path: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in uninterrupted.rglob("*") if p.is_file()}
    done = run_cli(*GMP_TINY, "--run.dir", str(uninterrupted), "--run.resume", "auto", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines() == [f"{uninterrupted} is already complete (6/6 epochs, test_acc "
                                                f"{read_run_json(uninterrupted)['test_acc']:.4f}); nothing to do"]  # fmt: skip
    after = {p: p.stat().st_mtime_ns for p in uninterrupted.rglob("*") if p.is_file()}
    assert after == before


def test_a_failing_command_on_an_existing_run_keeps_its_records(uninterrupted: Path, tmp_path: Path) -> None:
    metrics = uninterrupted / "csv" / "metrics.csv"
    before = metrics.read_bytes()
    for extra in (["--model.init_args.lr", "-1"], ["--run.resume", "never"]):
        done = run_cli(*GMP_TINY, "--run.dir", str(uninterrupted), *extra, cwd=tmp_path)
        assert done.returncode == 2
    assert metrics.read_bytes() == before


class PauseForSignal(pl.Callback):
    """Test helper (``--trainer.callbacks+=``): after the second validation batch that follows
    optimiser step ``step`` — the validation loader's workers busy fetching — write ``ready`` and wait
    there until this process has received a stop signal (the test sends it to the whole process
    group from outside, as SLURM's ``--signal``, ``timeout`` and a terminal deliver it)."""

    def __init__(self, step: int, ready: str) -> None:
        self.step, self.ready = step, Path(ready)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.ready.exists() or trainer.sanity_checking or trainer.global_step < self.step or batch_idx != 1:
            return
        from callbacks.resume import STOP

        self.ready.write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while STOP.signum is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # the workers have had the signal too


# the quick start's default data path (the embedded Fashion-MNIST subset: augmentation on the device,
# validation loader workers), a smaller network and 10 steps per epoch: 30 steps, GMP events every 4
GROUP_TINY = [
    "fit", "--config", str(REPO / "configs/quickstart.yaml"),
    "--model.init_args.backbone", "wrn", "--model.init_args.depth", "10", "--model.init_args.widen_factor", "1",
    "--trainer.limit_train_batches", "10", "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
    "--pruning.init_args.begin_step", "4", "--pruning.init_args.end_step", "24", "--pruning.init_args.frequency", "4",
    "--run.checkpoint_minutes", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def group_uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("group_whole")
    done = run_cli(*GROUP_TINY, "--run.dir", str(cwd / "run"), cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return cwd / "run"


@pytest.mark.parametrize("name,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_to_the_whole_process_group_checkpoints_and_resumes_to_the_same_run(
    name: str, code: int, group_uninterrupted: Path, tmp_path: Path
) -> None:
    run, ready = tmp_path / "run", tmp_path / "ready"
    args = [*GROUP_TINY, "--run.dir", str(run), "--run.resume", "auto"]
    helper = "--trainer.callbacks+=" + json.dumps({"class_path": "test_fault_tolerance.PauseForSignal",
                                                   "init_args": {"step": 15, "ready": str(ready)}})  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), *args, helper], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    start = time.monotonic()
    while not ready.exists() and proc.poll() is None and time.monotonic() - start < 240:
        time.sleep(0.02)
    assert ready.exists(), proc.communicate()[1][-3000:]
    os.killpg(proc.pid, getattr(signal, name))  # the run's whole process group: main process and loader workers
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-3000:]
    assert err.strip().splitlines()[-1] == (f"interrupted by {name}; {run}/checkpoints/last.ckpt holds the state: run the same "
                                            "command with --run.resume auto to continue")  # fmt: skip
    assert "DataLoader worker" not in err and "Traceback" not in err
    summary, info = read_run_json(run), json.loads((run / "checkpoints" / "last.json").read_text())
    assert summary["status"] == "interrupted" and summary["status_reason"] == f"SIGTERMException ({name} received)"
    # the checkpoint of the stop, taken in the validation of epoch 1 (after step 20), at the batch boundary
    assert info["reason"] == name.lower() and info["global_step"] == summary["steps_trained"] == 20

    done = run_cli(*args, cwd=tmp_path)  # the same command, resumed
    assert done.returncode == 0, done.stderr[-3000:]
    resumed, whole = read_run_json(run), read_run_json(group_uninterrupted)
    assert resumed["status"] == "complete" and [s["ended_as"] for s in resumed["segments"]] == ["interrupted", "fit_end"]
    # the run it would have been: every step's loss, the masks, the per-sample outputs, the test accuracy
    assert _step_losses(run) == _step_losses(group_uninterrupted) and [s for s, _ in _step_losses(run)] == list(range(30))
    a, b = _pruning_state(group_uninterrupted), _pruning_state(run)
    assert a["events"] == b["events"] and all(torch.equal(a["masks"][k], b["masks"][k]) for k in a["masks"])
    per_a, per_b = np.load(group_uninterrupted / "per_sample" / "test.npz"), np.load(run / "per_sample" / "test.npz")
    assert all(np.array_equal(per_a[k], per_b[k]) for k in per_a.files)
    assert resumed["test_acc"] == whole["test_acc"]


@pytest.mark.parametrize(
    "extra,reason",
    [
        (["--trainer.max_steps", "5"], "trained 1 of trainer.max_epochs=2 epochs (5 of 8 optimiser steps) (stopped by trainer.max_steps=5)"),
        (["--trainer.limit_train_batches", "0"], "no optimiser step was taken"),
        (["--test_after_fit", "false"], "no test stage (test_after_fit=false)"),
    ],
    ids=["max_steps", "no_batches", "no_test"],
)
def test_a_run_cut_short_is_incomplete_and_says_why(extra: list[str], reason: str, tmp_path: Path) -> None:
    done = run_cli("fit", *TINY_SUP, *extra, "--run.dir", str(tmp_path / "run"), "--run.wandb_mode", "disabled", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_run_json(tmp_path / "run")
    assert summary["status"] == "incomplete" and reason in summary["status_reason"], summary["status_reason"]
    assert list(summary).index("status") == len(summary) - 1  # written last


def test_checkpoint_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    good = path.read_bytes()

    def disk_full(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    assert path.read_bytes() == good and list(tmp_path.iterdir()) == [path]  # old file intact, no temp left
    assert torch.load(path, weights_only=True)["step"] == 1


def test_truncate_csv_keeps_rows_up_to_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss\n0,0,1.0\n0,1,0.9\n0,2,0.8\n,2,\n")
    assert truncate_csv(path, 1) == 2
    assert path.read_text().splitlines() == ["epoch,step,train/loss", "0,0,1.0", "0,1,0.9"]


def test_wandb_resume_keeps_one_run_id_in_history(uninterrupted: Path) -> None:
    record = read_offline_run(next((uninterrupted / "wandb").glob("offline-run-*")))
    assert record["summary"]["test/acc"] == pytest.approx(read_run_json(uninterrupted)["test_acc"], abs=1e-6)
