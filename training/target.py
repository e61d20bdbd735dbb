"""The run folder a training command would use, without training: what ``population`` and its
``--dry-run`` need to know of every run (its folder, its epochs) before starting any."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError
from datamodules.base import ImageDataModule
from lightning_modules.base import RepresentationModule
from training.lightning_cli import CREATED, ContrastivePruningCLI
from training.messages import user_error_message
from training.naming import RESUME_ENV, RUN_DIR_ENV


class _RunDirFound(Exception):
    def __init__(self, target: RunTarget) -> None:
        self.target = target


@dataclass(frozen=True)
class RunTarget:
    """Where ``python cli.py fit <args>`` would write, and how many epochs it trains (``trainer.max_epochs``)."""

    folder: Path
    max_epochs: int | None


class _RunDirOnly(ContrastivePruningCLI):
    """Parses a command and stops before anything is instantiated, with the run folder it would use."""

    def before_instantiate_classes(self) -> None:
        cfg = self.config.get(str(self.subcommand), self.config)
        epochs = cfg.trainer.get("max_epochs")
        raise _RunDirFound(RunTarget(self._resolve_run_dir(cfg), int(epochs) if isinstance(epochs, int) else None))


def run_target_for(args: list[str]) -> RunTarget:
    """The run folder ``python cli.py <args>`` would use and its ``trainer.max_epochs`` (no model,
    data or Trainer is built; with ``--run.resume auto`` and no ``--run.dir`` the folder is the
    config-hash folder, the same on every machine).

    Raises:
        ConfigError: for bad input, as the command itself would.
    """
    saved = {k: os.environ.get(k) for k in (RUN_DIR_ENV, RESUME_ENV)}
    try:
        _RunDirOnly(RepresentationModule, ImageDataModule, subclass_mode_model=True, subclass_mode_data=True,
                    args=list(args), auto_configure_optimizers=False, parser_kwargs={"exit_on_error": False})  # fmt: skip
    except _RunDirFound as found:
        return found.target
    except Exception as exc:  # noqa: BLE001 - bad input becomes a ConfigError, anything else is re-raised
        message = user_error_message(exc)
        if message is None:
            raise
        raise ConfigError(message) from exc
    finally:
        CREATED["run_dir"] = None
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    raise RuntimeError("the command did not reach the run-folder step")


def run_dir_for(args: list[str]) -> Path:
    """The run folder ``python cli.py <args>`` would use (see :func:`run_target_for`)."""
    return run_target_for(args).folder
