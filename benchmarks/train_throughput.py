"""Training throughput: the LightningModules vs a hand-written PyTorch loop, side by side.

For Sup (cross-entropy) and SupCon (two views, SupCon loss + online probe) on WRN-16-2, at each
batch size and with channels_last off/on, both paths train the *same* architecture with the same
optimiser (SGD, momentum 0.9, weight decay 5e-4) on the same in-memory synthetic batch:

* ``lightning``: ``Trainer.fit`` of ``SupervisedClassifier`` / ``SupConModel`` (logger and
  checkpointing off, no validation) — every Lightning hook, the module's own ``training_step``
  with its torchmetrics updates and ``self.log`` calls, and its LR scheduler;
* ``plain``: ``zero_grad → forward → loss → backward → step → scheduler.step`` written out.

The two paths alternate (``--repeats`` rounds) so machine noise hits both alike; each step is timed
and the median step time over all rounds gives images/s (robust to bursts from other processes). The last line is ``ratio_lightning_vs_plain=<geometric mean>``.

    python benchmarks/train_throughput.py [--batch-sizes 128 256] [--steps 6] [--device cuda --bf16]

``--end-to-end``: the real data path instead. For each method, batch size and augmentation path
(``loader``: torchvision per sample in loader workers; ``device``: the uint8 set on the device,
batched augmentation after transfer) a ``Trainer.fit`` on a real DataModule (default the embedded
Fashion-MNIST subset, real augmentation: supervised crop + flips for Sup, two contrastive views for
SupCon), and, alternating with it, the step-only rate of the same module and batch size on one
pre-made batch (the compute limit). Prints images/s of both and their ratio per row; the last line is
``ratio_end_to_end_vs_step_only=device:<worst row> loader:<worst row>`` (target on CPU: >= 0.9).

    python benchmarks/train_throughput.py --end-to-end [--paths loader device] [--data configs/data/fashion_mnist_mini.yaml]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lightning_modules import SupConModel, SupervisedClassifier  # noqa: E402
from lightning_modules.losses import supcon_loss  # noqa: E402


class RepeatBatch:
    """An iterable yielding the same pre-made batch ``n`` times (no data-loading cost in either path)."""

    def __init__(self, batch: dict, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self):
        return (self.batch for _ in range(self.n))

    def __len__(self) -> int:
        return self.n


class StepTimer(pl.Callback):
    """Wall time between consecutive ``on_train_batch_end`` calls = one full Lightning step."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())


def make_batch(method: str, batch_size: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    batch = {"index": torch.arange(batch_size), "label": torch.randint(0, 10, (batch_size,), generator=g)}
    if method == "sup":
        batch["image"] = torch.randn(batch_size, 3, 32, 32, generator=g)
    else:
        batch["views"] = [torch.randn(batch_size, 3, 32, 32, generator=g) for _ in range(2)]
    return {k: ([t.to(device) for t in v] if isinstance(v, list) else v.to(device)) for k, v in batch.items()}


def make_module(method: str, channels_last: bool) -> pl.LightningModule:
    torch.manual_seed(0)
    if method == "sup":
        return SupervisedClassifier(lr=0.1, channels_last=channels_last)
    return SupConModel(head_epochs=1, channels_last=channels_last)


def lightning_step_times(method: str, batch: dict, steps: int, warmup: int, args: argparse.Namespace) -> list[float]:
    """Seconds per optimiser step through ``Trainer.fit`` (after ``warmup`` steps)."""
    module = make_module(method, args.channels_last)
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator=args.device, devices=1, max_epochs=1000, max_steps=warmup + steps, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
        precision="bf16-mixed" if args.bf16 else "32-true",
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=RepeatBatch(batch, warmup + steps + 1))
    stamps = timer.stamps[warmup:]
    return [b - a for a, b in zip(stamps, stamps[1:])]


def plain_step_times(method: str, batch: dict, steps: int, warmup: int, args: argparse.Namespace) -> list[float]:
    """Seconds per optimiser step of the same model/optimiser/loss written as a bare loop."""
    module = make_module(method, args.channels_last).to(args.device)
    module.train()
    encoder, classifier = module.encoder, module.classifier
    cl = torch.channels_last if args.channels_last else torch.contiguous_format
    if method == "sup":
        params = list(module.parameters())
        optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[5, 30, 50, 80], gamma=0.1)
    else:
        projector, probe = module.projector, module.probe
        optimizer = torch.optim.SGD(
            [{"params": list(encoder.parameters()) + list(projector.parameters()), "weight_decay": 5e-4},
             {"params": probe.parameters(), "lr": 0.1, "weight_decay": 0.0}],
            lr=0.05, momentum=0.9,
        )  # fmt: skip
        total = warmup + steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / total))).item())
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16)
    labels = batch["label"]
    stamps: list[float] = []
    for _ in range(warmup + steps + 1):
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            if method == "sup":
                loss = F.cross_entropy(classifier(encoder(batch["image"].contiguous(memory_format=cl))), labels)
            else:
                h = encoder(torch.cat(batch["views"]).contiguous(memory_format=cl))
                z = F.normalize(projector(h), dim=1)
                feats = torch.stack(z.chunk(2), dim=1)
                loss = supcon_loss(feats.float(), labels, temperature=0.5, base_temperature=0.07)
                loss = loss + F.cross_entropy(probe(h[: len(labels)].detach()), labels)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if args.device == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
    stamps = stamps[warmup:]
    return [b - a for a, b in zip(stamps, stamps[1:])]


class FirstBatches:
    """The first batch of a real loader, repeated (same shapes and augmentation as the real path)."""

    def __init__(self, batch: dict, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self):
        return (self.batch for _ in range(self.n))

    def __len__(self) -> int:
        return self.n


def make_datamodule(method: str, batch_size: int, path: str, args: argparse.Namespace) -> pl.LightningDataModule:
    import yaml

    import datamodules
    from datamodules import FashionMNISTMiniDataModule  # noqa: F401 - the default fragment's class

    spec = yaml.safe_load(Path(args.data).read_text())
    cls = getattr(datamodules, spec["class_path"].rsplit(".", 1)[-1])
    init = {**spec.get("init_args", {}), "batch_size": batch_size, "augment_on": path}
    if method == "supcon":
        init.update(views=2, augmentation="contrastive")
    if args.workers is not None:
        init["num_workers"] = args.workers
    return cls(**init)


def end_to_end_step_times(method: str, batch_size: int, path: str, steps: int, warmup: int, args: argparse.Namespace) -> list[float]:
    """Seconds per optimiser step of ``Trainer.fit`` on the real DataModule (loading and augmentation included)."""
    module = make_module(method, args.channels_last)
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator=args.device, devices=1, max_epochs=1000, max_steps=warmup + steps, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
        precision="bf16-mixed" if args.bf16 else "32-true",
    )  # fmt: skip
    trainer.fit(module, datamodule=make_datamodule(method, batch_size, path, args))
    stamps = timer.stamps[warmup:]
    return [b - a for a, b in zip(stamps, stamps[1:])]


def step_only_times(method: str, batch_size: int, steps: int, warmup: int, args: argparse.Namespace) -> list[float]:
    """The same module on one real (augmented) batch repeated: the compute limit of the row."""
    dm = make_datamodule(method, batch_size, "loader", args)
    dm.setup("fit")
    batch = next(iter(dm.train_loader(dm.default_spec())))
    batch = {k: ([t.to(args.device) for t in v] if isinstance(v, list) else v.to(args.device)) for k, v in batch.items()}
    return lightning_step_times(method, batch, steps, warmup, args)


def end_to_end(args: argparse.Namespace) -> None:
    print(f"end to end on {args.data}: device={args.device} threads={torch.get_num_threads()} channels_last={args.channels_last[0]}")
    print(f"{'method':<7} {'batch':>5} {'path':>7} {'end-to-end img/s':>17} {'step-only img/s':>16} {'ratio':>6}")
    ratios = []
    for method in args.methods:
        for bs in args.batch_sizes:
            for path in args.paths:
                run_args = argparse.Namespace(**{**vars(args), "channels_last": args.channels_last[0] == "on"})
                e2e: list[float] = []
                only: list[float] = []
                for _ in range(args.repeats):
                    e2e += end_to_end_step_times(method, bs, path, args.steps, args.warmup, run_args)
                    only += step_only_times(method, bs, args.steps, args.warmup, run_args)
                em, om = bs / statistics.median(e2e), bs / statistics.median(only)
                ratios.append((path, em / om))
                print(f"{method:<7} {bs:>5} {path:>7} {em:>17.1f} {om:>16.1f} {em / om:>6.3f}", flush=True)
    worst = {path: min(r for p, r in ratios if p == path) for path in args.paths}
    print("ratio_end_to_end_vs_step_only=" + " ".join(f"{path}:{value:.3f}" for path, value in worst.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["sup", "supcon"], choices=["sup", "supcon"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--channels-last", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--steps", type=int, default=6, help="timed optimiser steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating Lightning/plain rounds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--end-to-end", action="store_true", help="real DataModule and augmentation vs step-only")
    parser.add_argument("--paths", nargs="+", default=["loader", "device"], choices=["loader", "device"])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "configs/data/fashion_mnist_mini.yaml"))
    parser.add_argument("--workers", type=int, default=None, help="loader workers of the loader path (default: cores - 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.end_to_end:
        if args.channels_last == ["off", "on"]:
            args.channels_last = ["on"]
        end_to_end(args)
        return
    print(f"device={args.device} threads={torch.get_num_threads()} bf16={args.bf16} torch={torch.__version__}")
    print(f"{'method':<7} {'batch':>5} {'ch_last':>7} {'lightning img/s':>16} {'plain img/s':>12} {'ratio':>6}")
    ratios = []
    for method in args.methods:
        for bs in args.batch_sizes:
            for cl in args.channels_last:
                run_args = argparse.Namespace(**{**vars(args), "channels_last": cl == "on"})
                batch = make_batch(method, bs, args.device)
                light: list[float] = []
                plain: list[float] = []
                for _ in range(args.repeats):
                    light += lightning_step_times(method, batch, args.steps, args.warmup, run_args)
                    plain += plain_step_times(method, batch, args.steps, args.warmup, run_args)
                lm, pm = bs / statistics.median(light), bs / statistics.median(plain)
                ratios.append(lm / pm)
                print(f"{method:<7} {bs:>5} {cl:>7} {lm:>16.1f} {pm:>12.1f} {lm / pm:>6.3f}", flush=True)
    geo = float(torch.tensor(ratios).log().mean().exp())
    print(f"ratio_lightning_vs_plain={geo:.3f}")


if __name__ == "__main__":
    main()
