"""The ``--run.resume auto`` folder name (``<run name>-<config hash>``, training.naming.config_hash) across versions.

The name is how ``fit --run.resume auto``, ``population`` and sweeps find a run again, often after the
code moved on. A new argument with a default (a new pruning option, a new Lightning flag) trains the
same thing, so it must not rename anything; a folder named by an earlier version of the hash is found
by its ``config.yaml``; a changed value is a different run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, cli_env

import cli
from training.naming import init_defaults

TINY = [
    "--data", str(REPO / "configs/data/synthetic.yaml"), "--data.init_args.train_size", "128",
    "--data.init_args.test_size", "64", "--data.init_args.batch_size", "32", "--data.init_args.num_workers", "0",
    "--model.init_args.backbone", "wrn", "--model.init_args.depth", "10", "--model.init_args.widen_factor", "1",
    "--trainer.max_epochs", "2", "--run.wandb_mode", "disabled",
]  # fmt: skip

MODULE = '''
from lightning_modules.supervised import SupervisedClassifier


class VersionedModel(SupervisedClassifier):
    def __init__(self, {extra}**kwargs):
        super().__init__(**kwargs)
'''


def _args(root: Path, *extra: str) -> list[str]:
    return ["fit", "--config", str(REPO / "configs/experiments/sup_gmp.yaml"), *TINY, "--seed_everything", "0",
            "--run.root", str(root), "--run.resume", "auto", *extra]  # fmt: skip


def _with_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    """``cp_versioned.VersionedModel`` as this "version" of the code defines it."""
    (tmp_path / "cp_versioned.py").write_text(MODULE.format(extra=extra))
    monkeypatch.delitem(sys.modules, "cp_versioned", raising=False)
    init_defaults.cache_clear()


def test_a_new_argument_with_a_default_keeps_the_folder_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    model = ["--model.class_path", "cp_versioned.VersionedModel"]
    _with_module(tmp_path, monkeypatch, "")
    before = cli.run_dir_for(_args(tmp_path / "runs", *model))
    _with_module(tmp_path, monkeypatch, "warmup_steps: int = 0, ")  # the next version adds an argument
    assert cli.run_dir_for(_args(tmp_path / "runs", *model)) == before
    assert cli.run_dir_for(_args(tmp_path / "runs", *model, "--model.init_args.warmup_steps", "0")) == before
    changed = cli.run_dir_for(_args(tmp_path / "runs", *model, "--model.init_args.warmup_steps", "5"))
    assert changed.parent == before.parent and changed != before  # a value other than the default: another run
    assert cli.run_dir_for(_args(tmp_path / "runs", "--model.init_args.lr", "0.05")) != cli.run_dir_for(
        _args(tmp_path / "runs")
    )


def _legacy_folder(root: Path, config: dict, name: str) -> Path:
    """A complete run folder as an earlier version wrote it: its own hash in the name, its config.yaml."""
    folder = root / "sup_gmp" / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "run.json").write_text(json.dumps({"status": "complete", "epoch": 2, "global_step": 8}))
    return folder


def test_a_folder_named_by_an_earlier_hash_is_found_by_its_config(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    printed = subprocess.run([sys.executable, str(REPO / "cli.py"), *_args(root), "--print_config"], cwd=tmp_path,
                             env=cli_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert printed.returncode == 0, printed.stderr[-2000:]
    config = yaml.safe_load(printed.stdout)
    # what an earlier version saved: before `schedule` (GradualMagnitudePruning) and `weights_only` (Lightning) existed
    assert config["pruning"]["init_args"].pop("schedule") is None and config.pop("weights_only") is None
    new_name = cli.run_dir_for(_args(root))
    legacy = _legacy_folder(root, config, "sup-p0.9-s0-0123456789")
    assert new_name.name != legacy.name and cli.run_dir_for(_args(root)) == legacy

    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "legacy", "root": str(root), "seeds": [0], "args": TINY,
        "cells": {"sup_gmp": {"config": str(REPO / "configs/experiments/sup_gmp.yaml"), "sparsities": [0.9]}},
    }))  # fmt: skip
    dry = subprocess.run([sys.executable, str(REPO / "cli.py"), "population", "--plan", str(plan), "--dry-run"],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    assert dry.stdout.splitlines()[0] == f"population legacy: 1 runs, 1 complete, 0 to run (0 to resume) under {root}"
    assert str(legacy) in dry.stdout

    # a saved config that trains something else is not adopted, whatever its name looks like
    (legacy / "config.yaml").write_text(yaml.safe_dump({**config, "model": {**config["model"], "init_args": {
        **config["model"]["init_args"], "lr": 0.05}}}))  # fmt: skip
    assert cli.run_dir_for(_args(root)) == new_name
