"""contrastive-pruning command line: ``python cli.py {fit,validate,test,predict} --config ...``.

A LightningCLI in subclass mode (``model: class_path/init_args``, ``data: class_path/init_args``)
with, on top of Lightning's flags:

* ``run.*`` — where the run folder goes and how it is named/grouped in W&B (:class:`RunOptions`);
* ``pruning`` — one pruning callback (``class_path``/``init_args``), so a sweep or a flag such as
  ``--pruning.init_args.final_sparsity 0.9`` reaches it;
* ``test_after_fit`` — ``fit`` ends by evaluating the final weights on the test set (default on).

Every run gets its own folder (``<run.root>/<run.group>/<name>-<time>-<id>`` unless
``--trainer.default_root_dir`` / ``--run.dir`` names one): resolved ``config.yaml``, checkpoints,
W&B offline files, CSV logs, per-sample files and ``run.json``. Default loggers: W&B (offline unless
``--run.wandb_mode online`` or ``WANDB_MODE=online``) and CSV.

Bad input (a :class:`~lightning_modules.errors.ConfigError`) prints one ``error: ...`` line and
exits with status 2 before training starts.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from callbacks.pruning.base import PruningCallback
from callbacks.run_summary import RunSummary
from datamodules.base import ImageDataModule
from lightning_modules.base import RepresentationModule
from lightning_modules.errors import ConfigError, check_choice

class _DropAdverts(logging.Filter):
    """Lightning prints a product tip at every Trainer start; it is noise in every run's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
# torch 2.14 deprecates an isinstance check Lightning 2.6 still makes on every step's output
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
# "Seed set to N" would precede a one-line config error; the seed is in config.yaml and run.json anyway
logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)

RUN_DIR_ENV = "CONTRASTIVE_PRUNING_RUN_DIR"  # shares one run folder with DDP child processes
WANDB_PROJECT = "contrastive-pruning"
METHOD_NAMES = {"SupervisedClassifier": "sup", "SupConModel": "supcon"}  # others: class name minus "Model", lower case


@dataclass
class RunOptions:
    """Run folder and W&B identity.

    Args:
        root: parent folder of all run folders.
        group: experiment name; the run folder's parent and the W&B ``group``.
        name: run name (default: the method, e.g. ``sup``/``supcon``, plus the seed).
        dir: use exactly this run folder (multi-node jobs: give every node the same path).
        tags: extra W&B tags (the pruning schedule and sparsity are added automatically).
        wandb_mode: ``offline`` (default; ``wandb sync`` later), ``online`` or ``disabled``;
            defaults to ``$WANDB_MODE`` when that is set.
        wandb_project: W&B project.
    """

    root: str = "runs"
    group: str = "default"
    name: str | None = None
    dir: str | None = None
    tags: list[str] = field(default_factory=list)
    wandb_mode: str | None = None
    wandb_project: str = WANDB_PROJECT


class WandbConfigCallback(SaveConfigCallback):
    """Save ``config.yaml`` in the run folder and put the whole resolved config into the W&B run config."""

    def save_config(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        # rank 0 only (Lightning calls this on global zero): always <run_dir>/config.yaml
        path = Path(trainer.default_root_dir) / self.config_filename
        path.parent.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, str(path), skip_none=False, overwrite=True, multifile=False)
        config = self.config.as_dict() if hasattr(self.config, "as_dict") else dict(self.config)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update(config, allow_val_change=True)


class ContrastivePruningCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(RunOptions, "run")
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="after fit, evaluate the final weights on the test set"
        )
        parser.add_lightning_class_args(PruningCallback, "pruning", subclass_mode=True, required=False)
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")

    # -- run folder ----------------------------------------------------------------------------
    def before_instantiate_classes(self) -> None:
        cfg = self.config.get(str(self.subcommand), self.config)
        run: Any = cfg.run
        mode = run.wandb_mode or os.environ.get("WANDB_MODE", "offline")
        check_choice("run.wandb_mode", mode, ("offline", "online", "disabled", "dryrun"))
        if cfg.trainer.get("max_epochs") is not None and cfg.trainer.max_epochs < 1:
            raise ConfigError(
                f"trainer.max_epochs={cfg.trainer.max_epochs} is not allowed; it must be a whole number >= 1"
            )
        self._wandb_mode = "offline" if mode == "dryrun" else mode
        self._run_dir = self._resolve_run_dir(cfg)

    def _resolve_run_dir(self, cfg: Any) -> Path:
        run = cfg.run
        if cfg.trainer.get("default_root_dir"):
            path = Path(cfg.trainer.default_root_dir)
        elif run.dir:
            path = Path(run.dir)
        elif os.environ.get(RUN_DIR_ENV):
            path = Path(os.environ[RUN_DIR_ENV])
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(run.root) / run.group / f"{self._run_name(cfg)}-{stamp}-{secrets.token_hex(3)}"
        # DDP children re-run this script: they must land in the same folder
        os.environ[RUN_DIR_ENV] = str(path)
        return path

    def _run_name(self, cfg: Any) -> str:
        if cfg.run.name:
            return str(cfg.run.name)
        model_cls = str(cfg.model.class_path).rsplit(".", 1)[-1]
        method = METHOD_NAMES.get(model_cls, model_cls.removesuffix("Model").lower())
        if model_cls == "SupConModel" and cfg.model.init_args.get("supervised") is False:
            method = "simclr"
        seed = cfg.get("seed_everything")
        return f"{method}-s{seed}" if isinstance(seed, int) and not isinstance(seed, bool) else method

    def _tags(self, cfg: Any) -> list[str]:
        tags = list(cfg.run.tags or [])
        pruning = cfg.get("pruning")
        if pruning:
            tags.append(str(pruning.class_path).rsplit(".", 1)[-1])
            sparsity = pruning.init_args.get("final_sparsity") if pruning.get("init_args") else None
            if sparsity is not None:
                tags.append(f"sparsity={sparsity}")
        else:
            tags.append("dense")
        return tags

    def _check_before_trainer(self, cfg: Any) -> None:
        """Bad model/trainer combinations and missing data fail here, before the Trainer, loggers or training."""
        if self.subcommand == "fit" and hasattr(self.model, "check_fit_config"):
            self.model.check_fit_config(cfg.trainer.get("max_epochs"), self.datamodule)
        pruning = self._get(self.config_init, "pruning")
        if self.subcommand == "fit" and isinstance(pruning, PruningCallback):
            pruning.check_model(self.model)  # e.g. N:M with an m that does not divide a layer's inputs
        if self.subcommand == "fit" and hasattr(pruning, "check_fit_config"):
            pruning.check_fit_config(cfg.trainer.get("max_epochs"), self.model)  # e.g. One-Shot finetune_epochs
        # download / verify the dataset once per node (Lightning's prepare_data contract); DDP
        # children (LOCAL_RANK > 0) skip it. A missing dataset raises ConfigError here.
        if self.datamodule is not None and os.environ.get("LOCAL_RANK", "0") == "0":
            self.datamodule.prepare_data()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        cfg = self.config.get(str(self.subcommand), self.config)
        self._check_before_trainer(cfg)
        trainer_cfg = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        run_dir = self._run_dir
        trainer_cfg["default_root_dir"] = str(run_dir)
        if trainer_cfg.get("logger") in (None, True):
            trainer_cfg["logger"] = self._default_loggers(cfg, run_dir)
        callbacks = list(trainer_cfg.get("callbacks") or [])
        if trainer_cfg.get("enable_checkpointing", True) is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0))
        if trainer_cfg["logger"] and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        if not any(isinstance(c, RunSummary) for c in callbacks):
            callbacks.append(RunSummary())
        trainer_cfg["callbacks"] = callbacks
        extra = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        return self._instantiate_trainer(trainer_cfg, [c for c in extra if c is not None])

    def _default_loggers(self, cfg: Any, run_dir: Path) -> list[Any]:
        loggers: list[Any] = []
        if self._wandb_mode != "disabled":
            model_cls = str(cfg.model.class_path).rsplit(".", 1)[-1]
            loggers.append(
                WandbLogger(
                    save_dir=str(run_dir),
                    project=cfg.run.wandb_project,
                    name=run_dir.name,
                    group=cfg.run.group,
                    job_type=self._run_name(cfg).split("-s")[0] if model_cls else None,
                    tags=self._tags(cfg),
                    offline=self._wandb_mode == "offline",
                    mode=self._wandb_mode,
                )
            )
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
        return loggers

    def after_fit(self) -> None:
        cfg = self.config_init.get(str(self.subcommand), self.config_init)
        if cfg.get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=True)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["analyze"]:
        from analysis.cli import main as analyze_main  # population analysis: issue-level subcommand

        sys.exit(analyze_main(argv[1:]))
    try:
        ContrastivePruningCLI(
            RepresentationModule,
            ImageDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=WandbConfigCallback,
            save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
            args=args,
            auto_configure_optimizers=False,
        )
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is (or wraps) bad user input
        config_error = find_config_error(exc)
        if config_error is None:
            raise
        print(f"error: {config_error}", file=sys.stderr)
        sys.exit(2)


def find_config_error(exc: BaseException | None) -> ConfigError | None:
    """The :class:`ConfigError` behind ``exc`` (jsonargparse wraps errors raised while instantiating)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConfigError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


if __name__ == "__main__":
    main()
