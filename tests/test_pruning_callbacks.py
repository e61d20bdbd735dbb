"""Pruning callbacks in real (tiny) Lightning fits on CPU.

A 2-conv + linear encoder and a linear classifier implementing the module protocol
(``prunable_parameters``, ``finetune_epochs``, ``phase``) train on fixed random data without
shuffling, so two fits with the same seed are bit-identical and a resumed fit can be compared with
an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from callbacks.pruning import GradualMagnitudePruning, OneShotPruning, cubic_sparsity, sparsity_of
from common.errors import ConfigError
from sparsity.schedules import event_steps

REPO = Path(__file__).resolve().parents[1]
N_SAMPLES, BATCH = 64, 8  # 8 batches per epoch


class RandomImages(Dataset):
    """Fixed random 3x8x8 images with 4 classes, as the project's batch dicts."""

    def __init__(self, n: int = N_SAMPLES, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 8, 8, generator=g)
        self.labels = torch.randint(0, 4, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"index": torch.tensor(i), "label": self.labels[i], "image": self.images[i]}


def loader() -> DataLoader:
    return DataLoader(RandomImages(), batch_size=BATCH, shuffle=False)


class TinyNet(pl.LightningModule):
    """conv(3->8, bias) BN ReLU conv(8->16) BN ReLU pool fc(16->16) | classifier(16->4)."""

    def __init__(self, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 5e-3, prunable: bool = True) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 8, 3, padding=1, bias=True),
                bn1=nn.BatchNorm2d(8),
                relu1=nn.ReLU(),
                conv2=nn.Conv2d(8, 16, 3, padding=1, bias=False),
                bn2=nn.BatchNorm2d(16),
                relu2=nn.ReLU(),
                pool=nn.AdaptiveAvgPool2d(1),
                flat=nn.Flatten(),
                fc=nn.Linear(16, 16),
            )
        )
        self.classifier = nn.Linear(16, 4)
        self.finetune_epochs = 0
        self.lr, self.momentum, self.weight_decay, self._prunable = lr, momentum, weight_decay, prunable
        self.phases: list[str] = []

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def classify(self, x: Tensor) -> Tensor:
        return self.classifier(self.encode(x))

    def probe_features(self, x: Tensor) -> list[Tensor]:
        return [self.encode(x)]

    def prunable_parameters(self) -> dict[str, nn.Parameter]:
        if not self._prunable:
            return {}
        return {
            f"encoder.{name}.weight": mod.weight
            for name, mod in self.encoder.named_modules()
            if isinstance(mod, (nn.Conv2d, nn.Linear))
        }

    @property
    def phase(self) -> str:
        if self.finetune_epochs and self.current_epoch >= self.trainer.max_epochs - self.finetune_epochs:
            return "finetune"
        return "supervised"

    def on_train_epoch_start(self) -> None:
        self.phases.append(self.phase)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return F.cross_entropy(self.classify(batch["image"]), batch["label"])

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)}


PRUNABLE = ["encoder.conv1.weight", "encoder.conv2.weight", "encoder.fc.weight"]


def prunable_weights(model: TinyNet) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in model.prunable_parameters().items()}


class Probe(pl.Callback):
    """Runs after the pruning callback: records masks/sparsity per optimiser step and checks that
    masked gradients are zero before each step and masked weights are exactly zero after it."""

    def __init__(self, pruner: Any) -> None:
        self.pruner = pruner
        self.rows: list[tuple[int, float, dict[str, Tensor]]] = []
        self.grad_checks = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        for name, p in pl_module.prunable_parameters().items():
            if name in self.pruner.masks and p.grad is not None:
                assert (p.grad[~self.pruner.masks[name]] == 0).all(), f"{name}: gradient of a pruned weight"
                self.grad_checks += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        weights = prunable_weights(pl_module)
        for name, mask in self.pruner.masks.items():
            assert (weights[name][~mask] == 0).all(), f"step {trainer.global_step}: {name} has a pruned weight != 0"
        masks = {k: v.clone() for k, v in self.pruner.masks.items()}
        if trainer.global_step != (self.rows[-1][0] if self.rows else 0):  # one row per optimiser step
            self.rows.append((trainer.global_step, sparsity_of(weights), masks))


class StopAfterEpoch(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def make_trainer(tmp: Path, callbacks: list, max_epochs: int, **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("enable_checkpointing", False)
    kwargs.setdefault("logger", False)
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=max_epochs, callbacks=callbacks, default_root_dir=tmp,
        enable_progress_bar=False, enable_model_summary=False, deterministic=True, **kwargs,
    )


def fit(tmp: Path, pruner: Any, max_epochs: int, seed: int = 0, **kwargs: Any) -> tuple[TinyNet, pl.Trainer, Probe]:
    pl.seed_everything(seed, verbose=False)
    model = TinyNet()
    probe = Probe(pruner)
    ckpt_path = kwargs.pop("ckpt_path", None)
    trainer = make_trainer(tmp, [pruner, probe, *kwargs.pop("callbacks", [])], max_epochs, **kwargs)
    trainer.fit(model, train_dataloaders=loader(), ckpt_path=ckpt_path)
    return model, trainer, probe


GMP = dict(final_sparsity=0.8, begin_step=4, end_step=30, frequency=5)  # 8 steps/epoch, 5 epochs = 40 steps


def _gmp_formula(step: int) -> float:
    return cubic_sparsity(step, initial=0.0, final=0.8, begin_step=4, end_step=30, frequency=5)


# --------------------------------------------------------------------------------------------------
def test_gmp_events_exact_zeros_and_table(tmp_path: Path) -> None:
    pruner = GradualMagnitudePruning(**GMP)
    model, trainer, probe = fit(tmp_path, pruner, max_epochs=5, logger=CSVLogger(tmp_path))
    total = sum(p.numel() for p in model.prunable_parameters().values())
    events = event_steps(begin_step=4, end_step=30, frequency=5)
    assert [e["step"] for e in pruner.events] == events == [4, 9, 14, 19, 24, 29, 30]
    print(f"\nGMP event table (final 0.8, begin 4, end 30, every 5; total prunable weights {total})")
    print(f"{'step':>5} {'formula':>9} {'measured':>9}")
    for e in pruner.events:
        formula = cubic_sparsity(e["step"], initial=0.0, final=0.8, begin_step=4, end_step=30, frequency=5)
        print(f"{e['step']:>5} {formula:>9.4f} {e['measured']:>9.4f}")
        assert e["target"] == formula
        assert e["measured"] == round(formula * total) / total
    # every optimiser step: measured sparsity is the schedule's, masks change only at events
    assert [r[0] for r in probe.rows] == list(range(1, 41))
    for step, measured, _ in probe.rows:
        formula = cubic_sparsity(step, initial=0.0, final=0.8, begin_step=4, end_step=30, frequency=5)
        assert measured == round(formula * total) / total, step
    for (_, _, before), (step, _, after) in zip(probe.rows, probe.rows[1:]):
        changed = set(before) != set(after) or any(not torch.equal(before[k], after[k]) for k in after)
        zeros_grew = round(_gmp_formula(step) * total) > round(_gmp_formula(step - 1) * total)
        assert changed == (step in events and (zeros_grew or not before)), step
    assert probe.grad_checks > 0
    assert pruner.achieved_sparsity(model) == round(0.8 * total) / total
    summary = pruner.run_summary(trainer, model)
    assert summary["pruning"] == "gmp" and summary["target_sparsity"] == 0.8
    assert summary["achieved_sparsity"] == pytest.approx(0.8, abs=1 / total)
    # the logger got sparsity/global at every event, and per-layer sparsity
    trainer.logger.save()
    csv = (Path(trainer.logger.log_dir) / "metrics.csv").read_text().splitlines()
    header = csv[0].split(",")
    assert "sparsity/global" in header and "sparsity/encoder.conv2.weight" in header
    col = header.index("sparsity/global")
    logged = [float(r.split(",")[col]) for r in csv[1:] if r.split(",")[col]]
    assert logged == [e["measured"] for e in pruner.events]


def test_only_prunable_tensors_gain_zeros(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    before = {k: v.clone() for k, v in TinyNet().state_dict().items()}
    model, _, _ = fit(tmp_path, GradualMagnitudePruning(**GMP), max_epochs=5)
    after = model.state_dict()
    assert set(after) == set(before)
    gained = sorted(k for k in after if int((after[k] == 0).sum()) > int((before[k] == 0).sum()))
    assert gained == PRUNABLE  # never BN, biases or the classifier


def _stop_and_resume(tmp_path: Path, make_pruner, max_epochs: int, stop_epoch: int) -> tuple[TinyNet, Any, Path]:
    """Fit until ``stop_epoch`` (checkpoint saved), then resume a fresh model+callback to the end."""
    first = make_pruner()
    ckpt_cb = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=-1, every_n_epochs=1)
    fit(tmp_path / "a", first, max_epochs, enable_checkpointing=True, callbacks=[ckpt_cb, StopAfterEpoch(stop_epoch)])
    last = tmp_path / "ckpt" / "last.ckpt"
    second = make_pruner()
    model, trainer, _ = fit(tmp_path / "b", second, max_epochs, seed=123, ckpt_path=last)
    assert trainer.current_epoch == max_epochs
    return model, second, last


def test_gmp_resume_mid_schedule_matches_uninterrupted(tmp_path: Path) -> None:
    full_pruner = GradualMagnitudePruning(**GMP)
    full, _, _ = fit(tmp_path / "full", full_pruner, max_epochs=5)
    resumed, pruner, last = _stop_and_resume(tmp_path, lambda: GradualMagnitudePruning(**GMP), 5, stop_epoch=1)

    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 16 and 4 < 16 < 30, "the checkpoint is mid-schedule"
    for name in PRUNABLE:
        assert torch.equal(pruner.masks[name], full_pruner.masks[name]), name
    assert pruner.achieved_sparsity(resumed) == full_pruner.achieved_sparsity(full)
    for name, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name  # same zero pattern and same weights
    assert [e["step"] for e in pruner.events] == [e["step"] for e in full_pruner.events]
    print(
        f"\nresume: stopped at step {ckpt['global_step']} (sparsity {sparsity_of({k: ckpt['state_dict'][k] for k in PRUNABLE}):.4f}), "
        f"resumed to step 40: masks, weights and sparsity {pruner.achieved_sparsity(resumed):.4f} identical to the uninterrupted run"
    )


def test_checkpoint_loads_into_plain_model_and_sparsity_from_torch_load(tmp_path: Path) -> None:
    ckpt_cb = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    pruner = GradualMagnitudePruning(**GMP)
    model, _, _ = fit(tmp_path, pruner, max_epochs=5, enable_checkpointing=True, callbacks=[ckpt_cb])
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    plain = TinyNet()
    assert set(ckpt["state_dict"]) == set(plain.state_dict())  # no weight_orig / weight_mask
    plain.load_state_dict(ckpt["state_dict"], strict=True)
    state = ckpt["callbacks"]["GradualMagnitudePruning"]
    names = sorted(state["masks"])
    assert names == PRUNABLE
    zeros = sum(int((ckpt["state_dict"][k] == 0).sum()) for k in names)
    size = sum(ckpt["state_dict"][k].numel() for k in names)
    assert zeros / size == pruner.achieved_sparsity(model) == state["events"][-1]["measured"]
    for k in names:
        assert torch.equal(ckpt["state_dict"][k] == 0, ~state["masks"][k])
    assert sparsity_of({k: p.detach() for k, p in plain.prunable_parameters().items()}) == zeros / size


# --------------------------------------------------------------------------------------------------
def test_oneshot_prunes_once_then_finetunes(tmp_path: Path) -> None:
    pruner = OneShotPruning(final_sparsity=0.7, finetune_epochs=2, finetune_lr=0.01)
    snapshots: dict[int, dict[str, Tensor]] = {}

    class Snap(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            snapshots[trainer.current_epoch] = copy.deepcopy(pl_module.state_dict())
            if trainer.current_epoch >= 2:
                opt = trainer.optimizers[0]
                assert isinstance(opt, torch.optim.SGD) and trainer.lr_scheduler_configs == []
                group = opt.param_groups[0]
                # the authors' fine-tune: Nesterov SGD with momentum 0.9 and no weight decay
                assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.01, 0.9, True, 0.0)

    model, trainer, probe = fit(tmp_path, pruner, max_epochs=4, callbacks=[Snap()])
    total = sum(p.numel() for p in model.prunable_parameters().values())
    assert model.finetune_epochs == 2 and model.phases == ["supervised", "supervised", "finetune", "finetune"]
    assert len(pruner.events) == 1 and pruner.events[0]["step"] == 16  # start of epoch 2
    sparsities = [r[1] for r in probe.rows]
    assert all(s == 0.0 for s in sparsities[:16])
    assert all(s == round(0.7 * total) / total for s in sparsities[16:])
    masks_after = [r[2] for r in probe.rows[16:]]
    assert all(all(torch.equal(m[k], masks_after[0][k]) for k in PRUNABLE) for m in masks_after)
    # fine-tuning moved the surviving weights and the classifier
    for k in PRUNABLE + ["classifier.weight"]:
        assert not torch.equal(snapshots[2][k], snapshots[3][k]), k
    summary = pruner.run_summary(trainer, model)
    assert (summary["pruning"], summary["target_sparsity"]) == ("oneshot", 0.7)
    assert summary["achieved_sparsity"] == round(0.7 * total) / total


def test_oneshot_resume_inside_finetune_phase(tmp_path: Path) -> None:
    make = lambda: OneShotPruning(final_sparsity=0.7, finetune_epochs=2, finetune_lr=0.01)  # noqa: E731
    full_pruner = make()
    full, _, _ = fit(tmp_path / "full", full_pruner, max_epochs=4)
    resumed, pruner, _ = _stop_and_resume(tmp_path, make, 4, stop_epoch=2)  # stop after the first finetune epoch
    assert len(pruner.events) == 1  # restored, not pruned a second time
    for name, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


# --------------------------------------------------------------------------------------------------
def test_the_shipped_delta_gmp_config_is_a_delta_gmp_population_not_gmp() -> None:
    """supcon_delta_gmp.yaml gives its schedule in steps (the authors' --begin_step 2440), so only its
    ``schedule`` names it: without it run.json said ``gmp`` and analyze pooled ΔGMP with GMP."""
    import yaml

    init = yaml.safe_load((REPO / "configs/experiments/supcon_delta_gmp.yaml").read_text())["pruning"]["init_args"]
    assert GradualMagnitudePruning(**init).schedule_name == "delta_gmp"
    gmp = yaml.safe_load((REPO / "configs/experiments/supcon_gmp.yaml").read_text())["pruning"]["init_args"]
    assert GradualMagnitudePruning(**gmp).schedule_name == "gmp"
    assert GradualMagnitudePruning(final_sparsity=0.5, begin_step=0, end_step=4, frequency=2, begin_epoch=3).schedule_name == "delta_gmp"
    with pytest.raises(ConfigError, match=r"^pruning.schedule='later' is not allowed; choose one of 'gmp', 'delta_gmp'$"):
        GradualMagnitudePruning(final_sparsity=0.5, begin_step=0, end_step=4, frequency=2, schedule="later")


# --------------------------------------------------------------------------------------------------
def test_delta_gmp_begin_epoch_with_gradient_accumulation(tmp_path: Path) -> None:
    # 8 batches, accumulate 3 -> Lightning steps after batches 3, 6 and 8: 3 optimiser steps/epoch
    pruner = GradualMagnitudePruning(final_sparsity=0.6, begin_step=0, end_step=6, frequency=2, begin_epoch=2)
    model, trainer, probe = fit(tmp_path, pruner, max_epochs=6, accumulate_grad_batches=3)
    assert trainer.global_step == 18
    assert (pruner.schedule_begin, pruner.schedule_end) == (6, 12)
    assert pruner.schedule_name == "delta_gmp"
    assert [e["step"] for e in pruner.events] == [6, 8, 10, 12]
    total = sum(p.numel() for p in model.prunable_parameters().values())
    for e in pruner.events:
        formula = cubic_sparsity(e["step"], initial=0.0, final=0.6, begin_step=6, end_step=12, frequency=2)
        assert e["measured"] == round(formula * total) / total
    assert [r[0] for r in probe.rows] == list(range(1, 19))  # one record per optimiser step


@pytest.mark.parametrize(
    ("kwargs", "check"),
    [
        ({"scope": "layerwise"}, "layerwise"),
        ({"granularity": "nm", "final_sparsity": 0.5, "nm_indivisible": "skip"}, "nm"),
        ({"granularity": "channel", "scope": "layerwise", "final_sparsity": 0.5, "norm": 2}, "channel"),
        ({"min_layer_density": 0.1, "final_sparsity": 0.85}, "density"),
    ],
)
def test_gmp_variants(tmp_path: Path, kwargs: dict, check: str) -> None:
    args = {**GMP, "begin_step": 2, "end_step": 10, "frequency": 4, **kwargs}
    pruner = GradualMagnitudePruning(**args)
    model, _, _ = fit(tmp_path, pruner, max_epochs=2)
    w = prunable_weights(model)
    s = args["final_sparsity"]
    if check == "layerwise":
        for k, t in w.items():
            assert int((t == 0).sum()) == round(s * t.numel()), k
    elif check == "nm":
        assert "encoder.conv1.weight" not in pruner.masks  # 3 input channels: left dense
        for k in ("encoder.conv2.weight", "encoder.fc.weight"):
            groups = (w[k] != 0).movedim(1, -1).reshape(-1, 4)
            assert (groups.sum(dim=1) == 2).all(), k
    elif check == "channel":
        for k, t in w.items():
            alive = t.reshape(t.shape[0], -1).ne(0).any(dim=1)
            assert int((~alive).sum()) == round(s * t.shape[0]), k
            assert torch.equal(pruner.masks[k].reshape(t.shape[0], -1).all(dim=1), alive)
    else:
        for k, t in w.items():
            assert int((t != 0).sum()) >= 0.1 * t.numel(), k


def test_wandb_table_only_with_wandb_logger() -> None:
    logged: list[tuple[str, Any]] = []

    class FakeWandb(WandbLogger):
        def __init__(self) -> None:  # no wandb run: only the calls are recorded
            pass

        def log_metrics(self, metrics, step=None) -> None:
            logged.append(("metrics", dict(metrics)))

        def log_table(self, key, columns=None, data=None, dataframe=None, step=None) -> None:
            logged.append((key, (columns, data)))

    pruner = GradualMagnitudePruning(**GMP)
    weights = {"a.weight": torch.tensor([0.0, 1.0, 0.0, 2.0])}
    pruner._log(SimpleNamespace(loggers=[FakeWandb()], global_step=7), weights, 0.5, 0.5)
    assert logged[0] == ("metrics", {"sparsity/global": 0.5, "sparsity/target": 0.5, "sparsity/a.weight": 0.5})
    assert logged[1] == ("pruning/layers", (["step", "layer", "numel", "target", "sparsity"], [[7, "a.weight", 4, 0.5, 0.5]]))
    pruner._log(SimpleNamespace(loggers=[], global_step=7), weights, 0.5, 0.5)  # no logger: nothing fails


# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: GradualMagnitudePruning(1.0, 0, 10, 1), "final_sparsity=1.0 is out of range; it must be in [0, 1)"),
        (lambda: GradualMagnitudePruning(-0.1, 0, 10, 1), "final_sparsity=-0.1 is out of range; it must be in [0, 1)"),
        (
            lambda: GradualMagnitudePruning(0.5, 10, 10, 1),
            "begin_step=10 must be smaller than end_step=10; begin_step must be in [0, 10)",
        ),
        (lambda: GradualMagnitudePruning(0.5, 0, 10, 0), "frequency=0 is out of range; it must be in [1, inf) optimiser steps"),
        (
            lambda: GradualMagnitudePruning(0.5, 0, 10, 1, granularity="nm", n=5, m=4),
            "n=5 is out of range; it must be in [1, 4]",
        ),
        (
            lambda: GradualMagnitudePruning(0.3, 0, 10, 1, initial_sparsity=0.5),
            "final_sparsity=0.3 is below initial_sparsity=0.5; it must be in [0.5, 1)",
        ),
        (
            lambda: GradualMagnitudePruning(0.5, 0, 10, 1, scope="local"),
            "scope='local' is not allowed; choose one of 'global', 'layerwise'",
        ),
        (
            lambda: GradualMagnitudePruning(0.5, 0, 10, 1, granularity="blocks"),
            "granularity='blocks' is not allowed; choose one of 'unstructured', 'nm', 'channel'",
        ),
        (lambda: GradualMagnitudePruning(0.5, 0, 10, 1, begin_epoch=-1), "begin_epoch=-1 is out of range; it must be in [0, inf)"),
        (lambda: OneShotPruning(1.5), "final_sparsity=1.5 is out of range; it must be in [0, 1)"),
        (lambda: OneShotPruning(0.5, finetune_epochs=0), "finetune_epochs=0 is out of range; it must be in [1, inf)"),
        (lambda: OneShotPruning(0.5, finetune_lr=0.0), "finetune_lr=0.0 is out of range; it must be in (0, inf)"),
    ],
)
def test_bad_arguments_fail_in_init(make, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("pruner", "model_kwargs", "message"),
    [
        (
            lambda: OneShotPruning(0.5, finetune_epochs=3),
            {},
            "finetune_epochs=3 is out of range for trainer.max_epochs=3; it must be in [1, 2] "
            "(or give pruning.init_args.parent to fine-tune a trained dense run)",
        ),
        (
            lambda: GradualMagnitudePruning(0.5, 0, 10, 1),
            {"prunable": False},
            "TinyNet.prunable_parameters() is empty; GradualMagnitudePruning needs at least one Conv2d/Linear weight to prune",
        ),
        (
            lambda: GradualMagnitudePruning(0.5, 0, 10, 1, granularity="nm", n=2, m=4),
            {},
            "m=4 does not divide the input channels of encoder.conv1.weight (3); choose an m that divides them "
            "or set nm_indivisible='skip' to leave such weights dense",
        ),
    ],
)
def test_bad_setup_fails_before_training(tmp_path: Path, pruner, model_kwargs: dict, message: str) -> None:
    model = TinyNet(**model_kwargs)
    trainer = make_trainer(tmp_path, [pruner()], max_epochs=3)
    with pytest.raises(ConfigError) as err:
        trainer.fit(model, train_dataloaders=loader())
    assert str(err.value) == message
    assert trainer.global_step == 0


# --------------------------------------------------------------------------------------------------
DDP_SCRIPT = """
import hashlib, json, os, sys
sys.path[:0] = [{repo!r}, {tests!r}]
import torch, lightning.pytorch as pl
from test_pruning_callbacks import TinyNet, loader, GMP
from callbacks.pruning import GradualMagnitudePruning

class Skew(pl.Callback):
    # on rank 1 only, perturb the weights just before the pruner looks at them at an event, so the
    # locally computed masks differ: the broadcast must still leave identical masks everywhere
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_rank == 1 and trainer.global_step == 19:
            with torch.no_grad():
                for p in pl_module.prunable_parameters().values():
                    p.add_(torch.randn_like(p))

pl.seed_everything(0, verbose=False)
pruner = GradualMagnitudePruning(**GMP)  # each rank sees 4 batches per epoch: 10 epochs = 40 steps
trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=10, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[Skew(), pruner])
trainer.fit(TinyNet(), train_dataloaders=loader())
digest = hashlib.sha256(b"".join(pruner.masks[k].cpu().numpy().tobytes() for k in sorted(pruner.masks))).hexdigest()
with open(os.path.join({out!r}, f"rank{{trainer.global_rank}}.json"), "w") as fh:
    json.dump({{"hash": digest, "events": [e["step"] for e in pruner.events],
               "measured": pruner.events[-1]["measured"]}}, fh)
"""


@pytest.mark.ddp
def test_ddp_two_ranks_have_identical_masks(tmp_path: Path) -> None:
    script = tmp_path / "ddp_prune.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT.format(repo=str(REPO), tests=str(REPO / "tests"), out=str(tmp_path))))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["hash"] == ranks[1]["hash"]
    assert ranks[0]["events"] == ranks[1]["events"] == [4, 9, 14, 19, 24, 29, 30]
    assert "computed different masks" in proc.stderr  # rank 1 noticed and took rank 0's masks
    print(f"\nDDP mask hash, both ranks: {ranks[0]['hash'][:16]}..., final sparsity {ranks[0]['measured']:.4f}")



def _fake_trainer() -> SimpleNamespace:
    return SimpleNamespace(global_step=0, world_size=1, optimizers=[], loggers=[])


def test_warning_when_a_layer_ends_up_empty_and_min_layer_density_prevents_it() -> None:
    model = TinyNet()
    with torch.no_grad():
        model.encoder.conv1.weight.mul_(1e-4)  # the smallest weights of all: global pruning empties the layer
    pruner = GradualMagnitudePruning(**GMP)
    with pytest.warns(UserWarning, match=r"left no weights in encoder\.conv1\.weight; set min_layer_density > 0"):
        pruner.update_masks(_fake_trainer(), model, 0.8)
    guarded = GradualMagnitudePruning(**GMP, min_layer_density=0.05)
    fresh = TinyNet()
    with torch.no_grad():
        fresh.encoder.conv1.weight.mul_(1e-4)
    guarded.update_masks(_fake_trainer(), fresh, 0.8)
    assert int(guarded.masks["encoder.conv1.weight"].sum()) == 11  # ceil(0.05 * 216)
    total = sum(p.numel() for p in fresh.prunable_parameters().values())
    assert guarded.achieved_sparsity(fresh) == round(0.8 * total) / total
