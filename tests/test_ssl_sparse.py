"""Sparse self-supervised training: BYOL, SyncCP, SDCLR, prune-and-regrow, mask dynamics and FLOPs.

Real (tiny) Lightning fits on CPU: a WRN-10-1 BYOL/SDCLR on 32 synthetic images (4 optimiser steps
per epoch, validation off), the pruning tests' ``TinyNet`` for the schedule-level checks, the real
CLI in-process for configs and bad input, and one 2-process CPU DDP run of the CLI in a subprocess.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor

import cli
from callbacks.pruning import GradualMagnitudePruning, PruneAndRegrow, SynchronizedPruning, sparsity_of
from callbacks.pruning.dynamics import (
    TrainingCostMeter,
    drop_and_regrow,
    layer_flops_per_sample,
    mask_change,
    measure_layer_flops,
)
from conftest import REPO, cli_env, read_run_json
from datamodules import SyntheticDataModule
from lightning_modules import BYOLModel, SDCLRModel, SupConModel
from lightning_modules.byol import momentum_tau
from common.errors import ConfigError
from lightning_modules.losses import supcon_loss
from test_pruning_callbacks import GMP, TinyNet, loader

STEPS_PER_EPOCH = 4  # 32 images, batch 8
WRN_SMALL = {"backbone": "wrn", "depth": 10, "widen_factor": 1}


def tiny_data() -> SyntheticDataModule:
    return SyntheticDataModule(train_size=32, test_size=16, batch_size=8, views=2, augmentation="contrastive", num_workers=0)


def tiny_byol(**kwargs: Any) -> BYOLModel:
    # the head phase trains on its own supervised loader; at batch 8 it has 4 steps per epoch too
    kwargs.setdefault("head_batch_size", 8)
    return BYOLModel(**WRN_SMALL, proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32, head_epochs=1, **kwargs)


def make_trainer(tmp: Path, callbacks: list, max_epochs: int, **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=max_epochs, callbacks=callbacks, default_root_dir=tmp,
        limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False, **kwargs,
    )


def wrn10_1_forward_flops() -> float:
    """Per-image forward FLOPs of WRN-10-1's convolutions, by hand: 2 * k*k * C_in * C_out * H_out * W_out."""
    convs = [  # (k, C_in, C_out, H_out)
        (3, 3, 16, 32),  # stem
        (3, 16, 16, 32), (3, 16, 16, 32),  # block 1 (identity shortcut)
        (3, 16, 32, 16), (3, 32, 32, 16), (1, 16, 32, 16),  # block 2, stride 2, 1x1 shortcut
        (3, 32, 64, 8), (3, 64, 64, 8), (1, 32, 64, 8),  # block 3
    ]  # fmt: skip
    return float(sum(2 * k * k * cin * cout * h * h for k, cin, cout, h in convs))


# --------------------------------------------------------------------------------------------------
# SyncCP on BYOL
# --------------------------------------------------------------------------------------------------
class TargetProbe(pl.Callback):
    """Checks the target encoder's masked weights. Placed *before* the pruner it sees them right after
    the momentum update (not yet re-masked); placed after, it checks they are exactly zero — at the
    end of every optimiser step and at the start of the next (what the forward pass uses)."""

    def __init__(self, pruner: SynchronizedPruning, expect_zero: bool) -> None:
        self.pruner = pruner
        self.expect_zero = expect_zero
        self.checked = 0
        self.nonzero_after_ema = 0
        self.ema_before_callbacks = 0

    def _masked_target_values(self, pl_module: BYOLModel) -> list[Tensor]:
        params = dict(pl_module.named_parameters())
        return [params[name].detach()[~mask] for name, mask in self.pruner.target_masks.items()]

    def _check(self, pl_module: BYOLModel, where: str, step: int) -> None:
        for values in self._masked_target_values(pl_module):
            assert (values == 0).all(), f"{where} of step {step}: a masked target weight is not zero"
        online = pl_module.prunable_parameters()
        for name, mask in self.pruner.masks.items():
            assert (online[name].detach()[~mask] == 0).all(), f"{where} of step {step}: {name}"
        self.checked += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.expect_zero and self.pruner.target_masks:
            self._check(pl_module, "start", trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.phase == "contrastive":
            # the module's EMA of this step ran before any callback's on_train_batch_end
            assert pl_module.last_momentum_update_step == trainer.global_step
            self.ema_before_callbacks += 1
        if not self.pruner.target_masks:
            return
        if self.expect_zero:
            self._check(pl_module, "end", trainer.global_step)
        else:
            self.nonzero_after_ema += sum(int((v != 0).sum()) for v in self._masked_target_values(pl_module))


def test_synccp_target_sparsity_is_online_minus_gap_and_masks_hold_after_every_momentum_update(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    pruner = SynchronizedPruning(final_sparsity=0.8, begin_step=2, end_step=8, frequency=2, density_gap=0.3)
    before, after = TargetProbe(pruner, expect_zero=False), TargetProbe(pruner, expect_zero=True)
    model = tiny_byol()
    logger = CSVLogger(tmp_path, name="csv", version="")
    trainer = make_trainer(tmp_path, [before, pruner, after], max_epochs=3, logger=logger, log_every_n_steps=1)
    trainer.fit(model, datamodule=tiny_data())

    assert pruner.synchronized is True
    total = sum(p.numel() for p in model.prunable_parameters().values())
    assert [e["step"] for e in pruner.events] == [e["step"] for e in pruner.target_events] == [2, 4, 6, 8]
    print("\nSyncCP events (gap 0.3): step, online target/measured, target-encoder target/measured")
    for online, target in zip(pruner.events, pruner.target_events):
        print(f"  {online['step']:>3}  {online['target']:.4f}/{online['measured']:.4f}  {target['target']:.4f}/{target['measured']:.4f}")
        assert target["target"] == pytest.approx(max(0.0, online["target"] - 0.3), abs=1e-12)
        assert target["measured"] == round(target["target"] * total) / total
        assert online["measured"] == round(online["target"] * total) / total
    assert pruner.achieved_sparsity(model) == round(0.8 * total) / total
    assert pruner.target_achieved_sparsity(model) == round(0.5 * total) / total
    # masked target weights are zero after every momentum update (and before every forward) ...
    assert after.checked >= 2 * 12 - 4  # 8 pretraining + 4 head steps, masks from step 2 on
    # ... which needs the re-application: the EMA itself revives them (online weights are not masked there)
    assert before.nonzero_after_ema > 0
    assert before.ema_before_callbacks == after.ema_before_callbacks == 8

    summary = pruner.run_summary(trainer, model)
    assert summary["pruning"] == "synccp" and summary["density_gap"] == 0.3
    assert summary["target_encoder_target_sparsity"] == pytest.approx(0.5)
    # FLOPs: 8 pretraining steps x 16 images x (3 online + 1 target) passes + 4 head steps x 8 images x 1
    f = wrn10_1_forward_flops()
    assert summary["train_flops_dense"] == pytest.approx(8 * 16 * 4 * f + 4 * 8 * f, rel=1e-9)
    assert 0.0 < summary["flops_saving"] < 0.8
    logger.save()
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("sparsity/target_encoder", "pruning/oscillation", "pruning/target_encoder/oscillation",
                "flops/step_saving", "flops/cumulative_saving", "train/tau", "probe/train_acc"):  # fmt: skip
        assert key in header, key


def test_byol_ema_by_name_matches_hand_computation(tmp_path: Path) -> None:
    records: list[tuple[int, dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]] = []

    class Capture(pl.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            self.target_before = {k: v.detach().clone() for k, v in pl_module.named_parameters() if k.startswith("target_")}

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            params = {k: v.detach().clone() for k, v in pl_module.named_parameters()}
            records.append((trainer.global_step, self.target_before, params, {}))

    pl.seed_everything(0, verbose=False)
    model = tiny_byol(base_tau=0.9)
    trainer = make_trainer(tmp_path, [Capture()], max_epochs=2)  # 4 pretraining steps, then 4 head steps
    trainer.fit(model, datamodule=tiny_data())
    pairs = model.target_pairs()
    assert set(pairs) == {k for k, _ in model.named_parameters() if k.startswith(("encoder.", "projector."))}
    names = {id(p): k for k, p in model.named_parameters()}
    assert all(names[id(t)] == "target_" + k for k, t in pairs.items())  # paired by name
    K = STEPS_PER_EPOCH
    for step, target_before, after, _ in records:
        if step > K:  # head phase: the target network is left alone
            assert all(torch.equal(after["target_" + k], target_before["target_" + k]) for k in pairs)
            continue
        k = step - 1  # the update after optimiser step `step` uses the schedule at k = step - 1
        tau = 1 - (1 - 0.9) * (math.cos(math.pi * k / K) + 1) / 2
        assert tau == pytest.approx(momentum_tau(k, K, 0.9))
        for name in pairs:
            expected = tau * target_before["target_" + name] + (1 - tau) * after[name]
            torch.testing.assert_close(after["target_" + name], expected, rtol=1e-6, atol=1e-7)
    assert not torch.equal(after["target_encoder.conv1.weight"], after["encoder.conv1.weight"])


def test_checkpoint_resume_restores_target_encoder_and_its_masks(tmp_path: Path) -> None:
    make = lambda: SynchronizedPruning(  # noqa: E731
        final_sparsity=0.8, begin_step=2, end_step=6, frequency=2, density_gap=0.3, score="ema", score_momentum=0.9
    )
    pl.seed_everything(0, verbose=False)
    first = make()
    ckpt_cb = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)

    class StopAfterFirstEpoch(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            trainer.should_stop = True

    # 3 epochs = 2 contrastive + 1 head: the schedule (steps 2..6) ends inside the contrastive phase
    trainer = make_trainer(tmp_path / "a", [first, ckpt_cb, StopAfterFirstEpoch()], max_epochs=3, enable_checkpointing=True)
    trainer.fit(tiny_byol(), datamodule=tiny_data())
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == STEPS_PER_EPOCH and first.target_masks
    saved_target = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("target_encoder.")}
    assert any(not torch.equal(saved_target[k], ckpt["state_dict"][k.removeprefix("target_")]) for k in saved_target)

    seen: dict[str, Any] = {}

    class AtResume(pl.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            seen["target"] = {k: v.clone() for k, v in pl_module.state_dict().items() if k.startswith("target_encoder.")}
            seen["masks"] = {k: v.clone() for k, v in second.target_masks.items()}
            seen["scores"] = {k: v.clone() for k, v in second._ema_scores.items()}

    pl.seed_everything(1, verbose=False)
    second = make()
    fresh = tiny_byol()  # its target encoder is a copy of its own (different) online encoder
    trainer = make_trainer(tmp_path / "b", [second, AtResume()], max_epochs=3)
    trainer.fit(fresh, datamodule=tiny_data(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    for name, value in saved_target.items():
        assert torch.equal(seen["target"][name], value), name  # the checkpoint's EMA weights, not a fresh copy
    assert set(seen["masks"]) == set(ckpt["callbacks"]["SynchronizedPruning"]["target_masks"])
    for name, mask in ckpt["callbacks"]["SynchronizedPruning"]["target_masks"].items():
        assert torch.equal(seen["masks"][name], mask)
    assert [e["step"] for e in second.target_events] == [2, 4, 6]  # 2 and 4 restored, 6 after the resume
    saved_scores = ckpt["callbacks"]["SynchronizedPruning"]["ema_scores"]  # score="ema": EMA of |w| of both encoders
    assert set(saved_scores) == set(first.masks) | set(first.target_masks)
    assert all(torch.equal(seen["scores"][k], v) for k, v in saved_scores.items())
    total = sum(p.numel() for p in fresh.prunable_parameters().values())
    assert second.target_achieved_sparsity(fresh) == round(0.5 * total) / total


def test_synccp_on_a_shared_encoder_is_gmp_and_says_so(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    pruner = SynchronizedPruning(final_sparsity=0.6, begin_step=1, end_step=4, frequency=1, density_gap=0.3)
    model = SupConModel(supervised=False, **WRN_SMALL, head_epochs=1)
    with pytest.warns(UserWarning, match="one shared encoder .* plain gradual magnitude pruning"):
        make_trainer(tmp_path, [pruner], max_epochs=2).fit(model, datamodule=tiny_data())
    assert pruner.synchronized is False and pruner.target_masks == {} and pruner.target_events == []
    total = sum(p.numel() for p in model.prunable_parameters().values())
    assert pruner.achieved_sparsity(model) == round(0.6 * total) / total
    assert pruner.run_summary(None, model)["synchronized"] is False


# --------------------------------------------------------------------------------------------------
# mask dynamics: oscillation, regrowth, FLOPs
# --------------------------------------------------------------------------------------------------
class MaskRecorder(pl.Callback):
    """After the pruner: the masks at every optimiser step, and the regrown entries' weights/momentum."""

    def __init__(self, pruner: Any) -> None:
        self.pruner = pruner
        self.masks: list[tuple[int, dict[str, Tensor]]] = []
        self.revived_checked = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = {k: v.clone() for k, v in self.pruner.masks.items()}
        if self.masks and self.masks[-1][1] and self.pruner.events and self.pruner.events[-1]["step"] == trainer.global_step:
            params = pl_module.prunable_parameters()
            state = trainer.optimizers[0].state
            for name, mask in now.items():
                revived = mask & ~self.masks[-1][1][name]
                if revived.any():
                    assert (params[name].detach()[revived] == 0).all(), "a regrown weight does not start at 0"
                    assert (state[params[name]]["momentum_buffer"][revived] == 0).all(), "regrown momentum not reset"
                    self.revived_checked += 1
        self.masks.append((trainer.global_step, now))


def _changes(recorder: MaskRecorder) -> dict[int, Any]:
    return {step: mask_change(before, after) for (_, before), (step, after) in zip(recorder.masks, recorder.masks[1:]) if before}


def test_oscillation_is_zero_between_gmp_events_and_gmp_never_revives(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    pruner = GradualMagnitudePruning(**GMP)  # events 4, 9, 14, 19, 24, 29, 30 of 40 steps
    recorder = MaskRecorder(pruner)
    make_trainer(tmp_path, [pruner, recorder], max_epochs=5).fit(TinyNet(), train_dataloaders=loader())
    events = {e["step"]: e for e in pruner.events}
    for step, change in _changes(recorder).items():
        if step not in events:
            assert change.flipped == 0.0, step  # between events nothing flips
        else:
            assert change.revived == 0.0 and change.flipped == change.newly_pruned, step
            assert events[step]["oscillation"] == change.flipped
    assert sum(c.flipped for c in _changes(recorder).values()) == pytest.approx(sparsity_of(pruner.masks))


def test_prune_and_regrow_oscillates_keeps_sparsity_and_resets_regrown_weights(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    pruner = PruneAndRegrow(final_sparsity=0.8, begin_step=4, end_step=20, update_frequency=4, drop_fraction=0.5, regrow_end_step=36)
    recorder = MaskRecorder(pruner)
    logger = CSVLogger(tmp_path, name="csv", version="")
    model = TinyNet()
    make_trainer(tmp_path, [pruner, recorder], max_epochs=5, logger=logger).fit(model, train_dataloaders=loader())
    total = sum(p.numel() for p in model.prunable_parameters().values())
    assert [e["step"] for e in pruner.events] == [4, 8, 12, 16, 20, 24, 28, 32]
    changes = _changes(recorder)
    # r (cosine from 0.5 at step 4 to 0 at step 36) is 0.43, 0.35, 0.25, 0.15 at steps 12..24. (At step 4 the
    # target is still 0: nothing to regrow; at step 8 everything regrown was alive at step 7: no flip back.)
    revived = [changes[s].revived for s in (12, 16, 20, 24)]
    assert all(r > 0 for r in revived)  # updates regrow weights that an earlier update pruned ...
    assert all(changes[s].flipped > changes[s].newly_pruned for s in (12, 16, 20, 24))  # ... so it oscillates
    assert changes[32].revived < revived[0]  # r decays (0.02 at step 32)
    assert [e["regrown"] > 0 for e in pruner.regrow_events] == [False] + [True] * 7
    for step, change in changes.items():
        if step not in (4, 8, 12, 16, 20, 24, 28, 32):
            assert change.flipped == 0.0
    assert recorder.revived_checked > 0
    assert sparsity_of(pruner.masks) == round(0.8 * total) / total  # regrowth replaces what it drops
    assert pruner.achieved_sparsity(model) == round(0.8 * total) / total  # regrown weights moved off 0 since
    summary = pruner.run_summary(None, model)
    assert summary["pruning"] == "regrow" and summary["final_oscillation"] > 0 and summary["regrown_total"] > 0
    logger.save()
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"pruning/oscillation", "pruning/revived", "pruning/regrown", "pruning/drop_fraction"} <= set(header)


def test_drop_and_regrow_against_numpy() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 10, generator=g)
    grad = torch.randn(6, 10, generator=g)
    mask = torch.rand(6, 10, generator=g) > 0.5
    w = w * mask
    new, regrown = drop_and_regrow({"a": w}, {"a": grad}, {"a": mask}, 0.3)
    m, wn, gn = mask.numpy().ravel(), w.abs().numpy().ravel(), grad.abs().numpy().ravel()
    k = round(0.3 * m.sum())
    active, inactive = np.flatnonzero(m), np.flatnonzero(~m)
    dropped = active[np.argsort(wn[active], kind="stable")[:k]]
    grown = inactive[np.argsort(-gn[inactive], kind="stable")[:k]]
    expected = m.copy()
    expected[dropped] = False
    expected[grown] = True
    assert regrown == {"a": k} and np.array_equal(new["a"].numpy().ravel(), expected)
    assert int(new["a"].sum()) == int(mask.sum())


def test_flops_of_conv_layers_and_meter() -> None:
    assert layer_flops_per_sample((16, 3, 3, 3), (5, 16, 32, 32)) == 2 * 3 * 3 * 3 * 16 * 32 * 32
    assert layer_flops_per_sample((10, 64), (5, 10)) == 2 * 64 * 10
    model = tiny_byol()
    names = list(model.prunable_parameters())
    flops = measure_layer_flops(model, names, lambda: model.encode(torch.zeros(2, 3, 32, 32)))
    assert set(flops) == set(names) and sum(flops.values()) == wrn10_1_forward_flops()
    assert flops["encoder.blocks.1.conv1.weight"] == 2 * 9 * 16 * 32 * 16 * 16  # stride 2: 16x16 outputs
    assert model.encoder.training  # modes restored
    meter = TrainingCostMeter()
    meter.layer_flops = flops
    batch = {"views": [torch.zeros(4, 3, 32, 32)] * 2}
    half = {n: 0.5 for n in names}
    meter.add_batch(batch, [(3.0, half), (1.0, {})])
    meter.end_step(world_size=2)
    f = wrn10_1_forward_flops()
    assert meter.step == (pytest.approx(2 * 8 * 4 * f), pytest.approx(2 * 8 * (1.5 + 1) * f))
    assert meter.total.saving == pytest.approx(1 - 2.5 / 4)


# --------------------------------------------------------------------------------------------------
# SDCLR
# --------------------------------------------------------------------------------------------------
def test_sdclr_pruned_branch_sparsity_own_batchnorm_and_detached_gradients(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    model = SDCLRModel(**WRN_SMALL, prune_percent=0.9, proj_hidden_dim=32, proj_dim=16, head_epochs=1)
    make_trainer(tmp_path, [], max_epochs=3).fit(model, datamodule=tiny_data())
    total = sum(p.numel() for p in model.prunable_parameters().values())
    assert [e["epoch"] for e in model.mask_events] == [0, 1]  # recomputed every pretraining epoch
    assert sparsity_of(model.pruned_masks) == round(0.9 * total) / total
    assert model.pruned_branch_sparsity() == round(0.9 * total) / total  # w * mask, measured
    assert sparsity_of({k: p.detach() for k, p in model.prunable_parameters().items()}) == 0.0  # dense branch
    own = model.pruned_bn["blocks__0__bn1"]
    assert not torch.equal(own.running_mean, model.encoder.blocks[0].bn1.running_mean)  # its own statistics
    summary = model.run_summary(None, model)
    assert summary["pruned_branch_sparsity"] == round(0.9 * total) / total and 0 < summary["flops_saving"] < 0.45

    # the loss: NT-Xent(dense, sg(pruned)) + NT-Xent(sg(dense), pruned) has the gradient of the plain
    # NT-Xent of both; the pruned term alone gives masked weights no gradient
    model.trainer = None  # call pretrain_step outside a fit (self.log then only warns)
    model.train()
    g = torch.Generator().manual_seed(3)
    views = [torch.randn(8, 3, 32, 32, generator=g), torch.randn(8, 3, 32, 32, generator=g)]
    batch = {"views": views, "label": torch.zeros(8, dtype=torch.long)}
    params = model.prunable_parameters()

    def grads_of(loss: Tensor) -> dict[str, Tensor]:
        model.zero_grad()
        loss.backward()
        return {k: p.grad.clone() for k, p in params.items()}

    with pytest.warns(UserWarning, match="self.log"):
        loss, _ = model.pretrain_step(batch, 0)
    split = grads_of(loss)
    z_dense = torch.nn.functional.normalize(model.projector(model.encode(views[0])), dim=1)
    z_pruned = torch.nn.functional.normalize(model.projector(model.pruned_encode(views[1])), dim=1)
    joint = grads_of(supcon_loss(torch.stack([z_dense, z_pruned], dim=1), None, temperature=0.5))
    for k in params:
        torch.testing.assert_close(split[k], joint[k], rtol=1e-4, atol=1e-6)
    z_pruned = torch.nn.functional.normalize(model.projector(model.pruned_encode(views[1])), dim=1)
    only_pruned = grads_of(supcon_loss(torch.stack([z_dense.detach(), z_pruned], dim=1), None, temperature=0.5))
    for k, mask in model.pruned_masks.items():
        assert (only_pruned[k][~mask] == 0).all() and only_pruned[k][mask].abs().sum() > 0


# --------------------------------------------------------------------------------------------------
# configs, bad input, DDP (the real CLI)
# --------------------------------------------------------------------------------------------------
TINY = [
    "--data", str(REPO / "configs/data/synthetic_contrastive.yaml"),
    "--data.init_args.train_size", "64", "--data.init_args.test_size", "16",
    "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0",
    "--model.init_args.backbone", "wrn", "--model.init_args.depth", "10", "--model.init_args.widen_factor", "1",
    "--model.init_args.head_epochs", "1", "--trainer.max_epochs", "3",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--run.wandb_mode", "disabled",
]  # fmt: skip
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


MASK_DUMP = '''
import hashlib, json, os
from pathlib import Path
import lightning.pytorch as pl


def _digest(masks):
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(masks[name].cpu().numpy().tobytes())
    return h.hexdigest()


class MaskDump(pl.Callback):
    """Every rank writes the hashes of its online and target masks at the end of training."""

    def on_train_end(self, trainer, pl_module):
        from callbacks.pruning import SynchronizedPruning
        pruner = next(c for c in trainer.callbacks if isinstance(c, SynchronizedPruning))
        out = {"online": _digest(pruner.masks), "target": _digest(pruner.target_masks),
               "events": [e["step"] for e in pruner.events], "target_events": [e["step"] for e in pruner.target_events],
               "target_sparsity": pruner.target_achieved_sparsity(pl_module), "world_size": trainer.world_size}
        Path(os.environ["MASK_DUMP_DIR"], f"rank{trainer.global_rank}.json").write_text(json.dumps(out))
'''


@pytest.mark.ddp
def test_ddp_two_ranks_have_identical_online_and_target_masks(tmp_path: Path) -> None:
    (tmp_path / "mask_dump.py").write_text(MASK_DUMP)
    env = {**cli_env(), "PYTHONPATH": str(tmp_path), "MASK_DUMP_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    args = [
        sys.executable, str(REPO / "cli.py"), "fit", "--config", str(REPO / "configs/experiments/byol_synccp_gmp.yaml"), *TINY,
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--pruning.init_args.begin_step", "1", "--pruning.init_args.end_step", "4", "--pruning.init_args.frequency", "1",
        "--trainer.callbacks+=mask_dump.MaskDump", "--test_after_fit", "false", "--run.dir", str(tmp_path / "run"),
    ]  # fmt: skip
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    assert ranks[0]["online"] == ranks[1]["online"] and ranks[0]["target"] == ranks[1]["target"]
    assert ranks[0]["events"] == ranks[0]["target_events"] == [1, 2, 3, 4]  # 64 images / (2 x 16) = 2 steps/epoch
    assert ranks[0]["target_sparsity"] == ranks[1]["target_sparsity"] == pytest.approx(0.6, abs=1e-3)
    summary = read_run_json(tmp_path / "run")
    assert summary["synchronized"] is True and summary["achieved_sparsity"] == pytest.approx(0.9, abs=1e-3)
    if summary.get("mask_sha256_per_rank"):
        assert len(set(summary["mask_sha256_per_rank"])) == 1
    print(f"\nDDP (2 ranks) online mask {ranks[0]['online'][:12]}..., target mask {ranks[0]['target'][:12]}... on both ranks")
