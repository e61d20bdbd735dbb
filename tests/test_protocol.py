"""Table 1 trains what Corti et al.'s code trains: per-layer GMP over the authors' tensor sets, the SCL
linear-head protocol with its own loader and schedule, the classifier pruned in the head phase,
One-Shot children of dense parents fine-tuned in train mode, and many devices training what one does.

Runs use the shipped ``configs/experiments/*.yaml`` with size flags only (synthetic data, WRN-10-1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from conftest import REPO, TINY_SUP, TINY_SUPCON, read_run_json, run_cli, with_experiment
from torch import nn

from callbacks.pruning import OneShotPruning
from datamodules import SyntheticDataModule
from lightning_modules import SupConModel
from lightning_modules.phased import chained_head_factors
from sparsity.masks import compute_masks

EXP = REPO / "configs" / "experiments"


def exp(base: list[str], name: str) -> list[str]:
    """``base`` with its ``--config`` replaced by an experiment config (which keeps its pruning)."""
    return with_experiment(base, EXP / name)


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


class PhaseRecorder(pl.Callback):
    """Test helper (added with ``--trainer.callbacks+=``): per training batch (at its end, so the
    modes are those the step ran with) the phase, batch size, whether it was single-view, the
    BatchNorm modes of the encoder and the lr of every group; dumped to ``path`` at the end of fit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bns = batchnorms(pl_module)
        self.rows.append({
            "phase": pl_module.phase, "epoch": trainer.current_epoch, "step": trainer.global_step,
            "batch": int(batch["label"].shape[0]), "single_view": "image" in batch,
            "bn_training": [m.training for m in bns], "bn_mean0": float(bns[0].running_mean.sum()),
            "lr": {g.get("name", str(i)): g["lr"] for i, g in enumerate(trainer.optimizers[0].param_groups)},
        })  # fmt: skip

    def on_fit_end(self, trainer, pl_module) -> None:
        Path(self.path).write_text(json.dumps(self.rows))


def batchnorms(module: Any) -> list[nn.Module]:
    """The encoder's BatchNorm layers."""
    return [m for m in module.encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def fit_contrastive_head_finetune(callback: pl.Callback, train_size: int) -> None:
    """A tiny SupCon fit through its three phases, one epoch each: contrastive, the linear head
    (encoder frozen), One-Shot's fine-tune at 50 % (batch 16 throughout)."""
    model = SupConModel(backbone="wrn", depth=10, widen_factor=1, head_epochs=1)
    data = SyntheticDataModule(train_size=train_size, test_size=16, batch_size=16, views=2, augmentation="contrastive", num_workers=0)
    pruner = OneShotPruning(final_sparsity=0.5, finetune_epochs=1, finetune_batch_size=16)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=3, callbacks=[pruner, callback], logger=False,
                         enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=data)


def recorder(tmp_path: Path) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": "test_protocol.PhaseRecorder", "init_args": {"path": str(tmp_path / "rows.json")}})


# --------------------------------------------------------------------------------------------------
# One-Shot fine-tuning trains the whole network, BatchNorm included (the authors' model.train())
# --------------------------------------------------------------------------------------------------
def test_finetune_trains_every_batchnorm_of_the_encoder(tmp_path: Path) -> None:
    """Contrastive -> head (encoder frozen, eval mode) -> One-Shot fine-tune: in every fine-tune step
    every BatchNorm of the encoder is in training mode and its running statistics move. (Before the
    fix the head phase's eval mode leaked into the fine-tune phase: this test failed there.)"""
    pl.seed_everything(0, verbose=False)
    seen: list[tuple[int, list[bool], torch.Tensor]] = []

    class Probe(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if pl_module.phase == "finetune":
                bns = batchnorms(pl_module)
                seen.append((trainer.global_step, [m.training for m in bns], torch.cat([m.running_mean for m in bns]).clone()))

    fit_contrastive_head_finetune(Probe(), train_size=64)
    assert len(seen) == 4  # 64 images / batch 16
    assert all(all(modes) for _, modes, _ in seen), [modes for _, modes, _ in seen]
    for (_, _, before), (_, _, after) in zip(seen, seen[1:]):
        assert not torch.equal(before, after)  # running statistics adapt to the pruned weights


# --------------------------------------------------------------------------------------------------
# Sup GMP: per layer, every Conv2d weight and Linear weight + bias, the classifier included
# --------------------------------------------------------------------------------------------------
def test_sup_gmp_config_prunes_every_tensor_of_the_network_per_layer(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_cli("fit", *exp(TINY_SUP, "sup_gmp.yaml"), "--model.init_args.lr", "0.1", "--model.init_args.milestones", "[100]",
                   "--pruning.init_args.begin_step", "2", "--pruning.init_args.end_step", "8", "--pruning.init_args.frequency", "2",
                   "--run.wandb_mode", "disabled", "--run.dir", str(run), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary, ckpt = read_run_json(run), load(run / "checkpoints" / "last.ckpt")
    weights, masks = ckpt["state_dict"], ckpt["callbacks"]["GradualMagnitudePruning"]["masks"]
    expected = sorted(k for k, v in weights.items() if (k.startswith("encoder.") and k.endswith(".weight") and v.dim() == 4)
                      or k in ("classifier.weight", "classifier.bias"))  # fmt: skip
    assert sorted(masks) == expected  # the authors' tensor set: Conv2d weights + Linear weight and bias
    assert summary["pruning_targets"] == "network" and summary["pruning_scope"] == "layerwise"
    print("\nSup GMP (sup_gmp.yaml, per layer), final sparsity of each tensor:")
    for name in expected:
        numel = weights[name].numel()
        sparsity = int((weights[name] == 0).sum()) / numel
        print(f"  {name:<40} {numel:>7}  {sparsity:.6f}")
        assert int((weights[name] == 0).sum()) == round(0.9 * numel), name  # 0.9 ± 1/numel in every tensor
    encoder = [k for k in expected if k.startswith("encoder.")]
    zeros = sum(int((weights[k] == 0).sum()) for k in encoder)
    assert summary["achieved_sparsity"] == zeros / sum(weights[k].numel() for k in encoder)  # the paper's count


# --------------------------------------------------------------------------------------------------
# SCL: the linear head as the authors train it, and the classifier pruned in the head phase
# --------------------------------------------------------------------------------------------------
def test_supcon_head_phase_has_its_own_loader_schedule_and_classifier_pruning(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    head_epochs, head_batch = 3, 32  # 256 images: 8 head steps per epoch, 24 in all
    done = run_cli("fit", *exp(TINY_SUPCON, "supcon_gmp.yaml"), "--trainer.max_epochs", str(1 + head_epochs),
                   "--model.init_args.head_epochs", str(head_epochs), "--model.init_args.head_batch_size", str(head_batch),
                   "--model.init_args.head_milestones", "[1, 2]",
                   "--pruning.init_args.begin_step", "1", "--pruning.init_args.end_step", "4", "--pruning.init_args.frequency", "1",
                   "--pruning.init_args.head_begin_step", "2", "--pruning.init_args.head_end_step", "20",
                   "--pruning.init_args.head_frequency", "6", recorder(tmp_path),
                   "--run.wandb_mode", "disabled", "--run.dir", str(run), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "rows.json").read_text())
    pre = [r for r in rows if r["phase"] == "contrastive"]
    head = [r for r in rows if r["phase"] == "head"]
    assert len(pre) == 4 and all(r["batch"] == 64 and not r["single_view"] for r in pre)  # two views at data.batch_size
    assert len(head) == 8 * head_epochs and all(r["batch"] == head_batch and r["single_view"] for r in head)
    assert all(not any(r["bn_training"]) for r in head)  # frozen encoder, eval mode
    assert len({r["bn_mean0"] for r in head}) == 1  # its BatchNorm statistics do not move
    # classifier lr per head epoch: torch's MultiStepLR(milestones, 0.2) chained with CosineAnnealingLR(T=epochs,
    # eta_min=lr * 1e-3), both stepped per epoch, as clr_training.py
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    multistep = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 2], gamma=0.2)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=head_epochs, eta_min=0.1 * 1e-3)
    expected = []
    for _ in range(head_epochs):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        multistep.step()
        cosine.step()
    got = [next(r["lr"]["classifier"] for r in head if r["epoch"] == 1 + e) for e in range(head_epochs)]
    assert got == pytest.approx(expected, rel=1e-12, abs=0.0)
    assert [0.1 * f for f in chained_head_factors(head_epochs, [1, 2], 0.2, 1e-3)] == pytest.approx(expected, rel=1e-12)
    assert all(r["lr"]["encoder"] == 0.0 for r in head)
    # the classifier pruned per tensor on its own schedule, head steps counted from the head phase's start
    summary = read_run_json(run)
    head_events = summary["classifier_pruning_events"]  # [global step, head step, target, measured]
    assert [e[1] for e in head_events] == [2, 8, 14, 20] and [e[0] for e in head_events] == [4 + 2, 4 + 8, 4 + 14, 4 + 20]
    weights = load(run / "checkpoints" / "last.ckpt")["state_dict"]
    for name in ("classifier.weight", "classifier.bias"):
        assert int((weights[name] == 0).sum()) == round(0.9 * weights[name].numel()), name
    assert summary["classifier_sparsity"] == pytest.approx(
        sum(int((weights[n] == 0).sum()) for n in ("classifier.weight", "classifier.bias")) / (64 * 10 + 10))
    assert summary["status"] == "complete"


# --------------------------------------------------------------------------------------------------
# One-Shot children of the dense population
# --------------------------------------------------------------------------------------------------
def test_oneshot_child_prunes_its_dense_parent_and_records_it(tmp_path: Path) -> None:
    dense_root = tmp_path / "runs" / "supcon_dense"
    for seed in (0, 1):
        done = run_cli("fit", *exp(TINY_SUPCON, "supcon_dense.yaml"), "--seed_everything", str(seed),
                       "--run.wandb_mode", "disabled", "--run.dir", str(dense_root / f"s{seed}"), cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    child = tmp_path / "child"
    done = run_cli("fit", *exp(TINY_SUPCON, "supcon_oneshot.yaml"), "--seed_everything", "1",
                   "--trainer.max_epochs", "2", "--pruning.init_args.finetune_epochs", "2",
                   "--pruning.init_args.finetune_batch_size", "64", "--pruning.init_args.final_sparsity", "0.7",
                   "--pruning.init_args.parent", str(dense_root), recorder(tmp_path),
                   "--run.wandb_mode", "disabled", "--run.dir", str(child), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary, parent = read_run_json(child), read_run_json(dense_root / "s1")
    assert summary["parent_run"]["path"] == str((dense_root / "s1").resolve())  # the parent with the same seed
    assert summary["parent_run"]["seed"] == 1 and summary["parent_run"]["test_acc"] == parent["test_acc"]
    assert summary["oneshot_mode"] == "child" and summary["epochs_trained"] == 2 and summary["status"] == "complete"
    # the child's masks are the parent's final weights pruned globally over encoder Conv2d + classifier weight/bias
    parent_weights = load(dense_root / "s1" / "checkpoints" / "last.ckpt")["state_dict"]
    masks = load(child / "checkpoints" / "last.ckpt")["callbacks"]["OneShotPruning"]["masks"]
    names = sorted(masks)
    assert names == sorted(k for k, v in parent_weights.items() if (k.startswith("encoder.") and v.dim() == 4)
                           or k in ("classifier.weight", "classifier.bias"))  # fmt: skip
    expected = compute_masks({k: parent_weights[k] for k in names}, 0.7, scope="global", granularity="unstructured")
    assert all(torch.equal(masks[k], expected[k]) for k in names)
    assert [e[0] for e in summary["pruning_events"]] == [0]  # pruned before the first fine-tune step
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {r["phase"] for r in rows} == {"finetune"} and all(r["batch"] == 64 and r["single_view"] for r in rows)
    assert all(all(r["bn_training"]) for r in rows)  # the whole model in train mode


# --------------------------------------------------------------------------------------------------
# many devices train what one device trains: SyncBatchNorm in the contrastive configs
# --------------------------------------------------------------------------------------------------
@pytest.mark.ddp
def test_two_ddp_ranks_at_batch_b_update_like_one_process_at_2b(tmp_path: Path) -> None:
    """One contrastive step of SupCon on WRN-10-1 (BatchNorm everywhere): 2 CPU ranks x batch 32 with
    the config's sync_batchnorm vs 1 process x batch 64 — the same 64 images (the sampler gives rank r
    positions r, r+2, ... of the same permutation) with the same augmentation (seeded per sample).
    Encoder/projector weights after the step and BatchNorm running statistics agree to 1e-5; without
    SyncBatchNorm they do not (each rank normalises its own 32 images)."""
    # augment_on loader: augmentation seeded per sample, so both runs see the same views (the device path
    # seeds per batch: the same distribution, other draws when batches are split over ranks); contiguous
    # tensors: CPU channels_last convolutions sum in a batch-size-dependent order (7.8e-5 apart here),
    # float32 noise that has nothing to do with BatchNorm
    common = [*exp(TINY_SUPCON, "supcon_dense.yaml"), "--data.init_args.augment_on", "loader", "--model.init_args.channels_last", "false",
              "--trainer.max_epochs", "2", "--model.init_args.head_epochs", "1",
              "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "0", "--test_after_fit", "false",
              "--model.init_args.lr", "0.5", "--run.wandb_mode", "disabled"]  # fmt: skip
    ddp = ["--data.init_args.batch_size", "32", "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    runs = {
        "one": [*common, "--data.init_args.batch_size", "64"],
        "ddp_sync": [*common, *ddp],
        "ddp_nosync": [*common, *ddp, "--trainer.sync_batchnorm", "false"],
    }
    states = {}
    for name, args in runs.items():
        done = run_cli("fit", *args, "--run.dir", str(tmp_path / name), cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        states[name] = load(tmp_path / name / "checkpoints" / "last.ckpt")["state_dict"]
    keys = [k for k in states["one"] if k.startswith(("encoder.", "projector.")) and states["one"][k].is_floating_point()]
    worst_sync = max(float((states["one"][k] - states["ddp_sync"][k]).abs().max()) for k in keys)
    worst_nosync = max(float((states["one"][k] - states["ddp_nosync"][k]).abs().max()) for k in keys)
    print(f"\nmax |one process @64 - 2 ranks @32|: sync_batchnorm {worst_sync:.2e}, without {worst_nosync:.2e}")
    assert worst_sync < 1e-5
    assert worst_nosync > 1e-4


def test_a_callback_that_puts_the_module_back_in_train_mode_leaves_the_head_phase_frozen(tmp_path: Path) -> None:
    """The head phase's frozen encoder stays in eval mode when something calls ``module.train()`` in the
    middle of an epoch (as the prediction-depth callback does after its own eval pass); the next phase
    trains it again. The modes are set when the module is put in train mode and at each epoch start,
    not at every batch."""
    pl.seed_everything(0, verbose=False)
    seen: list[tuple[str, bool]] = []

    class EvalPass(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            pl_module.eval()
            pl_module.train()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            bns = batchnorms(pl_module)
            seen.append((pl_module.phase, any(m.training for m in bns)))

    fit_contrastive_head_finetune(EvalPass(), train_size=32)
    assert [phase for phase, _ in seen] == sorted((p for p, _ in seen), key=["contrastive", "head", "finetune"].index)
    assert {phase for phase, _ in seen} == {"contrastive", "head", "finetune"}
    assert all(training == (phase != "head") for phase, training in seen), seen
