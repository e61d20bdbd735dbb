"""SyncCP as its authors run it (byol_synccp.yaml): a sparse random ERK start, masks recomputed from the
dense weights (revival), EMA-of-|w| scores, prune-and-regrow of the online encoder, the momentum
encoder at +density_gap — checked against the authors' definitions, and the option that differs
(revival) checked to matter."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from conftest import REPO, read_run_json, run_cli
from ssl_helpers import TINY, TargetProbe

from callbacks.pruning import SynchronizedPruning
from datamodules import SyntheticDataModule
from lightning_modules import BYOLModel
from sparsity.dynamics import cosine_decay
from sparsity.erk import erk_densities

RECIPE = dict(final_sparsity=0.8, initial_sparsity=0.3, initial_mask="erk", density_gap=0.3, begin_step=4, end_step=12,
              frequency=2, score="ema", score_momentum=0.99, revival=True, regrow_fraction=0.5)  # fmt: skip


class Recording(SynchronizedPruning):
    """SyncCP that keeps, per online mask change, the masks and kept-aside values before and the
    weights and masks after."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record: list[dict[str, Any]] = []

    def update_masks(self, trainer, pl_module, sparsity) -> None:
        before = {k: v.clone() for k, v in self.masks.items()}
        shadow = {k: v.clone() for k, v in self._shadow.items()}
        super().update_masks(trainer, pl_module, sparsity)
        after = {k: p.detach().clone() for k, p in self.prunable(pl_module).items()}
        self.record.append({"step": int(trainer.global_step), "masks_before": before, "shadow_before": shadow,
                            "weights_after": after, "masks_after": {k: v.clone() for k, v in self.masks.items()}})  # fmt: skip


def fit(pruner: SynchronizedPruning, callbacks: list | None = None) -> tuple[BYOLModel, pl.Trainer]:
    pl.seed_everything(0, verbose=False)
    model = BYOLModel(backbone="wrn", depth=10, widen_factor=1, proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32,
                      head_epochs=1, head_batch_size=16)  # fmt: skip
    data = SyntheticDataModule(train_size=64, test_size=16, batch_size=16, views=2, augmentation="contrastive", num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=5, callbacks=[pruner, *(callbacks or [])], logger=False,
                         enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=False,
                         enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=data)
    return model, trainer


def test_erk_start_revival_regrowth_and_the_momentum_encoder(tmp_path: Path) -> None:
    pruner = Recording(**RECIPE)
    probe = TargetProbe(pruner, expect_zero=True)
    model, trainer = fit(pruner, [probe])
    params = model.prunable_parameters()
    total = sum(p.numel() for p in params.values())
    # the start: ERK masks at density 0.7 (exact count per tensor), the momentum encoder dense (0.7 + 0.3)
    start = pruner.events[0]
    assert start["step"] == 0 and start["target"] == 0.3
    densities = erk_densities({k: tuple(p.shape) for k, p in params.items()}, 0.7)
    first = pruner.record[0]  # the first event (step 4) starts from the ERK masks
    assert first["step"] == 4
    for name, mask in first["masks_before"].items():
        assert int(mask.sum()) == round(densities[name] * params[name].numel()), name
    kept = sum(round(densities[k] * params[k].numel()) for k in params)
    assert abs(kept / total - 0.7) < 1e-3 and pruner.target_events[0]["measured"] == 0.0
    # revival: entries pruned before an event and kept after it come back with their kept-aside values
    revived_total = 0
    for rec in pruner.record:
        for name, after in rec["masks_after"].items():
            revived = after & ~rec["masks_before"][name]
            if not revived.any():
                continue
            revived_total += int(revived.sum())
            assert torch.equal(rec["weights_after"][name][revived], rec["shadow_before"][name][revived])
            assert bool((rec["shadow_before"][name][revived] != 0).any())  # not restarted at zero
    assert revived_total > 0
    # prune-and-regrow: r = 0.5 cosine-decayed to the end of pretraining (4 epochs x 4 steps = 16)
    assert [e["step"] for e in pruner.regrow_events] == [4, 6, 8, 10, 12, 14]
    for event in pruner.regrow_events:
        assert event["drop_fraction"] == pytest.approx(cosine_decay(0.5, event["step"], begin_step=4, end_step=16), abs=1e-12)
        assert event["regrown"] > 0
    # the schedule: density 0.7 -> 0.2, the momentum encoder at +0.3 density, both exact (global thresholds)
    assert pruner.achieved_sparsity(model) == round(0.8 * total) / total
    assert pruner.target_achieved_sparsity(model) == round(0.5 * total) / total
    for online, target in zip(pruner.events[1:], pruner.target_events[1:]):
        assert target["target"] == pytest.approx(max(0.0, online["target"] - 0.3), abs=1e-12)
    assert probe.checked > 0  # masked target weights exactly zero before every forward, after every EMA
    summary = pruner.run_summary(trainer, model)
    assert summary["pruning_revival"] is True and summary["pruning_initial_mask"] == "erk"
    assert summary["final_oscillation"] > 0 and summary["target_encoder_final_oscillation"] >= 0
    assert summary["regrown_total"] == sum(e["regrown"] for e in pruner.regrow_events)


def test_revival_is_what_lets_pruned_weights_come_back(tmp_path: Path) -> None:
    counts = {}
    for revival in (False, True):
        pruner = Recording(**{**RECIPE, "revival": revival, "regrow_fraction": 0.0})
        fit(pruner)
        counts[revival] = sum(int((r["masks_after"][k] & ~r["masks_before"][k]).sum())
                              for r in pruner.record[1:] for k in r["masks_after"])  # fmt: skip
    assert counts[False] == 0 and counts[True] > 0, counts


def test_the_recipe_config_runs_through_the_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_cli("fit", "--config", str(REPO / "configs/experiments/byol_synccp.yaml"), *TINY,
                   "--pruning.init_args.begin_step", "2", "--pruning.init_args.end_step", "4", "--pruning.init_args.frequency", "1",
                   "--run.wandb_mode", "disabled", "--run.dir", str(run), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_run_json(run)
    assert summary["status"] == "complete" and summary["pruning"] == "synccp" and summary["pruning_revival"] is True
    assert summary["target_sparsity"] == 0.8 and math.isclose(summary["target_encoder_target_sparsity"], 0.5)
    assert "final_oscillation" in summary and "target_encoder_final_oscillation" in summary
