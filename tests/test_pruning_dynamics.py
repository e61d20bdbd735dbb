"""Mask dynamics (sparsity/dynamics.py): oscillation under GMP and prune-and-regrow, drop-and-regrow
against NumPy, the FLOPs of convolutions and the training-cost meter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from ssl_helpers import make_trainer, tiny_byol, wrn10_1_forward_flops
from test_pruning_callbacks import GMP, TinyNet, loader
from torch import Tensor

from callbacks.pruning import GradualMagnitudePruning, PruneAndRegrow, sparsity_of
from sparsity.dynamics import (
    TrainingCostMeter,
    drop_and_regrow,
    layer_flops_per_sample,
    mask_change,
    measure_layer_flops,
)


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
