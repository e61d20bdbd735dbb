"""`python cli.py population --plan`: expand, order parents first, skip complete runs, resume the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, cli_env

from callbacks.run_summary import read_run_json
from population.devices import DeviceSlots, parse_devices
from population.plan import PlanError, expand, load_plan

TINY = [
    "--data", str(REPO / "configs/data/synthetic.yaml"), "--data.init_args.train_size", "128",
    "--data.init_args.test_size", "64", "--data.init_args.batch_size", "32", "--data.init_args.num_workers", "0",
    "--model.init_args.backbone", "wrn", "--model.init_args.depth", "10", "--model.init_args.widen_factor", "1",
    "--model.init_args.lr", "0.1", "--model.init_args.milestones", "[100]", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false", "--run.wandb_mode", "disabled", "--run.checkpoint_minutes", "0.002",
]  # fmt: skip


def write_plan(folder: Path) -> Path:
    plan = {
        "name": "tiny", "root": str(folder / "runs"), "seeds": [0, 1], "args": TINY,
        "cells": {
            "sup_dense": {"config": str(REPO / "configs/experiments/sup_dense.yaml"), "args": ["--trainer.max_epochs", "4"]},
            "sup_oneshot": {"config": str(REPO / "configs/experiments/sup_oneshot.yaml"), "sparsities": [0.5], "seeds": [0],
                            "parent": "sup_dense", "args": ["--trainer.max_epochs", "1", "--pruning.init_args.finetune_epochs", "1"]},
        },
    }  # fmt: skip
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def population(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), "population", *args], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def test_plan_expands_parents_first_with_the_runs_arguments(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path))
    runs = expand(plan, {"sup_dense": "R/sup_dense"})
    assert [r.label for r in runs] == ["sup_dense seed 0", "sup_dense seed 1", "sup_oneshot 50% seed 0"]
    child = runs[-1].args
    assert child[child.index("--pruning.init_args.parent") + 1] == "R/sup_dense"
    assert child[child.index("--pruning.init_args.final_sparsity") + 1] == "0.5"
    assert child[-4:] == ("--run.root", str(tmp_path / "runs"), "--run.resume", "auto")


@pytest.mark.parametrize(
    "edit,message",
    [
        ({"seeds": "5-1"}, "seeds='5-1': the range must go up, e.g. '0-29'"),
        ({"bogus": 1}, "plan key 'bogus' is not allowed; the keys are name, root, seeds, args, cells"),
        ({"cells": {"a": {"config": "nowhere.yaml"}}}, "cells.a.config='nowhere.yaml' does not exist"),
        ({"cells": {"a": {"config": str(REPO / "configs/sup.yaml"), "parent": "b"}}},
         "cells.a.parent='b' is not a cell of this plan; choose one of a"),
        ({"cells": {"a": {"config": str(REPO / "configs/sup.yaml"), "sparsities": [1.5]}}},
         "cells.a.sparsities=[1.5] is not allowed; give a list of sparsities in [0, 1)"),
    ],
    ids=["seeds", "key", "config", "parent", "sparsity"],
)
def test_bad_plans_are_one_line_exit_2(edit: dict, message: str, tmp_path: Path) -> None:
    plan = yaml.safe_load(write_plan(tmp_path).read_text())
    plan.update(edit)
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    with pytest.raises(PlanError) as err:
        load_plan(tmp_path / "plan.yaml")
    assert str(err.value) == message
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(tmp_path / "plan.yaml")],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [f"error: {message}"]


def test_the_runner_survives_a_stop_and_continues_where_it_stopped(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    proc = population("--plan", str(plan), cwd=tmp_path)
    # stop it (SIGTERM, as a scheduler would) while the second dense run trains
    start = time.monotonic()
    second = None
    while time.monotonic() - start < 180:
        found = sorted((tmp_path / "runs" / "sup_dense").glob("sup-s1-*/checkpoints/last.json"))
        if found:
            second = found[0].parent.parent
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert second is not None, proc.communicate()[0]
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out  # 128 + SIGTERM
    assert "stopped; run the same command again to continue" in out
    first = next((tmp_path / "runs" / "sup_dense").glob("sup-s0-*"))
    assert read_run_json(first)["status"] == "complete"
    assert read_run_json(second)["status"] == "interrupted"
    first_mtime = (first / "run.json").stat().st_mtime_ns

    # what is left costs: sup_dense from its complete run's s/epoch, sup_oneshot calibrated (3 timed steps)
    dry = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(plan), "--dry-run", "--calibrate", "3",
                          "--devices", "0,1", "--runs-per-device", "2"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]
    cost = dry.stdout.split("cost of the runs left (2 per GPU on GPU 0,1 (4 at a time)):\n", 1)[1].splitlines()
    rate = read_run_json(first)["fit_seconds"] / 4
    trained = read_run_json(second).get("epochs_trained", 0)
    assert cost[1].split() == ["sup_dense", "1", str(4 - trained), f"{rate:.2f}", *cost[1].split()[4:6], "1", "complete", "run(s)"]
    assert cost[2].split()[:3] == ["sup_oneshot", "1", "1"] and cost[2].endswith("calibrated, 3 steps"), cost
    assert cost[3].startswith("  total: ") and "at 4 at a time" in cost[3]
    assert not list(tmp_path.glob("runs/sup_oneshot/*"))  # the calibration run left nothing in the plan's root

    # the rest on two (pretend) GPUs: each run pinned to one by CUDA_VISIBLE_DEVICES
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(plan), "--devices", "0,1"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == f"population tiny: 3 runs, 1 complete, 2 to run (1 to resume) under {tmp_path / 'runs'}"
    assert any("done  sup_dense seed 1" in line for line in lines) and lines[-1] == "population: all 3 runs complete"
    starts = [line for line in lines if " start " in line]
    assert [line.rsplit(" on GPU ", 1)[1] for line in starts] == ["0", "1"]  # both at once, one on each GPU
    assert read_run_json(second)["cuda_visible_devices"] == "0"
    assert any("done  sup_oneshot 50% seed 0" in line for line in lines)  # its parent (seed 0) was complete: ran beside seed 1
    assert any("left, ETA" in line for line in lines)
    assert (first / "run.json").stat().st_mtime_ns == first_mtime  # a complete run is never trained again
    resumed = read_run_json(second)
    assert resumed["status"] == "complete" and len(resumed["segments"]) == 2  # continued, not restarted
    child = read_run_json(next((tmp_path / "runs" / "sup_oneshot").glob("sup-p0.5-s0-*")))
    assert child["parent_run"]["path"] == str(first.resolve())  # the dense run of its seed
    logs = sorted(p.name for p in (tmp_path / "runs" / "logs").rglob("*.log"))
    assert len(logs) == 3
    again = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(plan)],
                           cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0 and again.stdout.splitlines()[0].endswith("3 runs, 3 complete, 0 to run (0 to resume) under "
                                                                          f"{tmp_path / 'runs'}")
    json.dumps(child)  # run.json stays plain JSON


def test_seeds_picks_runs_and_a_bad_list_is_one_line_exit_2(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    dry = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(plan), "--seeds", "1",
                          "--dry-run"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0].startswith("population tiny: 1 runs, 0 complete, 1 to run")
    assert "sup_dense seed 1" in dry.stdout and "seed 0" not in dry.stdout
    bad = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(plan), "--seeds", "a,b"],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: --seeds 'a,b' is not allowed; give comma-separated integers, e.g. 0,1,2"]
    assert not (tmp_path / "runs").exists()


def test_a_dry_run_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``population --dry-run | head -1``: the reader leaves early; no traceback, status 1."""
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(write_plan(tmp_path)),
                             "--dry-run"], cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == "", err


def _processes() -> list[tuple[int, int, list[str]]]:
    """(pid, parent pid, argv) of every process of this machine (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out.append((int(entry.name), ppid, argv))
    return out


def test_submitit_local_tasks_requeue_a_preempted_task_and_write_the_runners_folders(tmp_path: Path) -> None:
    """``--launcher local``: the plan's tasks through submitit's local executor (the code path of
    ``--launcher slurm``); one task is preempted (SIGUSR2, what SLURM sends before a time limit or a
    preemption) while its run trains: its run checkpoints, submitit requeues the task, the task
    resumes the run; every run ends complete in the folder the plain runner would have used."""
    plan = write_plan(tmp_path)
    proc = population("--plan", str(plan), "--launcher", "local", cwd=tmp_path)
    start, task = time.monotonic(), None
    while time.monotonic() - start < 240 and proc.poll() is None and task is None:
        if list((tmp_path / "runs" / "sup_dense").glob("sup-s1-*/checkpoints/last.json")):
            table = _processes()
            pids = {pid: (ppid, argv) for pid, ppid, argv in table}
            runs = [ppid for pid, ppid, argv in table  # this test's run of seed 1 (other tests may run beside it)
                    if "fit" in argv and "--seed_everything" in argv and argv[argv.index("--seed_everything") + 1] == "1"
                    and any(str(tmp_path) in a for a in argv)]  # fmt: skip
            task = next((p for p in runs if any("submitit.core._submit" in a for a in pids.get(p, (0, []))[1])), None)
        time.sleep(0.05)
    assert task is not None, proc.communicate()[0] if proc.poll() is not None else "no task process found"
    os.kill(task, signal.SIGUSR2)  # preempted: submitit calls PopulationTask.checkpoint and requeues
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    lines = out.splitlines()
    assert lines[1] == "stage 1: 2 runs in 2 task(s) of up to 1 -> local jobs " + lines[1].split("local jobs ")[1]
    assert lines[-1] == "population: all 3 runs complete"
    logs = "\n".join(p.read_text() for p in (tmp_path / "runs" / "submitit").glob("*_log.out"))
    assert "preempted or timed out; stopping the runs (each checkpoints) and requeueing" in logs
    # the folders are the plain runner's: a dry run of the plan finds every run complete there
    dry = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(plan), "--dry-run"],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert dry.stdout.splitlines()[0].endswith("3 runs, 3 complete, 0 to run (0 to resume) under " + str(tmp_path / "runs"))
    second = read_run_json(next((tmp_path / "runs" / "sup_dense").glob("sup-s1-*")))
    assert second["status"] == "complete" and [s["ended_as"] for s in second["segments"]] == ["interrupted", "fit_end"]


def test_slurm_submission_writes_two_job_arrays_children_after_parents(tmp_path: Path) -> None:
    """``--launcher slurm`` through submitit's SLURM executor, with ``sbatch``/``srun`` stand-ins that
    record what they are given: the scripts submitit writes, read back (not run)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        "#!/usr/bin/env bash\n"
        f'n=$(( $(cat {tmp_path}/counter 2>/dev/null || echo 4241) + 1 )); echo $n > {tmp_path}/counter\n'
        f'cp "$1" {tmp_path}/sbatch_$n.sh; echo "Submitted batch job $n"\n'
    )  # fmt: skip
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    plan = yaml.safe_load(write_plan(tmp_path).read_text())
    plan["seeds"] = [0, 1, 2]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    env = {**cli_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(tmp_path / "plan.yaml"),
                           "--launcher", "slurm", "--partition", "gpu", "--runs-per-device", "2", "--time", "12:00:00",
                           "--slurm-arg", "account=proj"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[1:5] == [
        "stage 1: 3 runs in 2 task(s) of up to 2 -> job array 4242",
        "  task 0: sup_dense seed 0, sup_dense seed 1",
        "  task 1: sup_dense seed 2",
        "stage 2: 1 runs in 1 task(s) of up to 2 -> job array 4243, after job 4242",
    ]
    parents, children = (tmp_path / "sbatch_4242.sh").read_text(), (tmp_path / "sbatch_4243.sh").read_text()
    for line in ("#SBATCH --array=0-1%", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-task=1", "#SBATCH --time=720",
                 "#SBATCH --signal=USR2@90", "#SBATCH --account=proj", f"export PYTHONPATH={REPO}", "-u -m submitit.core._submit"):  # fmt: skip
        assert line in parents, (line, parents)
    assert "#SBATCH --dependency=afterany:4242" in children and "--dependency" not in parents
    # each array task is a checkpointable PopulationTask holding its runs, in the plan's order
    from submitit.core.utils import DelayedSubmission

    pickles = sorted((tmp_path / "runs" / "submitit").glob("*_submitted.pkl"))
    tasks = [DelayedSubmission.load(p).function for p in pickles]
    assert sorted([j.run.label for j in t.jobs] for t in tasks) == [
        ["sup_dense seed 0", "sup_dense seed 1"], ["sup_dense seed 2"], ["sup_oneshot 50% seed 0"]]  # fmt: skip
    assert all(t.per_device == 2 and t.use_gpus and hasattr(t, "checkpoint") for t in tasks)


def test_device_slots_keep_k_runs_on_each_gpu_least_loaded_first(monkeypatch: pytest.MonkeyPatch) -> None:
    slots = DeviceSlots(parse_devices("0,1,2"), per_device=2, jobs=1)
    assert slots.capacity == 6 and slots.describe() == "2 per GPU on GPU 0,1,2 (6 at a time)"
    taken = [slots.take() for _ in range(6)]
    assert taken == ["0", "1", "2", "0", "1", "2"] and not slots.has_room()
    slots.give_back("1")
    assert slots.has_room() and slots.take() == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # a SLURM allocation: auto takes what it was given
    assert parse_devices("auto") == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(PlanError, match="^--devices auto: no GPU is visible"):
        parse_devices("auto")
    unpinned = DeviceSlots([], per_device=1, jobs=2)
    assert [unpinned.take(), unpinned.take()] == [None, None] and not unpinned.has_room()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--devices", "0,0"], "--devices '0,0' names GPU 0 twice; use --runs-per-device K for K runs on each GPU"),
        (["--devices", "0,1", "--jobs", "2"], "--jobs and --devices do not go together; with --devices, --runs-per-device K sets the runs per GPU"),
        (["--runs-per-device", "2"], "--runs-per-device needs --devices (e.g. --devices auto); without it, --jobs N sets the runs at a time"),
        (["--devices", "0", "--runs-per-device", "0"], "--runs-per-device 0 is out of range; it must be >= 1"),
        (["--partition", "gpu"], "--partition needs --launcher slurm (or local)"),
        (["--launcher", "local", "--time", "soon"], "--time 'soon' is not allowed; give [D-]HH:MM:SS (e.g. 24:00:00) or whole minutes >= 1"),
        (["--launcher", "local", "--slurm-arg", "qos"], "--slurm-arg 'qos' is not allowed; give KEY=VALUE, e.g. account=myproject"),
        (["--calibrate", "3"], "--calibrate only goes with --dry-run (it times a few steps to project the cost)"),
    ],
    ids=["repeated_gpu", "jobs_and_devices", "k_without_devices", "k_zero", "partition_alone", "time", "slurm_arg", "calibrate"],
)
def test_bad_runner_arguments_are_one_line_exit_2(extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from population.runner import main

    assert main(["--plan", str(write_plan(tmp_path)), *extra]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    assert not (tmp_path / "runs").exists()
