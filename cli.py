"""contrastive-pruning command line: ``python cli.py {fit,validate,test,predict} --config ...``.

A LightningCLI in subclass mode (``model: class_path/init_args``, ``data: class_path/init_args``)
with, on top of Lightning's flags:

* ``run.*`` — where the run folder goes, how it is named/grouped in W&B, resuming and
  checkpointing (:class:`RunOptions`);
* ``pruning`` — one pruning callback (``class_path``/``init_args``), so a sweep or a flag such as
  ``--pruning.init_args.final_sparsity 0.9`` reaches it;
* ``test_after_fit`` — ``fit`` ends by evaluating the final weights on the test set (default on).

Every run gets its own folder (``<run.root>/<run.group>/<name>-<time>-<id>``, or exactly
``--run.dir`` / ``--trainer.default_root_dir``; with ``--run.resume auto`` and no folder given,
``<run.root>/<run.group>/<name>-<config hash>``, the same folder for the same command; the hash
skips values at their default, and a folder an earlier version named is found by its config): resolved
``config.yaml``, checkpoints (``last.ckpt`` every epoch, every ``run.checkpoint_minutes`` and on
SIGTERM, written atomically), W&B offline files, CSV logs, per-sample files and ``run.json`` with a
``status`` (:mod:`callbacks.run_summary`). ``--run.resume auto`` continues a killed run from its
``last.ckpt`` in the same W&B run, appending to its CSV log; on a finished run it says so and does
nothing.

Bad input — from the parser, from Lightning's own checks or from this project — prints one
``error: ...`` line and exits with status 2 before any run folder or W&B run exists.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentParser, Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.trainer.setup import _log_device_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from callbacks.progress import SyncFreeProgressBar
from callbacks.pruning.base import PruningCallback
from callbacks.pruning.oneshot import OneShotPruning
from callbacks.resume import STOP, AtomicCheckpointIO, ResumableCSVLogger, ResumeCheckpoint, RngState, StopSignals, read_last_info, truncate_csv, worker_died_of_stop
from callbacks.run_summary import RUN_JSON, RunSummary, read_run_json
from callbacks.sync_batchnorm import GlobalBatchNormSync
from common.config_compose import COMPOSE_KEY, drop_inserted, expand_config_args
from common.errors import ConfigError, check_choice, check_range
from common.parser_errors import CLASS_SLOTS, condense_parser_error, import_path, known_classes
from common.protocols import ChecksFit, PlannedModule
from common.run_folder import CHECKPOINTS_DIR, CONFIG_YAML, CSV_DIR, LAST_CKPT_FILE, METRICS_CSV_FILE, MODEL_CLASS_METHODS, PER_SAMPLE_TEST, WANDB_DIR
from common.trainer_checks import check_trainer_values
from datamodules.base import ImageDataModule
from lightning_modules.base import RepresentationModule

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

RUN_DIR_ENV = "CONTRASTIVE_PRUNING_RUN_DIR"  # shares the parent's decisions with DDP child processes
RESUME_ENV = "CONTRASTIVE_PRUNING_RESUME"  # {"ckpt_path": ..., "wandb_id": ...} as JSON
WANDB_PROJECT = "contrastive-pruning"
RESUME_MODES = ("never", "auto")
#: the run folder this command created (a start that fails on bad input removes it again)
_CREATED: dict[str, Path | None] = {"run_dir": None}


class AlreadyComplete(Exception):
    """``--run.resume auto`` on a finished run: one line, exit 0, nothing done."""


@dataclass
class RunOptions:
    """Run folder, W&B identity, resuming and checkpointing.

    Args:
        root: parent folder of all run folders.
        group: experiment name; the run folder's parent and the W&B ``group``.
        name: run name (default: the method, e.g. ``sup``/``supcon``, plus the seed).
        dir: use exactly this run folder (multi-node jobs: give every node the same path).
        tags: extra W&B tags (the pruning schedule and sparsity are added automatically).
        wandb_mode: ``offline`` (default; ``wandb sync`` later), ``online`` or ``disabled``;
            defaults to ``$WANDB_MODE`` when that is set.
        wandb_project: W&B project.
        resume: ``never`` (default: a folder that already holds a run is an error) or ``auto``:
            continue from ``<run folder>/checkpoints/last.ckpt`` when there is one (same W&B run,
            CSV appended), start in that folder otherwise, do nothing if the run is complete. Without
            ``dir``, ``auto`` names the folder by a hash of the config, so the same command finds it.
        checkpoint_minutes: longest stretch of training time between two ``last.ckpt`` writes inside
            an epoch (one is always written at every epoch end); 0 = only at epoch ends.
    """

    root: str = "runs"
    group: str = "default"
    name: str | None = None
    dir: str | None = None
    tags: list[str] = field(default_factory=list)
    wandb_mode: str | None = None
    wandb_project: str = WANDB_PROJECT
    resume: str = "never"
    checkpoint_minutes: float = 30.0


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


#: Trainer values that are a number of batches when whole, a fraction of the loader when in [0, 1]
_BATCH_COUNTS = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches", "overfit_batches",
                 "val_check_interval")  # fmt: skip


def _whole_batch_counts(trainer: Any) -> None:
    """``--trainer.limit_train_batches 20`` means 20 batches: some installs parse the flag's
    ``Union[int, float]`` as the float 20.0, which Lightning would reject; a whole float above 1 is
    made the int it was written as (1.0 stays 1.0: all batches)."""
    for key in _BATCH_COUNTS:
        value = trainer.get(key)
        if isinstance(value, float) and value > 1 and value.is_integer():
            trainer[key] = int(value)


def _is_ddp_child() -> bool:
    """A process Lightning's DDP launcher started from this script (it inherits the parent's decisions)."""
    return "LOCAL_RANK" in os.environ and os.environ.get("LOCAL_RANK") != "0" and bool(os.environ.get(RUN_DIR_ENV))


#: a run folder named by :func:`_config_hash`: ``<run name>-<10 hex digits>``
_HASH_NAME = re.compile(r"-[0-9a-f]{10}")


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


@functools.cache
def _init_defaults(class_path: str) -> dict[str, Any]:
    """The ``init_args`` defaults of a class as jsonargparse resolves them (``super().__init__``
    parameters reached through ``**kwargs`` included); ``{}`` for a class that cannot be imported."""
    cls = import_path(class_path)
    if not isinstance(cls, type):
        return {}
    try:
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, fail_untyped=False)
        return parser.get_defaults().as_dict()
    except Exception:  # noqa: BLE001 - a class jsonargparse cannot describe keeps all its arguments in the hash
        return {}


def _hashed_part(value: Any, default: Any = None) -> Any:
    """``value`` without what does not change the run: keys whose value is their default (so a new
    argument with a default leaves every existing folder name as it was), empty groups, and the
    paths of the YAML files a config came from."""
    if isinstance(value, dict):
        if isinstance(value.get("class_path"), str):
            kept = {k: v for k, v in value.items() if k not in ("init_args", "__path__")}
            kept["init_args"] = _hashed_part(value.get("init_args") or {}, _init_defaults(value["class_path"]))
            return {k: v for k, v in kept.items() if v != {}}
        defaults = default if isinstance(default, dict) else {}
        kept = {
            k: _hashed_part(v, defaults.get(k))
            for k, v in value.items()
            if k not in ("__path__", "config") and not (k in defaults and _same(v, defaults[k]))
        }
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, (list, tuple)):
        return [_hashed_part(v) for v in value]
    return value


def _config_hash(cfg: Any, defaults: Any = None) -> str:
    """Short hash of what a run trains: the resolved config (a Namespace, or ``config.yaml`` read
    back) without ``run``, ``ckpt_path``, the YAML files' paths, and every value equal to its
    default in ``defaults`` (the parser's) or in its class's signature."""
    data = cfg.as_dict() if hasattr(cfg, "as_dict") else dict(cfg)
    data = {k: v for k, v in data.items() if k not in ("run", "ckpt_path")}
    text = json.dumps(_hashed_part(data, defaults or {}), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _same_run_folder(group: Path, name: str, digest: str, defaults: Any) -> Path | None:
    """A folder of ``group`` named ``<name>-<hash>`` by another version of :func:`_config_hash`
    (an earlier one hashed defaults too) whose ``config.yaml`` hashes to ``digest`` today."""
    if not group.is_dir():
        return None
    for folder in sorted(group.iterdir()):
        rest = folder.name[len(name):] if folder.name.startswith(name) else ""
        if not _HASH_NAME.fullmatch(rest) or not (folder / CONFIG_YAML).is_file():
            continue
        try:
            saved = yaml.safe_load((folder / CONFIG_YAML).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(saved, dict) and _config_hash(saved, defaults) == digest:
            return folder
    return None


def _can_create_in(folder: Path) -> bool:
    """Whether a folder can be created in ``folder`` (tried: permission bits do not bind root)."""
    if not folder.is_dir():
        return False
    try:
        probe = Path(tempfile.mkdtemp(prefix=".write-test-", dir=folder))
    except OSError:
        return False
    probe.rmdir()
    return True


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


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
        _whole_batch_counts(cfg.trainer)
        check_trainer_values(cfg.trainer.as_dict() if hasattr(cfg.trainer, "as_dict") else dict(cfg.trainer))
        ckpt = cfg.get("ckpt_path")
        if ckpt and not Path(ckpt).is_file():
            raise ConfigError(f"ckpt_path={ckpt!r} does not exist or is not a file; give the path of a .ckpt file")
        self._wandb_mode = "offline" if mode == "dryrun" else mode
        self._resume: dict[str, Any] = {}
        if _is_ddp_child():
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
            name, defaults = self._run_name(cfg), self._parser(self.subcommand).get_defaults().as_dict()
            digest = _config_hash(cfg, defaults)
            path = Path(run.root) / run.group / f"{name}-{digest}"
            if not path.exists():
                path = _same_run_folder(path.parent, name, digest, defaults) or path
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(run.root) / run.group / f"{self._run_name(cfg)}-{stamp}-{secrets.token_hex(3)}"
        where = _nearest_existing(path)
        writable = os.access(where, os.W_OK | os.X_OK) if where == path.absolute() else _can_create_in(where)
        if not (where.is_dir() and writable):
            raise ConfigError(
                f"the run folder {path} cannot be created: {where} is not a writable folder; "
                "choose another --run.root or --run.dir"
            )
        _CREATED["run_dir"] = None if path.exists() else path
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
            raise AlreadyComplete(f"{path} is already complete ({_progress_text(summary)}); nothing to do")
        plan: dict[str, Any] = {"wandb_id": (summary or {}).get("wandb_run_id")}
        if last.is_file():
            info = read_last_info(path / CHECKPOINTS_DIR) or {}
            plan.update(ckpt_path=str(last), resume_step=info.get("global_step"))
        elif summary is not None:
            plan["resume_step"] = -1  # restart from scratch in the same folder
        return plan

    @staticmethod
    def _method(cfg: Any) -> str:
        model_cls = str(cfg.model.class_path).rsplit(".", 1)[-1]
        method = MODEL_CLASS_METHODS.get(model_cls, model_cls.removesuffix("Model").lower())
        if model_cls == "SupConModel" and cfg.model.init_args.get("supervised") is False:
            method = "simclr"
        return method

    def _run_name(self, cfg: Any) -> str:
        """``<method>[-p<sparsity>]-s<seed>`` (or ``run.name``)."""
        if cfg.run.name:
            return str(cfg.run.name)
        name = self._method(cfg)
        pruning = cfg.get("pruning")
        sparsity = pruning.init_args.get("final_sparsity") if pruning and pruning.get("init_args") else None
        if isinstance(sparsity, (int, float)):
            name += f"-p{sparsity:g}"
        seed = cfg.get("seed_everything")
        return f"{name}-s{seed}" if isinstance(seed, int) and not isinstance(seed, bool) else name

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
        with _quiet_lightning():  # bad input must be the only line: device info is printed after the checks
            try:
                trainer = self._instantiate_trainer(trainer_cfg, [c for c in extra if c is not None])
            except (MisconfigurationException, ValueError, TypeError) as err:
                raise ConfigError(f"trainer: {_one_line(str(err))}") from err
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
        if step is not None and not _is_ddp_child():
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
                    job_type=self._method(cfg),
                    tags=self._tags(cfg),
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
                print(_end_summary(self._run_dir, status, self._wandb_mode), flush=True)


@contextlib.contextmanager
def _quiet_lightning() -> Any:
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
        _CREATED["run_dir"] = None
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    raise RuntimeError("the command did not reach the run-folder step")


def run_dir_for(args: list[str]) -> Path:
    """The run folder ``python cli.py <args>`` would use (see :func:`run_target_for`)."""
    return run_target_for(args).folder


def _end_summary(run_dir: Path, status: str, wandb_mode: str) -> str:
    """The lines a finished fit prints: what it reached, where it is, how to look at it."""
    summary = read_run_json(run_dir) or {}
    parts = []
    if isinstance(summary.get("test_acc"), (int, float)):
        parts.append(f"test accuracy {float(summary['test_acc']):.4f}")
    if isinstance(summary.get("achieved_sparsity"), (int, float)):
        parts.append(f"sparsity {float(summary['achieved_sparsity']):.4f} (target {summary.get('target_sparsity')})")
    if isinstance(summary.get("q_score_mean"), (int, float)):
        parts.append(f"mean Q-Score {float(summary['q_score_mean']):.3f}")
    lines = [f"run {status}: {run_dir}" + (f" ({summary.get('status_reason')})" if status != "complete" else "")]
    if parts:
        lines.append("  " + " | ".join(parts))
    offline = sorted((run_dir / WANDB_DIR).glob("offline-run-*"))
    if wandb_mode == "offline" and offline:
        lines.append(f"  W&B offline: wandb sync {offline[-1]}   (browse: wandb leet {run_dir / WANDB_DIR})")
    lines.append(f"  files: {run_dir / RUN_JSON}, {run_dir / PER_SAMPLE_TEST}, {run_dir / METRICS_CSV_FILE}")
    return "\n".join(lines)


def _progress_text(summary: dict[str, Any]) -> str:
    epochs, total = summary.get("epochs_trained"), summary.get("max_epochs")
    test = summary.get("test_acc")
    text = f"{epochs}/{total} epochs" if epochs is not None else "trained"
    return text + (f", test_acc {float(test):.4f}" if isinstance(test, (int, float)) else "")


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["analyze"]:
        from analysis.cli import main as analyze_main  # population analysis: issue-level subcommand

        sys.exit(analyze_main(argv[1:]))
    if argv[:1] == ["population"]:
        from population.runner import main as population_main  # run a plan of runs, resumably

        sys.exit(population_main(argv[1:]))
    _CREATED["run_dir"] = None
    try:
        ContrastivePruningCLI(
            RepresentationModule,
            ImageDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=WandbConfigCallback,
            save_config_kwargs={"config_filename": CONFIG_YAML, "overwrite": True, "save_to_log_dir": False},
            args=args,
            auto_configure_optimizers=False,
            parser_kwargs={"exit_on_error": False},
        )
    except AlreadyComplete as done:
        print(str(done))
        sys.exit(0)
    except SIGTERMException:
        # Lightning stopped at a batch boundary (SIGTERM, or SIGINT through StopSignals) and
        # ResumeCheckpoint saved last.ckpt
        _interrupted()
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is (or wraps) bad user input
        if worker_died_of_stop(exc):  # a loader worker killed by the same signal: last.ckpt is the last checkpoint
            _interrupted()
        message = user_error_message(exc)
        if message is None:
            raise
        _remove_failed_start()
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _interrupted() -> None:
    """A fit stopped by SIGTERM or SIGINT: one line on stderr, exit 128 + the signal (143, 130)."""
    where = os.environ.get(RUN_DIR_ENV, "the run folder")
    name = signal.Signals(STOP.signum).name if STOP.signum is not None else "SIGTERM"
    print(f"interrupted by {name}; {where}/checkpoints/last.ckpt holds the state: run the same command with "
          "--run.resume auto to continue", file=sys.stderr)  # fmt: skip
    sys.exit(STOP.exit_code)


def _remove_failed_start() -> None:
    """A start that failed on bad input leaves nothing behind: remove the run folder this command
    created if no training step was checkpointed in it (a folder that existed is left as found)."""
    path, _CREATED["run_dir"] = _CREATED["run_dir"], None
    if path is None or _is_ddp_child():
        return
    if path.is_dir() and not (path / LAST_CKPT_FILE).exists():
        shutil.rmtree(path, ignore_errors=True)


def user_error_message(exc: BaseException) -> str | None:
    """One line for an error the user caused (a :class:`ConfigError`, a parser error, Lightning's
    ``MisconfigurationException``), found through wrapping exceptions; ``None`` for bugs."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConfigError):
            return _one_line(str(current))
        if isinstance(current, MisconfigurationException):
            return _one_line(str(current))
        if isinstance(current, argparse.ArgumentError):
            return condense_parser_error(str(current))
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines) if len(lines) <= 3 else lines[0]


def _main_quiet_on_closed_pipe() -> None:
    """:func:`main`, ending quietly (status 1, no traceback) when its output's reader has gone, as in
    ``python cli.py population --plan p.yaml --dry-run | head``."""
    try:
        main()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit would raise again
        sys.exit(1)


if __name__ == "__main__":
    _main_quiet_on_closed_pipe()
