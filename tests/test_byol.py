"""BYOL (lightning_modules/byol.py): the momentum update by parameter name against a hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from ssl_helpers import STEPS_PER_EPOCH, make_trainer, tiny_byol, tiny_data
from torch import Tensor

from lightning_modules.byol import momentum_tau


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
