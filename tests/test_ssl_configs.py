"""The sparse self-supervised configs (configs/experiments/byol_*, simclr_*) through the real CLI: each parses
and instantiates as intended, and bad arguments are one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import REPO
from ssl_helpers import TINY

import cli
from callbacks.pruning import PruneAndRegrow, SynchronizedPruning
from common.errors import ConfigError
from lightning_modules import BYOLModel, SDCLRModel

SSL_CONFIGS = sorted((REPO / "configs/experiments").glob("byol_*.yaml")) + sorted((REPO / "configs/experiments").glob("simclr_*.yaml"))


def test_every_ssl_config_parses_and_instantiates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert len(SSL_CONFIGS) >= 10
    seen = {}
    for config in SSL_CONFIGS:
        built = cli.ContrastivePruningCLI(
            cli.RepresentationModule, cli.ImageDataModule, subclass_mode_model=True, subclass_mode_data=True,
            save_config_callback=cli.WandbConfigCallback, save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
            args=["--config", str(config), *TINY, "--run.dir", str(tmp_path / config.stem)], run=False,
            auto_configure_optimizers=False,
        )
        pruning = built.config_init.get("pruning")
        if pruning is not None:
            pruning.check_model(built.model)  # what `fit` checks before the Trainer exists
        callbacks = {type(c).__name__ for c in built.trainer.callbacks}
        assert {"PerSamplePredictions", "QScore"} <= callbacks, config.name
        if pruning is not None:
            assert pruning in built.trainer.callbacks, config.name
        seen[config.stem] = (type(built.model).__name__, type(pruning).__name__ if pruning is not None else None)
        os.environ.pop(cli.RUN_DIR_ENV, None)
    assert seen["byol_synccp"] == seen["byol_synccp_gmp"] == ("BYOLModel", "SynchronizedPruning")
    assert seen["byol_synccp_2to4"] == ("BYOLModel", "SynchronizedPruning")
    assert seen["byol_regrow"] == ("BYOLModel", "PruneAndRegrow")
    assert seen["simclr_sdclr"] == ("SDCLRModel", None)
    assert seen["byol_dense"] == ("BYOLModel", None) and seen["simclr_gmp"] == ("SupConModel", "GradualMagnitudePruning")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SynchronizedPruning(0.9, 0, 10, 1, density_gap=0.95), "density_gap=0.95 is out of range; it must be in [0, 0.9]"),
        (lambda: SynchronizedPruning(0.5, 0, 10, 1, density_gap=-0.1), "density_gap=-0.1 is out of range; it must be in [0, 0.5]"),
        (lambda: SynchronizedPruning(0.5, 0, 10, 1, score="grad"), "score='grad' is not allowed; choose one of 'magnitude', 'ema'"),
        (lambda: PruneAndRegrow(0.9, 0, 10, 1, drop_fraction=0.0), "drop_fraction=0.0 is out of range; it must be in (0, 1)"),
        (lambda: PruneAndRegrow(0.9, 0, 10, 1, drop_fraction=1.0), "drop_fraction=1.0 is out of range; it must be in (0, 1)"),
        (lambda: SDCLRModel(prune_percent=1.0), "model.prune_percent=1.0 is out of range; it must be in [0, 1)"),
        (lambda: BYOLModel(base_tau=1.5), "model.base_tau=1.5 is out of range; it must be in [0, 1]"),
    ],
)
def test_bad_arguments_are_one_config_error(make, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("config", "extra", "message"),
    [
        ("byol_synccp_gmp.yaml", ["--pruning.init_args.density_gap", "0.95"], "error: density_gap=0.95 is out of range; it must be in [0, 0.9]"),
        ("byol_regrow.yaml", ["--pruning.init_args.drop_fraction", "1"], "error: drop_fraction=1.0 is out of range; it must be in (0, 1)"),
        ("byol_synccp_2to4.yaml", ["--pruning.init_args.nm_indivisible", "error"],
         "error: m=4 does not divide the input channels of encoder.conv1.weight (3); choose an m that divides them "
         "or set nm_indivisible='skip' to leave such weights dense"),
    ],
    ids=["gap", "drop_fraction", "nm"],
)  # fmt: skip
def test_bad_input_through_the_cli_is_one_line(config, extra, message, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", "--config", str(REPO / "configs/experiments" / config), *TINY, *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [message]
    assert not list(tmp_path.rglob("*.ckpt")) and not (tmp_path / "runs").exists()
