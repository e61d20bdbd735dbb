"""contrastive-pruning command line: ``python cli.py {fit,validate,test,predict} --config ...``.

A LightningCLI in subclass mode (``model: class_path/init_args``, ``data: class_path/init_args``)
with, on top of Lightning's flags:

* ``run.*`` — where the run folder goes, how it is named/grouped in W&B, resuming and
  checkpointing (:class:`training.options.RunOptions`);
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

This file is the entry point (``main``: the subcommands, exit codes, an interrupted or failed start);
the command's parts live in ``training/`` (:mod:`training.lightning_cli` and the modules beside it).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys

from lightning.pytorch.utilities.exceptions import SIGTERMException

from callbacks.resume import STOP, worker_died_of_stop
from common.errors import ConfigError
from common.run_folder import CONFIG_YAML, LAST_CKPT_FILE
from datamodules.base import ImageDataModule
from lightning_modules.base import RepresentationModule
from training.lightning_cli import CREATED, AlreadyComplete, ContrastivePruningCLI
from training.messages import user_error_message
from training.naming import RUN_DIR_ENV, is_ddp_child
from training.options import WandbConfigCallback
from training.target import RunTarget, run_dir_for, run_target_for

# what scripts, benchmarks and tests take from ``cli``: the command's parts live in training/
__all__ = ["RUN_DIR_ENV", "ConfigError", "ContrastivePruningCLI", "ImageDataModule", "RepresentationModule", "RunTarget",
           "WandbConfigCallback", "main", "run_dir_for", "run_target_for", "user_error_message"]  # fmt: skip


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["analyze"]:
        from analysis.cli import main as analyze_main  # population analysis: issue-level subcommand

        sys.exit(analyze_main(argv[1:]))
    if argv[:1] == ["population"]:
        from population.runner import main as population_main  # run a plan of runs, resumably

        sys.exit(population_main(argv[1:]))
    CREATED["run_dir"] = None
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
    path, CREATED["run_dir"] = CREATED["run_dir"], None
    if path is None or is_ddp_child():
        return
    if path.is_dir() and not (path / LAST_CKPT_FILE).exists():
        shutil.rmtree(path, ignore_errors=True)


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
