"""SDCLR (lightning_modules/sdclr.py): the pruned branch's sparsity, its own BatchNorm and the detached gradients."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from ssl_helpers import WRN_SMALL, make_trainer, tiny_data
from torch import Tensor

from callbacks.pruning import sparsity_of
from lightning_modules import SDCLRModel
from lightning_modules.losses import supcon_loss


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
    model.trainer = None  # call pretrain_step outside a fit (log_train only keeps the value)
    model.train()
    g = torch.Generator().manual_seed(3)
    views = [torch.randn(8, 3, 32, 32, generator=g), torch.randn(8, 3, 32, 32, generator=g)]
    batch = {"views": views, "label": torch.zeros(8, dtype=torch.long)}
    params = model.prunable_parameters()

    def grads_of(loss: Tensor) -> dict[str, Tensor]:
        model.zero_grad()
        loss.backward()
        return {k: p.grad.clone() for k, p in params.items()}

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
