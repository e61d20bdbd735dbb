"""`python cli.py population --plan`: expand, order parents first, skip complete runs, resume the rest."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, cli_env

from callbacks.run_summary import read_run_json
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
    assert proc.returncode == 130, out
    assert "stopped; run the same command again to continue" in out
    first = next((tmp_path / "runs" / "sup_dense").glob("sup-s0-*"))
    assert read_run_json(first)["status"] == "complete"
    assert read_run_json(second)["status"] == "interrupted"
    first_mtime = (first / "run.json").stat().st_mtime_ns

    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(plan), "--jobs", "2"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == f"population tiny: 3 runs, 1 complete, 2 to run (1 to resume) under {tmp_path / 'runs'}"
    assert any("done  sup_dense seed 1" in line for line in lines) and lines[-1] == "population: all 3 runs complete"
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
