"""SyncCP (callbacks/pruning/synccp.py) on BYOL: the target encoder at online - gap, its masks after every
momentum update, checkpoint resume of both mask sets, SyncCP on a shared encoder, and 2-process DDP
agreement of both mask sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from conftest import REPO, cli_env, read_run_json
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from ssl_helpers import STEPS_PER_EPOCH, TINY, WRN_SMALL, TargetProbe, make_trainer, tiny_byol, tiny_data, wrn10_1_forward_flops

from callbacks.pruning import SynchronizedPruning
from lightning_modules import SupConModel


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
