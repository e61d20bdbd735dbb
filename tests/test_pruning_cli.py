"""Pruning through the real CLI, on the Table 1 experiment configs, asserting on what a user sees.

Every run uses ``configs/experiments/*.yaml`` with the tiny overrides of ``conftest.TINY_SUP`` /
``TINY_SUPCON`` (synthetic data, WRN-10-1, 256 training images in batches of 64 = 4 optimiser steps
per epoch) and a schedule shrunk to fit: what is checked is the run folder (``run.json``,
``checkpoints/*.ckpt`` read with ``torch.load`` alone, ``csv/metrics.csv``, the W&B offline run), the
exit code and the one-line error. Runs are in-process (``cli.main``) except the 2-process DDP run.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, TINY_SUP, TINY_SUPCON, read_run_json, run_cli, with_experiment
from lightning.pytorch import Callback, LightningModule, Trainer
from wandb_offline import find_offline_run, history_keys, read_offline_run

import cli
from callbacks.pruning import GradualMagnitudePruning, cubic_sparsity

EXPERIMENTS = REPO / "configs" / "experiments"
STEPS_PER_EPOCH = 4  # 256 synthetic training images / batch 64


def with_config(base: list[str], name: str) -> list[str]:
    """``base`` with its ``--config`` replaced by an experiment config (which keeps its pruning)."""
    return with_experiment(base, EXPERIMENTS / name)


# the Sup configs train at lr 1.0 (the paper's); a 16-step run on synthetic data wants a smaller one
SUP_LR = ["--model.init_args.lr", "0.1", "--model.init_args.milestones", "[100]"]
# no validation loop and no test after fit: nothing asserted here needs them (other tests cover them)
FAST = ["--trainer.limit_val_batches", "0", "--test_after_fit", "false"]
# GMP shrunk to the tiny run: 4 epochs x 4 steps, events at steps 5, 8, 11 and 13 (end)
GMP = dict(begin=5, end=13, frequency=3, epochs=4, final=0.5)
GMP_ARGS = [
    *with_config(TINY_SUP, "sup_gmp.yaml"), *SUP_LR, *FAST,
    "--trainer.max_epochs", str(GMP["epochs"]),
    "--pruning.init_args.begin_step", str(GMP["begin"]),
    "--pruning.init_args.end_step", str(GMP["end"]),
    "--pruning.init_args.frequency", str(GMP["frequency"]),
    # the machinery under test here is one global threshold over the encoder's Conv/Linear weights; the
    # shipped config's per-layer scope over the whole network is checked in tests/test_protocol.py
    "--pruning.init_args.scope", "global", "--pruning.init_args.targets", "encoder",
]  # fmt: skip


def gmp_formula(step: int) -> float:
    """The schedule as REFERENCE §2 writes it, evaluated at event ``step`` (s_i = 0)."""
    t0, n_dt, s_f = GMP["begin"], GMP["end"] - GMP["begin"], GMP["final"]
    return s_f + (0.0 - s_f) * (1 - (step - t0) / n_dt) ** 3


class RestoreRngOnResume(Callback):
    """Test helper: carries the global RNG states (torch, NumPy, Python) in the checkpoint and puts
    them back when a fit resumes from it.

    Lightning checkpoints do not hold RNG states, so a resumed fit would otherwise draw a different
    shuffling and different augmentations than the uninterrupted one, and the weights (hence every
    later magnitude-mask decision) would legitimately differ. With the same data stream, the pruning
    callback alone decides whether the resumed run ends with the same masks.

    Timing: the uninterrupted run saves its checkpoint at the end of epoch k and next draws random
    numbers when it creates epoch k+1's loader iterator. A resumed fit creates that iterator in
    ``FitLoop.setup_data`` right after the sanity check (whose validation loader draws a worker seed),
    so the states are set when the checkpoint is loaded and again when the sanity check ends.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()  # plain types: checkpoints load weights_only
        return {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss],
                "python": random.getstate()}  # fmt: skip

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict
        self._restore()

    def _restore(self) -> None:
        if self._pending is None:
            return
        torch.set_rng_state(self._pending["torch"])
        kind, keys, pos, has_gauss, gauss = self._pending["numpy"]
        np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
        random.setstate(self._pending["python"])

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._pending = None


def epoch_checkpoints(dirpath: Path) -> list[str]:
    """``--trainer.callbacks+=`` flags: a checkpoint after every epoch (kept) + last.ckpt, and the RNG carrier."""
    checkpoint = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(dirpath), "filename": "epoch={epoch}", "auto_insert_metric_name": False,
                      "every_n_epochs": 1, "save_top_k": -1, "save_last": True},
    }  # fmt: skip
    return [
        f"--trainer.callbacks+={json.dumps(checkpoint)}",
        "--trainer.callbacks+=test_pruning_cli.RestoreRngOnResume",
    ]


def in_process(args: list[str], monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """``python cli.py <args>`` in this process, with cwd and the DDP run-dir variable isolated."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv(cli.RUN_DIR_ENV, "")  # cli.py sets it for DDP children; undone after the test
    cli.main(args)


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def prunable_names(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Encoder Conv2d (4-d) and Linear (2-d) weights: what REFERENCE §2 prunes, from the keys alone."""
    return sorted(k for k, v in state_dict.items() if k.startswith("encoder.") and k.endswith(".weight") and v.dim() in (2, 4))


def zeros_over_size(state_dict: dict[str, torch.Tensor], names: list[str]) -> tuple[int, int]:
    return sum(int((state_dict[k] == 0).sum()) for k in names), sum(state_dict[k].numel() for k in names)


# --------------------------------------------------------------------------------------------------
# one GMP run through the CLI (W&B offline), and the same run resumed from its epoch-1 checkpoint
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gmp_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gmp")
    full, resumed = root / "full", root / "resumed"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
            (root / "wandb_home" / var.lower()).mkdir(parents=True)
            mp.setenv(var, str(root / "wandb_home" / var.lower()))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        # the uninterrupted run: final_sparsity 0.5 from the command line (the config says 0.9)
        in_process(["fit", *GMP_ARGS, "--pruning.init_args.final_sparsity", "0.5", "--run.dir", str(full),
                    *epoch_checkpoints(full / "checkpoints")], mp, root)  # fmt: skip
        import wandb

        if wandb.run is not None:
            wandb.run.finish()
        # "stopped" after epoch 1 (step 8, events 5 and 8 done, 11 and 13 to come): a second fit of the
        # same command from that checkpoint, to the same max_epochs (the phases are counted from it)
        in_process(["fit", *GMP_ARGS, "--pruning.init_args.final_sparsity", "0.5", "--run.dir", str(resumed),
                    "--run.wandb_mode", "disabled", *epoch_checkpoints(resumed / "checkpoints"),
                    "--ckpt_path", str(full / "checkpoints" / "epoch=1.ckpt")], mp, root)  # fmt: skip
    return {"full": full, "resumed": resumed}


def test_sparsity_flag_reaches_the_callback_and_run_json(gmp_runs: dict[str, Path]) -> None:
    run = gmp_runs["full"]
    summary = read_run_json(run)
    assert summary["pruning"] == "gmp" and summary["target_sparsity"] == 0.5
    assert summary["achieved_sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert summary["pruning_schedule"] == {"begin_step": 5, "end_step": 13, "frequency": 3, "initial_sparsity": 0.0}
    assert yaml.safe_load((run / "config.yaml").read_text())["pruning"]["init_args"]["final_sparsity"] == 0.5
    ckpt = load(run / "checkpoints" / "last.ckpt")
    assert ckpt["callbacks"]["GradualMagnitudePruning"]["final_sparsity"] == 0.5


def test_checkpoint_sparsity_from_torch_load_alone(gmp_runs: dict[str, Path]) -> None:
    run = gmp_runs["full"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    weights = ckpt["state_dict"]
    names = prunable_names(weights)
    zeros, size = zeros_over_size(weights, names)
    assert zeros / size == read_run_json(run)["achieved_sparsity"]
    assert zeros == round(0.5 * size)  # exact count, one global threshold
    masks = ckpt["callbacks"]["GradualMagnitudePruning"]["masks"]
    assert sorted(masks) == names
    for name in names:
        assert torch.equal(weights[name] == 0, ~masks[name]), name


def test_only_encoder_conv_and_linear_weights_gained_zeros(gmp_runs: dict[str, Path]) -> None:
    run = gmp_runs["full"]
    dense = load(run / "checkpoints" / "epoch=0.ckpt")["state_dict"]  # step 4: before the first pruning event
    final = load(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert set(dense) == set(final)  # no weight_orig / weight_mask: the keys of a plain model
    assert zeros_over_size(dense, prunable_names(dense))[0] == 0
    gained = sorted(k for k in final if int((final[k] == 0).sum()) > int((dense[k] == 0).sum()))
    assert gained == prunable_names(final)
    assert all(k.startswith("encoder.") for k in gained)
    untouched = {"encoder.bn1.weight", "encoder.bn1.bias", "classifier.weight", "classifier.bias"} & set(final)
    assert untouched and not untouched & set(gained)


def test_gmp_event_table_matches_the_formula(gmp_runs: dict[str, Path]) -> None:
    run = gmp_runs["full"]
    summary = read_run_json(run)
    weights = load(run / "checkpoints" / "last.ckpt")["state_dict"]
    total = zeros_over_size(weights, prunable_names(weights))[1]
    events = summary["pruning_events"]  # [step, target, measured]
    assert [e[0] for e in events] == [5, 8, 11, 13]
    print(f"\nGMP through the CLI (sup_gmp.yaml, final 0.5, begin 5, end 13, every 3; {total} prunable weights)")
    print(f"{'step':>5} {'formula':>9} {'target':>9} {'measured':>9}")
    for step, target, measured in events:
        print(f"{step:>5} {gmp_formula(step):>9.5f} {target:>9.5f} {measured:>9.5f}")
        assert target == pytest.approx(gmp_formula(step), abs=1e-12)
        assert target == cubic_sparsity(step, initial=0.0, final=0.5, begin_step=5, end_step=13, frequency=3)
        assert measured == round(target * total) / total


def test_wandb_offline_run_has_sparsity_curve(gmp_runs: dict[str, Path]) -> None:
    run = read_offline_run(find_offline_run(gmp_runs["full"]))
    keys = history_keys(run)
    assert {"sparsity/global", "sparsity/target", "sparsity/encoder.conv1.weight"} <= keys, sorted(keys)
    logged = [item["sparsity/global"] for item in run["history"] if "sparsity/global" in item]
    measured = [e[2] for e in read_run_json(gmp_runs["full"])["pruning_events"]]
    assert logged == pytest.approx(measured, abs=1e-6)
    assert run["summary"]["sparsity/global"] == pytest.approx(0.5, abs=1e-4)
    assert run["config"]["pruning"]["init_args"]["final_sparsity"] == 0.5


def test_resume_mid_schedule_ends_with_the_same_masks(gmp_runs: dict[str, Path]) -> None:
    full, resumed = gmp_runs["full"], gmp_runs["resumed"]
    start = load(full / "checkpoints" / "epoch=1.ckpt")
    assert start["global_step"] == 8 and GMP["begin"] < 8 < GMP["end"], "the resumed checkpoint is mid-schedule"
    a, b = load(full / "checkpoints" / "last.ckpt"), load(resumed / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == GMP["epochs"] * STEPS_PER_EPOCH
    masks_a = a["callbacks"]["GradualMagnitudePruning"]["masks"]
    masks_b = b["callbacks"]["GradualMagnitudePruning"]["masks"]
    assert sorted(masks_a) == sorted(masks_b)
    for name in masks_a:
        assert torch.equal(masks_a[name], masks_b[name]), name
        assert torch.equal(a["state_dict"][name] == 0, b["state_dict"][name] == 0), name  # zero pattern
    for name, value in a["state_dict"].items():
        assert torch.equal(b["state_dict"][name], value), name  # and the very same weights
    ra, rb = read_run_json(full), read_run_json(resumed)
    assert ra["achieved_sparsity"] == rb["achieved_sparsity"]
    assert ra["pruning_events"] == rb["pruning_events"]  # events 5 and 8 restored, 11 and 13 made after resuming
    assert ra["mask_sha256_per_rank"] == rb["mask_sha256_per_rank"]
    print(f"\nresume: from step 8 (sparsity {start['callbacks']['GradualMagnitudePruning']['events'][-1]['measured']:.4f}) "
          f"to step {b['global_step']}: masks, zero pattern, weights and sparsity {rb['achieved_sparsity']:.4f} "
          "identical to the uninterrupted run")  # fmt: skip


# --------------------------------------------------------------------------------------------------
# DDP: two CPU processes end with identical masks (hashes from every rank in run.json)
# --------------------------------------------------------------------------------------------------
@pytest.mark.ddp
def test_ddp_two_ranks_end_with_identical_masks(tmp_path: Path) -> None:
    # 128 images per rank = 2 steps per epoch; 3 epochs = 6 steps, events at 1, 3 and 5 (end)
    done = run_cli(
        "fit", *GMP_ARGS, "--trainer.max_epochs", "3", "--pruning.init_args.begin_step", "1",
        "--pruning.init_args.end_step", "5", "--pruning.init_args.frequency", "2",
        "--pruning.init_args.final_sparsity", "0.7", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.strategy", "ddp", "--run.wandb_mode", "disabled", "--run.dir", str(tmp_path / "run"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    summary = read_run_json(tmp_path / "run")
    hashes = summary["mask_sha256_per_rank"]
    assert len(hashes) == 2 and hashes[0] == hashes[1], hashes
    assert [e[0] for e in summary["pruning_events"]] == [1, 3, 5] and summary["global_step"] == 6
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    restored = GradualMagnitudePruning(0.7, 1, 5, 2)
    restored.load_state_dict(ckpt["callbacks"]["GradualMagnitudePruning"])
    assert restored.mask_sha256() == hashes[0]  # the hash is of the checkpointed masks
    zeros, size = zeros_over_size(ckpt["state_dict"], prunable_names(ckpt["state_dict"]))
    assert zeros == round(0.7 * size) and summary["achieved_sparsity"] == zeros / size
    assert "computed different masks" not in done.stderr
    print(f"\nDDP 2 ranks: mask SHA-256 {hashes[0][:16]}... on both, sparsity {zeros / size:.4f}")


# --------------------------------------------------------------------------------------------------
# One-Shot through the CLI: Sup and SupCon
# --------------------------------------------------------------------------------------------------
# retrain mode (dense training, prune and fine-tune in one fit), pruning the encoder's weights globally
ONESHOT_SUP = [*with_config(TINY_SUP, "sup_oneshot_retrain.yaml"), *SUP_LR, *FAST, "--pruning.init_args.targets", "encoder"]


def finetune_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "csv" / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_oneshot_sup_prunes_once_at_the_finetune_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    in_process(["fit", *ONESHOT_SUP, "--trainer.max_epochs", "3",
                "--pruning.init_args.finetune_epochs", "1", "--pruning.init_args.final_sparsity", "0.7",
                "--run.wandb_mode", "disabled", "--run.dir", str(run)], monkeypatch, tmp_path)  # fmt: skip
    summary = read_run_json(run)
    ckpt = load(run / "checkpoints" / "last.ckpt")
    zeros, size = zeros_over_size(ckpt["state_dict"], prunable_names(ckpt["state_dict"]))
    assert summary["pruning"] == "oneshot" and zeros == round(0.7 * size) and summary["achieved_sparsity"] == zeros / size
    assert [e[0] for e in summary["pruning_events"]] == [2 * STEPS_PER_EPOCH]  # once, at the start of epoch 2 of 3
    group = ckpt["optimizer_states"][0]["param_groups"][0]  # the fine-tuning optimiser was trained and saved
    assert (group["lr"], group["momentum"], group["nesterov"]) == (1e-3, 0.9, True)
    assert ckpt["lr_schedulers"] == []


def test_oneshot_supcon_contrastive_head_then_prune_and_finetune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    # un-augmented views (the contrastive augmentation costs more than the tiny network here)
    in_process(["fit", *with_config(TINY_SUPCON, "supcon_oneshot_retrain.yaml"), *FAST, "--trainer.max_epochs", "3",
                "--pruning.init_args.targets", "encoder",
                "--data.init_args.train_size", "128", "--data.init_args.batch_size", "32",
                "--data.init_args.augmentation", "none",
                "--pruning.init_args.finetune_epochs", "1", "--pruning.init_args.final_sparsity", "0.7",
                "--run.wandb_mode", "disabled", "--run.dir", str(run)], monkeypatch, tmp_path)  # fmt: skip
    summary = read_run_json(run)
    ckpt = load(run / "checkpoints" / "last.ckpt")
    zeros, size = zeros_over_size(ckpt["state_dict"], prunable_names(ckpt["state_dict"]))
    assert summary["method"] == "supcon" and summary["pruning"] == "oneshot"
    assert zeros == round(0.7 * size) and summary["achieved_sparsity"] == zeros / size
    # 1 contrastive epoch (128 images / 32 = 4 steps) + 1 head epoch on its own loader (batch 256 > 128
    # images: 1 step), then pruned once at step 5 and fine-tuned with cross-entropy
    assert [e[0] for e in summary["pruning_events"]] == [STEPS_PER_EPOCH + 1]
    rows = finetune_rows(run)
    epochs_with = lambda key: sorted({int(r["epoch"]) for r in rows if r.get(key)})  # noqa: E731
    assert epochs_with("train/loss_epoch") == [0]
    assert epochs_with("train/head_loss_epoch") == [1]
    assert epochs_with("train/finetune_loss_epoch") == [2]
    projector = [k for k in ckpt["state_dict"] if k.startswith("projector.")]
    assert projector and all(int((ckpt["state_dict"][k] == 0).sum()) == 0 for k in projector)  # head never pruned


# --------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing trained
# --------------------------------------------------------------------------------------------------
BAD_PRUNING = [
    ("gmp", ["--pruning.init_args.final_sparsity", "1.2"],
     "error: final_sparsity=1.2 is out of range; it must be in [0, 1)"),
    ("gmp", ["--pruning.init_args.begin_step", "13", "--pruning.init_args.end_step", "13"],
     "error: begin_step=13 must be smaller than end_step=13; begin_step must be in [0, 13)"),
    ("gmp", ["--pruning.init_args.frequency", "0"],
     "error: frequency=0 is out of range; it must be in [1, inf) optimiser steps"),
    ("gmp", ["--pruning.init_args.granularity", "nm", "--pruning.init_args.n", "5", "--pruning.init_args.m", "4"],
     "error: n=5 is out of range; it must be in [1, 4]"),
    ("gmp", ["--pruning.init_args.initial_sparsity", "0.6", "--pruning.init_args.final_sparsity", "0.5"],
     "error: final_sparsity=0.5 is below initial_sparsity=0.6; it must be in [0.6, 1)"),
    ("oneshot", ["--pruning.init_args.finetune_epochs", "4"],
     "error: finetune_epochs=4 is out of range for trainer.max_epochs=4; it must be in [1, 3] (or give pruning.init_args.parent to fine-tune a trained dense run)"),
]  # fmt: skip


@pytest.mark.parametrize(
    "config,extra,message", BAD_PRUNING, ids=["sparsity", "begin_end", "frequency", "n_gt_m", "final_lt_initial", "finetune"]
)
def test_bad_pruning_input_is_one_line_before_training(
    config: str, extra: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    if config == "gmp":  # rejected while the CLI instantiates the callback, before any logger exists
        args = ["fit", *GMP_ARGS, *extra]
    else:  # rejected by OneShotPruning.check_fit_config, called by the CLI before the Trainer exists
        args = ["fit", *ONESHOT_SUP, "--trainer.max_epochs", "4", "--run.wandb_mode", "disabled", *extra]
    with pytest.raises(SystemExit) as exit_info:
        in_process(args, monkeypatch, tmp_path)
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [message], err
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("run.json"))
    assert not list(tmp_path.rglob("offline-run-*"))


def test_finetune_epochs_error_leaves_no_wandb_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    assert wandb.run is None  # an unfinished in-process run would be re-used by the WandbLogger
    try:
        with pytest.raises(SystemExit):
            in_process(["fit", *ONESHOT_SUP, "--trainer.max_epochs", "4", "--pruning.init_args.finetune_epochs", "4",
                        "--run.dir", str(tmp_path / "run")], monkeypatch, tmp_path)  # fmt: skip
    finally:
        if wandb.run is not None:
            wandb.run.finish()
    assert not list(tmp_path.rglob("offline-run-*"))


# --------------------------------------------------------------------------------------------------
# every Table 1 config: parses through the CLI and carries the paper's settings
# --------------------------------------------------------------------------------------------------
TABLE1 = {
    # config: (model, max_epochs, pruning class or None, pruning init_args that must hold): the authors'
    # code values (sup_training.py, clr_training.py, *_pruning_finetune.py; see each config's header)
    "sup_dense.yaml": ("SupervisedClassifier", 205, None, {}),
    "sup_gmp.yaml": ("SupervisedClassifier", 205, "GradualMagnitudePruning",
                     {"begin_step": 1000, "end_step": 20000, "frequency": 500, "scope": "layerwise", "targets": "network"}),
    "sup_oneshot.yaml": ("SupervisedClassifier", 30, "OneShotPruning",
                         {"finetune_epochs": 30, "finetune_lr": 1e-3, "finetune_momentum": 0.9, "finetune_nesterov": True,
                          "finetune_weight_decay": 0.0, "finetune_batch_size": 128, "parent": "runs/sup_dense",
                          "scope": "global", "targets": "network"}),
    "sup_oneshot_retrain.yaml": ("SupervisedClassifier", 235, "OneShotPruning",
                                 {"finetune_epochs": 30, "finetune_weight_decay": 0.0, "parent": None, "targets": "network"}),
    "supcon_dense.yaml": ("SupConModel", 600, None, {}),
    "supcon_gmp.yaml": ("SupConModel", 600, "GradualMagnitudePruning",
                        {"begin_step": 125, "end_step": 2476, "frequency": 62, "scope": "layerwise", "targets": "encoder_conv",
                         "head_begin_step": 500, "head_end_step": 10000, "head_frequency": 250}),
    "supcon_delta_gmp.yaml": ("SupConModel", 600, "GradualMagnitudePruning",
                              {"begin_step": 2440, "end_step": 4760, "frequency": 62, "begin_epoch": None, "scope": "layerwise",
                               "targets": "encoder_conv", "head_begin_step": 500, "head_end_step": 10000, "head_frequency": 250}),
    "supcon_oneshot.yaml": ("SupConModel", 30, "OneShotPruning",
                            {"finetune_epochs": 30, "finetune_lr": 1e-3, "finetune_momentum": 0.9, "finetune_nesterov": True,
                             "finetune_weight_decay": 0.0, "finetune_batch_size": 128, "parent": "runs/supcon_dense",
                             "scope": "global", "targets": "network"}),
    "supcon_oneshot_retrain.yaml": ("SupConModel", 630, "OneShotPruning",
                                    {"finetune_epochs": 30, "finetune_weight_decay": 0.0, "parent": None, "targets": "network"}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_table1_config_parses_with_the_papers_settings(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    model, epochs, pruning, expected = TABLE1[name]
    with pytest.raises(SystemExit) as exit_info:
        in_process(["fit", "--config", str(EXPERIMENTS / name), "--print_config"], monkeypatch, tmp_path)
    assert exit_info.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)  # the resolved config, every default filled in
    assert cfg["model"]["class_path"].endswith(model) and cfg["trainer"]["max_epochs"] == epochs
    assert cfg["seed_everything"] == 0 and cfg["run"]["group"] == name.removesuffix(".yaml")
    assert [c["class_path"] for c in cfg["trainer"]["callbacks"]] == [
        "callbacks.metrics.PerSamplePredictions", "callbacks.metrics.QScore"]  # fmt: skip
    assert cfg["model"]["init_args"]["backbone"] == "wrn16_2"
    assert cfg["data"]["init_args"]["batch_size"] == (128 if model == "SupervisedClassifier" else 1024)
    if model == "SupConModel":
        head = {k: cfg["model"]["init_args"][k] for k in ("head_epochs", "head_batch_size", "head_augmentation", "head_lr",
                                                           "head_momentum", "head_weight_decay", "head_milestones", "head_gamma")}
        assert head == {"head_epochs": 100, "head_batch_size": 256, "head_augmentation": "supervised", "head_lr": 0.1,
                        "head_momentum": 0.9, "head_weight_decay": 0.0, "head_milestones": [60, 75, 90], "head_gamma": 0.2}
        assert cfg["model"]["init_args"]["weight_decay"] == 4e-4 and cfg["trainer"]["sync_batchnorm"] is True
    assert cfg["data"]["init_args"]["vflip"] is True and cfg["data"]["init_args"]["drop_last"] is False  # get_cifar10
    if pruning is None:
        assert cfg.get("pruning") is None
        return
    assert cfg["pruning"]["class_path"] == f"callbacks.pruning.{pruning}"
    init = cfg["pruning"]["init_args"]
    assert init["final_sparsity"] == 0.9 and init["granularity"] == "unstructured"
    assert {k: init[k] for k in expected} == expected
