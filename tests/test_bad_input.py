"""Every error a user can cause is one line and exit code 2, before any run folder or W&B run exists.

One table of bad inputs — from the parser (jsonargparse), from Lightning's own checks, from this
project's checks, and to ``analyze`` — each run through ``cli.main`` in an empty working directory:
the exit code is 2, stderr is exactly the listed line, and the directory is left as it was (no run
folder, no W&B files, no checkpoint). A few are also run through the real script in a subprocess,
where every line Lightning or W&B might print would show.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, TINY_SUP, TINY_SUPCON, run_cli, with_experiment

import cli

EXP = REPO / "configs" / "experiments"


def exp(base: list[str], name: str) -> list[str]:
    """``base`` with its ``--config`` replaced by an experiment config (which keeps its pruning)."""
    return with_experiment(base, EXP / name)


SUP_OPTIONS = "backbone, num_classes, lr, momentum, weight_decay, nesterov, milestones, gamma, in_channels, depth, widen_factor, channels_last"
GMP_OPTIONS = ("final_sparsity, begin_step, end_step, frequency, initial_sparsity, scope, granularity, n, m, norm, nm_indivisible, "
               "begin_epoch, end_epoch, min_layer_density, targets, head_begin_step, head_end_step, head_frequency, schedule")  # fmt: skip

# (id, base args, extra args, the exact stderr line; "{cwd}" is the working directory)
FIT_CASES = [
    # -- the parser -----------------------------------------------------------------------------
    ("unknown_model_option", TINY_SUP, ["--model.init_args.bogus", "3"],
     f"error: model.init_args.bogus is not an option of lightning_modules.SupervisedClassifier; its options are: {SUP_OPTIONS}"),
    ("unknown_flag", TINY_SUP, ["--bogus", "1"], "error: unknown option --bogus; see python cli.py fit --help"),
    ("unknown_trainer_flag", TINY_SUP, ["--trainer.bogus", "1"], "error: unknown option --trainer.bogus; see python cli.py fit --help"),
    ("wrong_type_trainer", TINY_SUP, ["--trainer.max_epochs", "abc"], "error: trainer.max_epochs='abc' is not valid; expected int or null"),
    ("wrong_type_model", TINY_SUP, ["--model.init_args.lr", "fast"], "error: model.init_args.lr='fast' is not valid; expected float"),
    ("wrong_bool", TINY_SUP, ["--test_after_fit", "maybe"], "error: test_after_fit='maybe' is not valid; expected bool"),
    ("missing_yaml", TINY_SUP, ["--config", "nonexist.yaml"], "error: --config: File does not exist: '{cwd}/nonexist.yaml'"),
    ("malformed_yaml", TINY_SUP, ["--config", "bad.yaml"],
     "error: a --config file is not valid YAML: did not find expected ',' or ']' (line 2, column 13)"),
    ("unknown_model_class", TINY_SUP, ["--model", "lightning_modules.Nope"],
     "error: model='lightning_modules.Nope' is not a known class; choose one of lightning_modules.BYOLModel, "
     "lightning_modules.SDCLRModel, lightning_modules.SupConModel, lightning_modules.SupervisedClassifier"),
    ("unknown_data_class", TINY_SUP, ["--data", "datamodules.Nope"],
     "error: data='datamodules.Nope' is not a known class; choose one of datamodules.CIFAR10DataModule, "
     "datamodules.CIFAR100DataModule, datamodules.FashionMNISTDataModule, datamodules.FashionMNISTMiniDataModule, "
     "datamodules.SyntheticDataModule"),
    ("unknown_pruning_class", TINY_SUP, ["--pruning", "callbacks.pruning.Nope"],
     "error: pruning='callbacks.pruning.Nope' is not a known class; choose one of callbacks.pruning.GradualMagnitudePruning, "
     "callbacks.pruning.OneShotPruning, callbacks.pruning.PruneAndRegrow, callbacks.pruning.SynchronizedPruning"),
    ("pruning_missing_args", TINY_SUP, ["--pruning", "callbacks.pruning.GradualMagnitudePruning"],
     "error: pruning of callbacks.pruning.GradualMagnitudePruning needs final_sparsity, begin_step, end_step, frequency: "
     "give them with --pruning.init_args.<name> <value>"),
    ("unknown_pruning_option", exp(TINY_SUP, "sup_gmp.yaml"), ["--pruning.init_args.bogus", "1"],
     f"error: pruning.init_args.bogus is not an option of callbacks.pruning.GradualMagnitudePruning; its options are: {GMP_OPTIONS}"),
    ("precision", TINY_SUP, ["--trainer.precision", "13"],
     "error: trainer.precision='13' is not valid; expected one of [64, 32, 16] or one of ['transformer-engine', "
     "'transformer-engine-float16', '16-true', '16-mixed', 'bf16-true', 'bf16-mixed', '32-true', '64-true'] or one of "
     "['64', '32', '16', 'bf16'] or null"),
    # -- Lightning's own checks -------------------------------------------------------------------
    ("devices_0", TINY_SUP, ["--trainer.devices", "0"],
     "error: trainer: `Trainer(devices='0')` value is not a valid input using cpu accelerator."),
    ("gpu_without_gpu", TINY_SUP, ["--trainer.accelerator", "gpu"], "error: trainer: No supported gpu backend found!"),
    ("strategy", TINY_SUP, ["--trainer.strategy", "bogus"],
     "error: trainer: You selected an invalid strategy name: `strategy='bogus'`. It must be either a string or an instance "
     "of `lightning.pytorch.strategies.Strategy`. Example choices: auto, ddp, ddp_spawn, deepspeed, ... Find a complete list "
     "of options in our documentation at https://lightning.ai"),
    # -- this project's checks --------------------------------------------------------------------
    ("max_epochs", TINY_SUP, ["--trainer.max_epochs", "-1"], "error: trainer.max_epochs=-1 is not allowed; it must be a whole number >= 1"),
    # Trainer values Lightning accepts but cannot run (a ZeroDivisionError mid-fit) or silently misuses
    ("check_val_every_n_epoch_0", TINY_SUP, ["--trainer.check_val_every_n_epoch", "0"],
     "error: trainer.check_val_every_n_epoch=0 is not allowed; it must be a whole number >= 1 (validate every that many "
     "epochs), or null (validate by val_check_interval only); use --trainer.limit_val_batches 0 for no validation"),
    ("check_val_every_n_epoch_neg", TINY_SUP, ["--trainer.check_val_every_n_epoch", "-1"],
     "error: trainer.check_val_every_n_epoch=-1 is not allowed; it must be a whole number >= 1 (validate every that many "
     "epochs), or null (validate by val_check_interval only); use --trainer.limit_val_batches 0 for no validation"),
    ("gradient_clip_val", TINY_SUP, ["--trainer.gradient_clip_val", "-1"],
     "error: trainer.gradient_clip_val=-1 is not allowed; it must be a number >= 0 (0 = no clipping), or null"),
    ("val_check_interval_0", TINY_SUP, ["--trainer.val_check_interval", "0"],
     "error: trainer.val_check_interval=0 is not allowed; it must be a whole number >= 1 (validate every that many training "
     "batches) or a fraction in (0.0, 1.0]"),
    ("accumulate_grad_batches_0", TINY_SUP, ["--trainer.accumulate_grad_batches", "0"],
     "error: trainer.accumulate_grad_batches=0 is not allowed; it must be a whole number >= 1"),
    ("accumulate_grad_batches_neg", TINY_SUP, ["--trainer.accumulate_grad_batches", "-1"],
     "error: trainer.accumulate_grad_batches=-1 is not allowed; it must be a whole number >= 1"),
    ("log_every_n_steps_0", TINY_SUP, ["--trainer.log_every_n_steps", "0"],
     "error: trainer.log_every_n_steps=0 is not allowed; it must be a whole number >= 1 (log every that many optimiser steps)"),
    ("num_sanity_val_steps", TINY_SUP, ["--trainer.num_sanity_val_steps", "-2"],
     "error: trainer.num_sanity_val_steps=-2 is not allowed; it must be a whole number >= 0, or -1 (the whole validation set)"),
    ("max_steps_0", TINY_SUP, ["--trainer.max_steps", "0"],
     "error: trainer.max_steps=0 is not allowed; it must be a whole number >= 1, or -1 (no limit)"),
    ("min_steps", TINY_SUP, ["--trainer.min_steps", "-1"], "error: trainer.min_steps=-1 is not allowed; it must be a whole number >= 0, or null"),
    ("min_epochs", TINY_SUP, ["--trainer.min_epochs", "-1"], "error: trainer.min_epochs=-1 is not allowed; it must be a whole number >= 0, or null"),
    ("min_epochs_above_max", TINY_SUP, ["--trainer.min_epochs", "5"],
     "error: trainer.min_epochs=5 is not allowed; it must be at most trainer.max_epochs=2 (the run trains max_epochs epochs)"),
    ("cuda_graphs_on_cpu", TINY_SUP, ["--trainer.callbacks+=callbacks.cuda_graphs.CudaGraphEncoder"],
     "error: callbacks CudaGraphEncoder needs a CUDA device (--trainer.accelerator gpu, or --config configs/trainer/gpu.yaml); "
     "this run is on cpu"),
    ("cuda_graphs_sdclr", exp(TINY_SUPCON, "simclr_sdclr.yaml"), ["--trainer.callbacks+=callbacks.cuda_graphs.CudaGraphEncoder"],
     "error: callbacks CudaGraphEncoder cannot train SDCLRModel: it calls its encoder with substituted parameters, which a CUDA "
     "graph would not see; drop the callback"),
    ("max_time_0", TINY_SUP, ["--trainer.max_time", "00:00:00:00"],
     "error: trainer.max_time='00:00:00:00' is not allowed; it must be a positive duration: 'DD:HH:MM:SS' (e.g. "
     "'00:12:00:00') or {{hours: 12}}, or null"),
    ("temperature", TINY_SUPCON, ["--model.init_args.temperature", "0"],
     "error: model.temperature=0.0 is out of range; it must be in (0, inf)"),
    ("backbone", TINY_SUP, ["--model.init_args.backbone", "vgg"],
     "error: backbone='vgg' is not allowed; choose one of 'wrn16_2', 'wrn', 'resnet18'"),
    ("views", TINY_SUPCON, ["--data.init_args.views", "1"],
     "error: data.views=1 is not allowed for contrastive training; it needs >= 2 views (set --data.init_args.views 2 or use "
     "configs/data/cifar10_contrastive.yaml)"),
    ("head_batch_size", TINY_SUPCON, ["--model.init_args.head_batch_size", "0"],
     "error: model.head_batch_size=0 is out of range; it must be in [1, inf)"),
    ("ckpt_path", TINY_SUP, ["--ckpt_path", "nowhere.ckpt"],
     "error: ckpt_path='nowhere.ckpt' does not exist or is not a file; give the path of a .ckpt file"),
    ("resume_mode", TINY_SUP, ["--run.resume", "sometimes"], "error: run.resume='sometimes' is not allowed; choose one of 'never', 'auto'"),
    ("wandb_mode", TINY_SUP, ["--run.wandb_mode", "cloud"],
     "error: run.wandb_mode='cloud' is not allowed; choose one of 'offline', 'online', 'disabled', 'dryrun'"),
    ("checkpoint_minutes", TINY_SUP, ["--run.checkpoint_minutes", "-1"],
     "error: run.checkpoint_minutes=-1.0 is out of range; it must be in [0, inf)"),
    ("unwritable_root", TINY_SUP, ["--run.root", "/proc/runs", "--run.dir", "/proc/runs/x"],
     "error: the run folder /proc/runs/x cannot be created: /proc is not a writable folder; choose another --run.root or --run.dir"),
    ("gmp_unreachable", exp(TINY_SUP, "sup_gmp.yaml"), [],
     "error: pruning.init_args.end_step=20000, after the last optimiser step of the supervised phase (8; this run has 8 steps: "
     "supervised 2 epochs x 4 steps), so final_sparsity=0.9 would not be reached; set --pruning.init_args.end_step to at most "
     "8 (begin_step and frequency below it) or train longer"),
    ("holdout_size", TINY_SUP, ["--data.init_args.val_source", "holdout", "--data.init_args.holdout_size", "256"],
     "error: data.holdout_size=256 must be smaller than the training set (256 images)"),
    ("batch_larger_than_data", TINY_SUP, ["--data.init_args.drop_last", "true", "--data.init_args.batch_size", "512"],
     "error: data.batch_size=512 is larger than the training set (256 images) and data.drop_last=true drops the last "
     "incomplete batch, so no batch would remain"),
    ("head_schedule_partial", exp(TINY_SUPCON, "supcon_gmp.yaml"), ["--pruning.init_args.head_end_step", "null"],
     "error: head_begin_step=500, head_end_step=None, head_frequency=250: give all three (the classifier's schedule in the "
     "head phase) or none"),
    ("oneshot_parent", exp(TINY_SUPCON, "supcon_oneshot.yaml"), ["--pruning.init_args.parent", "nowhere"],
     "error: pruning.init_args.parent='nowhere' does not exist; give a dense run folder, its checkpoint, or a folder of dense runs"),
    ("pruning_targets", exp(TINY_SUP, "sup_gmp.yaml"), ["--pruning.init_args.targets", "everything"],
     "error: targets='everything' is not allowed; choose one of 'encoder', 'encoder_conv', 'network', 'classifier'"),
    ("density_gap", exp(TINY_SUPCON, "byol_synccp_gmp.yaml"), ["--pruning.init_args.density_gap", "0.95"],
     "error: density_gap=0.95 is out of range; it must be in [0, 0.9]"),
    ("data_dir", TINY_SUP, ["--data", str(REPO / "configs/data/fashion_mnist.yaml"), "--data.init_args.data_dir", "/nonexistent/fm",
                            "--data.init_args.download", "false"],
     None),  # the message names the folder and the package (tests/test_datamodules.py checks its text)
]  # fmt: skip


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("case", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_bad_fit_input_is_one_line_exit_2_and_leaves_nothing(case, tmp_path: Path, monkeypatch, capsys) -> None:
    name, base, extra, message = case
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(cli.RUN_DIR_ENV, "")
    (tmp_path / "bad.yaml").write_text("trainer: [1, 2\n  max_epochs: : 3\n")
    before = _listing(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", *base, *extra])
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    if message is not None:
        assert err[0] == message.format(cwd=tmp_path)
    else:
        assert err[0].startswith("error: ") and "\n" not in err[0]
    assert _listing(tmp_path) == before  # no run folder, no W&B run, no checkpoint


def test_an_existing_run_folder_is_refused_and_left_as_it_was(tmp_path: Path, monkeypatch, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "complete"}) + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(cli.RUN_DIR_ENV, "")
    before = _listing(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", *TINY_SUP, "--run.dir", str(run)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: run.dir='{run}' already holds a run (status complete); pass --run.resume auto to continue it, or choose another folder"
    ]
    assert _listing(tmp_path) == before


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--trainer.devices", "0"], "error: trainer: `Trainer(devices='0')` value is not a valid input using cpu accelerator."),
        (["--model.init_args.bogus", "3"], f"error: model.init_args.bogus is not an option of lightning_modules.SupervisedClassifier; its options are: {SUP_OPTIONS}"),
        (["--data.init_args.val_source", "holdout", "--data.init_args.holdout_size", "256"],
         "error: data.holdout_size=256 must be smaller than the training set (256 images)"),
        (["--trainer.check_val_every_n_epoch", "0"],
         "error: trainer.check_val_every_n_epoch=0 is not allowed; it must be a whole number >= 1 (validate every that many "
         "epochs), or null (validate by val_check_interval only); use --trainer.limit_val_batches 0 for no validation"),
    ],
    ids=["lightning", "parser", "data", "trainer"],
)
def test_through_the_real_script_stderr_is_exactly_one_line(extra, message, tmp_path: Path) -> None:
    done = run_cli("fit", *TINY_SUP, *extra, cwd=tmp_path)
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.strip()] == [message], done.stderr[-2000:]
    assert done.stdout.strip() == "" and list(tmp_path.iterdir()) == []


ANALYZE_CASES = [
    ("no_runs", ["--runs", "nowhere/*", "--out", "out"], "error: --runs 'nowhere/*' matches no run folder (no run.json at or below it)"),
    ("out_is_a_file", ["--runs", "x", "--out", "file.txt"], "error: --out 'file.txt' is a file; give a folder"),
    ("umap_samples", ["--runs", "x", "--out", "out", "--umap-samples", "-1"],
     "error: --umap-samples -1 is out of range; it must be 0 (off) or >= 3"),
    ("bad_flag", ["--runs", "x", "--out", "out", "--pie-tie", "random"],
     "error: analyze: argument --pie-tie: invalid choice: 'random' (choose from 'lowest', 'disjoint') (see python cli.py analyze --help)"),
]  # fmt: skip


@pytest.mark.parametrize("case", ANALYZE_CASES, ids=[c[0] for c in ANALYZE_CASES])
def test_bad_analyze_input_is_one_line(case, tmp_path: Path, monkeypatch, capsys) -> None:
    _, args, message = case
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("not a folder\n")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run.json").write_text(json.dumps({"dataset": "d", "method": "sup"}) + "\n")
    before = _listing(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["analyze", *args])
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [message]
    assert _listing(tmp_path) == before
