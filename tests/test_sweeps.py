"""The W&B sweeps of configs/sweeps/, exercised offline with W&B's own agent code.

For every sweep: the grid has the stated number of runs; for grid points covering every config and
sparsity (first and last seed), the command the agent builds (``wandb.sdk.launch.sweeps.utils``
``create_sweep_command`` / ``create_sweep_command_args``, assembled as ``wandb_agent.Agent._command_run``
does) parses with the CLI into the intended config, and its run folder is the one the population
runner plans for the same cell (configs/populations/*.yaml): a sweep and the runner write the same
folders.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

import cli
from population.plan import expand, load_plan

SWEEPS = {  # file: (configs, sparsities or None, runs in the grid)
    "table1_dense.yaml": (["sup_dense", "supcon_dense"], None, 60),
    "table1.yaml": (["sup_gmp", "supcon_gmp", "supcon_delta_gmp"], [0.3, 0.5, 0.7, 0.9], 360),
    "table1_oneshot.yaml": (["sup_oneshot", "supcon_oneshot"], [0.3, 0.5, 0.7, 0.9], 240),
    "appendix.yaml": (["sup_gmp", "supcon_gmp", "supcon_delta_gmp", "sup_oneshot", "supcon_oneshot"], [0.95, 0.99], 300),
}


def agent_command(sweep: dict, point: dict) -> list[str]:
    """The command list `wandb agent` runs for one grid point, built with W&B's own functions."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    sweep_command = sweep_utils.create_sweep_command(list(sweep["command"]))
    sweep_vars = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in point.items()}})
    sweep_vars.update(interpreter=["python"], program=[sweep["program"]], env=["/usr/bin/env"])
    command = []
    for chunk in sweep_command:
        chunk = str(chunk)
        command += (sweep_vars.get(chunk[2:-1]) or []) if chunk.startswith("${") and chunk.endswith("}") else [chunk]
    return command


def print_config(args: list[str], capsys, monkeypatch) -> dict:
    monkeypatch.setattr(sys, "argv", ["cli.py"])
    with pytest.raises(SystemExit):
        cli.main([*args, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_sweep_grid_and_agent_commands(name: str, capsys, monkeypatch) -> None:
    configs, sparsities, size = SWEEPS[name]
    sweep = yaml.safe_load((REPO / "configs" / "sweeps" / name).read_text())
    assert sweep["program"] == "cli.py" and sweep["method"] == "grid"
    params = {k: v["values"] for k, v in sweep["parameters"].items()}
    assert params["config"] == [f"configs/experiments/{c}.yaml" for c in configs]
    assert params.get("pruning.init_args.final_sparsity") == sparsities
    assert params["seed_everything"] == list(range(30))
    assert math.prod(len(v) for v in params.values()) == size
    monkeypatch.chdir(REPO)  # the agent runs from the repository root
    points = [dict(zip(params, values)) for values in itertools.product(*params.values())]
    checked = [p for p in points if p["seed_everything"] in (0, 29)]
    assert len(checked) == len(configs) * len(sparsities or [None]) * 2
    for point in checked:
        command = agent_command(sweep, point)
        assert command[:4] == ["/usr/bin/env", "python", "cli.py", "fit"]
        resolved = print_config(command[3:], capsys, monkeypatch)
        assert resolved["seed_everything"] == point["seed_everything"]
        assert resolved["run"]["resume"] == "auto" and resolved["run"]["wandb_mode"] == "online"
        assert resolved["run"]["group"] == Path(point["config"]).stem
        assert "callbacks.metrics.PredictionDepth" in [c["class_path"] for c in resolved["trainer"]["callbacks"]]
        if sparsities is None:
            assert resolved.get("pruning") is None
        else:
            assert resolved["pruning"]["init_args"]["final_sparsity"] == point["pruning.init_args.final_sparsity"]
        if "oneshot" in point["config"]:
            assert resolved["pruning"]["init_args"]["parent"] == f"runs/{Path(point['config']).stem.replace('oneshot', 'dense')}"


def test_a_sweep_and_the_runner_write_the_same_run_folders(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["cli.py"])
    plan = load_plan(REPO / "configs" / "populations" / "table1.yaml")
    runner = {}
    for run in expand(plan, {"sup_dense": "runs/sup_dense", "supcon_dense": "runs/supcon_dense"}):
        if run.seed in (0, 29):
            runner[(run.cell, run.sparsity, run.seed)] = cli.run_dir_for(["fit", *run.args])
    compared = 0
    for name in ("table1_dense.yaml", "table1.yaml", "table1_oneshot.yaml"):
        sweep = yaml.safe_load((REPO / "configs" / "sweeps" / name).read_text())
        params = {k: v["values"] for k, v in sweep["parameters"].items()}
        for values in itertools.product(*params.values()):
            point = dict(zip(params, values))
            if point["seed_everything"] not in (0, 29):
                continue
            key = (Path(point["config"]).stem, point.get("pruning.init_args.final_sparsity"), point["seed_everything"])
            assert cli.run_dir_for(agent_command(sweep, point)[3:]) == runner[key], key
            compared += 1
    assert compared == len(runner) == 2 * (2 + 3 * 4 + 2 * 4)
