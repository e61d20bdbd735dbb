"""The LightningCLI of ``python cli.py fit|validate|test|predict``: the parser (``run.*``, ``pruning``,
``test_after_fit``, a config's ``compose`` list), the run folder and its resuming, every check before
anything is written, the Trainer's default callbacks, loggers and plugins, and the end of a fit.

:mod:`cli` is its entry point; :mod:`training.target` parses a command with it to find the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.trainer.setup import _log_device_info

from callbacks.progress import SyncFreeProgressBar
from callbacks.pruning.base import PruningCallback
from callbacks.pruning.oneshot import OneShotPruning
from callbacks.resume import AtomicCheckpointIO, ResumableCSVLogger, ResumeCheckpoint, RngState, StopSignals, read_last_info, truncate_csv
from callbacks.run_summary import RunSummary, read_run_json
from callbacks.sync_batchnorm import GlobalBatchNormSync
from common.config_compose import COMPOSE_KEY, drop_inserted, expand_config_args
from common.errors import ConfigError, check_choice, check_range
from common.parser_errors import CLASS_SLOTS, known_classes
from common.protocols import ChecksFit, PlannedModule
from common.run_folder import CHECKPOINTS_DIR, CSV_DIR, LAST_CKPT_FILE, METRICS_CSV_FILE
from common.trainer_checks import check_trainer_values
from datamodules.base import ImageDataModule
from training.messages import end_summary, one_line, progress_text
from training.naming import RESUME_ENV, RUN_DIR_ENV, can_create_in, config_hash, is_ddp_child, method_of, nearest_existing, run_name, run_tags, same_run_folder
from training.options import RESUME_MODES, RunOptions, whole_batch_counts

# the method and pruning packages import their classes on first use; jsonargparse knows (for short
# class names and the "known subclasses" of --help) only the subclasses already imported
for _slot in CLASS_SLOTS:
    known_classes(_slot)


class _DropAdverts(logging.Filter):
    """Lightning prints a product tip at every Trainer start; it is noise in every run's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
# torch 2.14 deprecates an isinstance check Lightning 2.6 still makes on every step's output
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
# jsonargparse 4.49 deprecates skip_none; config.yaml must keep its None values (skip_none=False)
warnings.filterwarnings("ignore", message=r"(?s).*skip_none parameter was deprecated")
# run_dir_for parses a run's own command with args=... while sys.argv holds the population command
# that asked for it (cli.py population --dry-run, the runner): LightningCLI's "args and sys.argv" warning
warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
# "Seed set to N" would precede a one-line config error; the seed is in config.yaml and run.json anyway
logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)

#: the run folder this command created (a start that fails on bad input removes it again)
CREATED: dict[str, Path | None] = {"run_dir": None}


class AlreadyComplete(Exception):
    """``--run.resume auto`` on a finished run: one line, exit 0, nothing done."""


class ContrastivePruningCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(RunOptions, "run")
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="after fit, evaluate the final weights on the test set"
        )
        parser.add_lightning_class_args(PruningCallback, "pruning", subclass_mode=True, required=False)
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        # a config file's `compose:` list (common/config_compose.py): accepted here, applied by
        # parse_arguments, never dumped (print_config, config.yaml) and removed after parsing
        parser.add_argument(f"--{COMPOSE_KEY}", type=Any, default=None, help=argparse.SUPPRESS)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Lightning's parsing, with each ``--config`` file's ``compose`` bases as ``--config`` before it.

        The inserted files leave the parsed ``config`` list again and ``compose`` leaves the config:
        the result is that of the same config written out in full (same W&B config, same hash).
        """
        if isinstance(args, (dict, Namespace)):
            super().parse_arguments(parser, args)
            return
        expanded, inserted = expand_config_args(sys.argv[1:] if args is None else list(args))
        if not inserted:
            super().parse_arguments(parser, args)
        elif args is None:  # what Lightning does with sys.argv, bases included (no "args and argv" warning)
            self.config = parser.parse_args(expanded)
        else:
            super().parse_arguments(parser, expanded)
        subcommand = self.config.get("subcommand")
        for cfg in (self.config, self.config.get(str(subcommand)) if subcommand else None):
            if isinstance(cfg, Namespace):
                cfg.pop(COMPOSE_KEY, None)
                if inserted and isinstance(cfg.get("config"), list):
                    cfg["config"] = drop_inserted(cfg["config"], inserted)

    # -- before anything is instantiated: run options, run folder, resume -------------------------
    def before_instantiate_classes(self) -> None:
        cfg = self.config.get(str(self.subcommand), self.config)
        run: Any = cfg.run
        mode = run.wandb_mode or os.environ.get("WANDB_MODE", "offline")
        check_choice("run.wandb_mode", mode, ("offline", "online", "disabled", "dryrun"))
        check_choice("run.resume", run.resume, RESUME_MODES)
        check_range("run.checkpoint_minutes", run.checkpoint_minutes, low=0)
        whole_batch_counts(cfg.trainer)
        check_trainer_values(cfg.trainer.as_dict() if hasattr(cfg.trainer, "as_dict") else dict(cfg.trainer))
        ckpt = cfg.get("ckpt_path")
        if ckpt and not Path(ckpt).is_file():
            raise ConfigError(f"ckpt_path={ckpt!r} does not exist or is not a file; give the path of a .ckpt file")
        self._wandb_mode = "offline" if mode == "dryrun" else mode
        self._resume: dict[str, Any] = {}
        if is_ddp_child():
            self._run_dir = Path(os.environ[RUN_DIR_ENV])
            self._resume = json.loads(os.environ.get(RESUME_ENV) or "{}")
        else:
            self._run_dir = self._resolve_run_dir(cfg)
            if self.subcommand == "fit":
                self._resume = self._plan_resume(cfg, self._run_dir)
            os.environ[RUN_DIR_ENV] = str(self._run_dir)
            os.environ[RESUME_ENV] = json.dumps(self._resume)
        if self._resume.get("ckpt_path") and not ckpt:
            cfg.ckpt_path = self._resume["ckpt_path"]

    def _resolve_run_dir(self, cfg: Any) -> Path:
        run = cfg.run
        if cfg.trainer.get("default_root_dir"):
            path = Path(cfg.trainer.default_root_dir)
        elif run.dir:
            path = Path(run.dir)
        elif run.resume == "auto":
            name, defaults = run_name(cfg), self._parser(self.subcommand).get_defaults().as_dict()
            digest = config_hash(cfg, defaults)
            path = Path(run.root) / run.group / f"{name}-{digest}"
            if not path.exists():
                path = same_run_folder(path.parent, name, digest, defaults) or path
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(run.root) / run.group / f"{run_name(cfg)}-{stamp}-{secrets.token_hex(3)}"
        where = nearest_existing(path)
        writable = os.access(where, os.W_OK | os.X_OK) if where == path.absolute() else can_create_in(where)
        if not (where.is_dir() and writable):
            raise ConfigError(
                f"the run folder {path} cannot be created: {where} is not a writable folder; "
                "choose another --run.root or --run.dir"
            )
        CREATED["run_dir"] = None if path.exists() else path
        return path

    def _plan_resume(self, cfg: Any, path: Path) -> dict[str, Any]:
        """What ``--run.resume`` means for this folder: a checkpoint to continue from, the W&B id,
        the CSV rows to keep; or a one-line refusal."""
        summary = read_run_json(path)
        last = path / LAST_CKPT_FILE
        if cfg.run.resume == "never":
            if summary is not None and not cfg.get("ckpt_path"):
                raise ConfigError(
                    f"run.dir={str(path)!r} already holds a run (status {summary.get('status', 'unknown')}); "
                    "pass --run.resume auto to continue it, or choose another folder"
                )
            return {}
        # auto
        if summary is not None and summary.get("status") == "complete":
            raise AlreadyComplete(f"{path} is already complete ({progress_text(summary)}); nothing to do")
        plan: dict[str, Any] = {"wandb_id": (summary or {}).get("wandb_run_id")}
        if last.is_file():
            info = read_last_info(path / CHECKPOINTS_DIR) or {}
            plan.update(ckpt_path=str(last), resume_step=info.get("global_step"))
        elif summary is not None:
            plan["resume_step"] = -1  # restart from scratch in the same folder
        return plan

    # -- the Trainer, then every check, before any file is written ---------------------------------
    def _check_before_fit(self, cfg: Any, trainer: Trainer) -> None:
        """Bad model/trainer/pruning/data combinations fail here: after the Trainer is built (so its
        world size and batch limits are known) and before any logger, run folder or training."""
        if self.subcommand != "fit":
            if self.datamodule is not None and os.environ.get("LOCAL_RANK", "0") == "0":
                self.datamodule.prepare_data()
            return
        pruning = self._get(self.config_init, "pruning")
        max_epochs = cfg.trainer.get("max_epochs")
        if isinstance(pruning, PruningCallback):
            pruning.check_max_epochs(max_epochs)  # e.g. One-Shot finetune_epochs vs max_epochs
            pruning.configure_model(self.model)  # e.g. One-Shot: the fine-tune phase, the parent's weights
        if isinstance(pruning, OneShotPruning):
            pruning.check_fit_config(max_epochs, self.model)  # One-Shot: the module's own fit check
        if isinstance(self.model, PlannedModule):
            self.model.check_fit_config(max_epochs, self.datamodule)
        if isinstance(pruning, PruningCallback):
            pruning.check_model(self.model)  # e.g. N:M with an m that does not divide a layer's inputs
        for callback in trainer.callbacks:
            if isinstance(callback, ChecksFit):
                callback.check_fit(trainer, self.model)  # e.g. CudaGraphEncoder off a GPU
        # download / verify the dataset once per node (Lightning's prepare_data contract); DDP
        # children (LOCAL_RANK > 0) skip it. A missing dataset raises ConfigError here.
        if self.datamodule is not None:
            if os.environ.get("LOCAL_RANK", "0") == "0":
                self.datamodule.prepare_data()
            if isinstance(self.datamodule, ImageDataModule):
                specs = self.model.train_data_specs() if isinstance(self.model, PlannedModule) else {}
                self.datamodule.check([s for s in specs.values() if s is not None])
        if isinstance(pruning, PruningCallback) and isinstance(self.datamodule, ImageDataModule):
            plan = self.model.training_plan(trainer, self.datamodule)
            pruning.check_plan(plan, self.model)  # e.g. a schedule that ends after the run's last step

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        cfg = self.config.get(str(self.subcommand), self.config)
        trainer_cfg = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        run_dir = self._run_dir
        trainer_cfg["default_root_dir"] = str(run_dir)
        if trainer_cfg.get("logger") in (None, True):
            trainer_cfg["logger"] = self._default_loggers(cfg, run_dir)
        callbacks = list(trainer_cfg.get("callbacks") or [])
        if trainer_cfg.get("enable_checkpointing", True) is not False and self.subcommand == "fit":
            callbacks.append(ResumeCheckpoint(run_dir / CHECKPOINTS_DIR, every_minutes=cfg.run.checkpoint_minutes))
            trainer_cfg["enable_checkpointing"] = any(isinstance(c, ModelCheckpoint) for c in callbacks)
        if not any(isinstance(c, RngState) for c in callbacks):
            callbacks.append(RngState())
        if self.subcommand == "fit" and not any(isinstance(c, StopSignals) for c in callbacks):
            callbacks.append(StopSignals())
        if trainer_cfg.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(SyncFreeProgressBar())  # Lightning's bar, minus a device read per step
        if trainer_cfg["logger"] and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        self._summary = next((c for c in callbacks if isinstance(c, RunSummary)), None)
        if self._summary is None:
            self._summary = RunSummary()
            callbacks.append(self._summary)
        trainer_cfg["callbacks"] = callbacks
        plugins = trainer_cfg.get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(hasattr(p, "save_checkpoint") for p in plugins):
            plugins.append(AtomicCheckpointIO())
        if trainer_cfg.get("sync_batchnorm"):
            # torch.nn.SyncBatchNorm works on GPUs only; this one on every backend (tested on CPU ranks)
            trainer_cfg["sync_batchnorm"] = False
            plugins.append(GlobalBatchNormSync())
        trainer_cfg["plugins"] = plugins
        extra = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        with quiet_lightning():  # bad input must be the only line: device info is printed after the checks
            try:
                trainer = self._instantiate_trainer(trainer_cfg, [c for c in extra if c is not None])
            except (MisconfigurationException, ValueError, TypeError) as err:
                raise ConfigError(f"trainer: {one_line(str(err))}") from err
            self._check_before_fit(cfg, trainer)
        self._summary.extra.update(self._summary_extra(cfg))  # after the checks: One-Shot has found its parent
        _log_device_info(trainer)  # the lines Lightning prints at Trainer start, now that the input is good
        self._prepare_resume(run_dir)
        return trainer

    def _summary_extra(self, cfg: Any) -> dict[str, Any]:
        extra: dict[str, Any] = {"wandb_run_id": self._wandb_id if self._wandb_mode != "disabled" else None}
        pruning = self._get(self.config_init, "pruning")
        if isinstance(pruning, OneShotPruning) and (info := pruning.parent_summary()) is not None:
            extra["parent_run"] = info
        return extra

    def _prepare_resume(self, run_dir: Path) -> None:
        """Keep the rows of ``csv/metrics.csv`` up to the checkpoint's step (the resumed fit logs the
        rest again); nothing else in the folder is touched."""
        step = self._resume.get("resume_step")
        if step is not None and not is_ddp_child():
            truncate_csv(run_dir / METRICS_CSV_FILE, int(step))

    @property
    def _wandb_id(self) -> str:
        if not getattr(self, "_wandb_id_value", None):
            # a resumed run keeps its W&B run; under a W&B sweep agent the run is the agent's (WANDB_RUN_ID)
            self._wandb_id_value = self._resume.get("wandb_id") or os.environ.get("WANDB_RUN_ID") or secrets.token_hex(4)
        return self._wandb_id_value

    def _default_loggers(self, cfg: Any, run_dir: Path) -> list[Any]:
        loggers: list[Any] = []
        if self._wandb_mode != "disabled":
            loggers.append(
                WandbLogger(
                    save_dir=str(run_dir),
                    project=cfg.run.wandb_project,
                    name=run_dir.name,
                    id=self._wandb_id,
                    resume="allow",
                    group=cfg.run.group,
                    job_type=method_of(cfg),
                    tags=run_tags(cfg),
                    offline=self._wandb_mode == "offline",
                    mode=self._wandb_mode,
                )
            )
        loggers.append(ResumableCSVLogger(save_dir=str(run_dir), name=CSV_DIR, version=""))
        return loggers

    def after_fit(self) -> None:
        cfg = self.config_init.get(str(self.subcommand), self.config_init)
        tested = False
        if cfg.get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=True)
            tested = True
        if self._summary is not None:
            status = self._summary.finish(self.trainer, self.model, tested=tested)
            if self.trainer.is_global_zero:
                print(end_summary(self._run_dir, status, self._wandb_mode), flush=True)


@contextlib.contextmanager
def quiet_lightning() -> Any:
    """Lightning's info lines (devices, batch limits) held back while the configuration is checked."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
