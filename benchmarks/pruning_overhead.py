"""What pruning costs during training: GMP at 90 % vs dense throughput, and one mask-update event.

1. **Throughput** (images/s) of the real ``SupervisedClassifier`` (WRN-16-2, SGD + MultiStepLR as in
   ``configs/sup.yaml``) in one Lightning ``fit`` on pre-built synthetic tensors on CPU, with a
   :class:`~callbacks.pruning.GradualMagnitudePruning` callback that prunes to 90 % (global,
   unstructured) at step 0 and whose schedule is over after step 1. The timed steps are the steady
   state *between* events: masked gradients before each optimiser step, masks re-applied after it,
   and the callback's per-step bookkeeping. Dense and GMP steps are **interleaved step by step** in
   the same fit: after the warm-up, ``--pairs`` pairs of one dense step (the callback's per-step hooks
   skipped) and one GMP step (hooks run), order swapped every pair. Same model, optimiser, batch
   size and moment in time, so machine noise hits both arms alike; the ratio is the median over pairs
   of ``dense step time / GMP step time`` (= GMP images/s / dense images/s). A step is timed from the
   start of its batch to the start of the next (every hook, optimiser step and fetch counts). The
   time spent inside the pruning hooks is also measured directly. ``--whole-fits N`` adds separate
   all-dense / all-GMP fits as a cross-check.
2. **One mask-update event**: the wall time of ``update_masks`` (scores, one global threshold or N:M
   groups, DDP agreement, re-binding, applying, zeroing momentum of pruned entries, measuring,
   logging) from dense weights with populated SGD momentum buffers, for WRN-16-2 (0.69 M prunable
   weights) and ResNet-18 (11 M), global unstructured to 90 % and N:M 2:4 (50 %; layers whose input
   channels are not a multiple of 4, the RGB stem, stay dense). Median of ``--event-repeats``.
3. **Amortised**: GMP recomputes masks once every ``--frequency`` optimiser steps (500 in the
   paper's Sup schedule); the last line folds the WRN-16-2 global event into the steady-state ratio:
   ``ratio = 1 / (1 / steady_ratio + event_s / (frequency * dense_step_s))``.

Prints ``ratio_gmp_vs_dense=<x>`` as its last line (target >= 0.97). Default: 1 intra-op thread
(see ``--threads``), batch 32, about 2-3 minutes on a shared 2-core machine.
``python benchmarks/pruning_overhead.py --help`` lists the knobs (batch size, pairs, threads, ...).
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as pl  # noqa: E402

from callbacks.pruning import GradualMagnitudePruning, sparsity_of  # noqa: E402
from lightning_modules import SupervisedClassifier  # noqa: E402


class FixedBatches(Dataset):
    """``n`` pre-built batches of random 3x32x32 images (the project's batch dict): no loader cost."""

    def __init__(self, n: int, batch_size: int, num_classes: int = 10, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.batches = [
            {
                "index": torch.arange(i * batch_size, (i + 1) * batch_size),
                "label": torch.randint(0, num_classes, (batch_size,), generator=g),
                "image": torch.randn(batch_size, 3, 32, 32, generator=g),
            }
            for i in range(n)
        ]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.batches[i]


class StepClock(pl.Callback):
    """``perf_counter()`` at the start of every training batch; first in the callback list, it also
    tells the gate whether this batch is a GMP step (``arms[batch_idx] == "gmp"``)."""

    def __init__(self, arms: list[str]) -> None:
        self.arms = arms
        self.starts: list[float] = []
        self.gmp_active = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self.starts.append(time.perf_counter())
        self.gmp_active = self.arms[batch_idx] == "gmp"


def gmp_at(sparsity: float, **kwargs: Any) -> GradualMagnitudePruning:
    """A GMP callback that prunes to ``sparsity`` at step 0 and whose schedule ends at step 1."""
    return GradualMagnitudePruning(
        final_sparsity=sparsity, initial_sparsity=sparsity, begin_step=0, end_step=1, frequency=1, **kwargs
    )


PER_STEP_HOOKS = ("on_train_batch_start", "on_before_optimizer_step", "on_train_batch_end")


def gate_and_time(pruner: pl.Callback, clock: StepClock) -> list[float]:
    """Wrap the pruner's per-step hooks (on the instance): they run only on GMP steps, and the
    seconds spent in them are added up per step (one list entry per GMP step)."""
    seconds: list[float] = []
    open_step = [0.0]

    def wrap(hook: Any, last: bool) -> Any:
        def gated(*args: Any, **kwargs: Any) -> Any:
            if not clock.gmp_active:
                return None
            start = time.perf_counter()
            out = hook(*args, **kwargs)
            open_step[0] += time.perf_counter() - start
            if last:
                seconds.append(open_step[0])
                open_step[0] = 0.0
            return out

        return gated

    for name in PER_STEP_HOOKS:
        setattr(pruner, name, wrap(getattr(pruner, name), last=name == "on_train_batch_end"))
    return seconds


def fit_steps(arms: list[str], batch_size: int, sparsity: float, seed: int = 0) -> tuple[list[float], list[float]]:
    """One Lightning fit of WRN-16-2 over ``len(arms)`` batches with a GMP callback whose per-step
    hooks run only on the batches marked ``"gmp"``; returns each batch's wall time (start of this
    batch to start of the next; the last batch is not timed) and the time in the hooks per GMP step."""
    pl.seed_everything(seed, verbose=False)
    model = SupervisedClassifier(backbone="wrn16_2", lr=0.1, milestones=[1000])
    batches = FixedBatches(len(arms), batch_size, seed=seed)
    clock = StepClock(arms)
    pruner = gmp_at(sparsity)
    hook_seconds = gate_and_time(pruner, clock)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[clock, pruner],
    )
    trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None, shuffle=False))
    assert [e["step"] for e in pruner.events] == [0, 1], pruner.events  # both events in the warm-up
    assert abs(pruner.events[-1]["measured"] - sparsity) < 1e-3
    return [b - a for a, b in zip(clock.starts, clock.starts[1:])], hook_seconds


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Paired steps: after ``warmup`` GMP steps, ``pairs`` pairs of one dense and one GMP step (order
    swapped every pair) in the same fit: same model, optimiser, batch size and moment in time."""
    arms = ["gmp"] * args.warmup
    for k in range(args.pairs):
        arms += ["dense", "gmp"] if k % 2 == 0 else ["gmp", "dense"]
    arms.append("gmp")  # the untimed last batch closes the last pair
    step_s, hook_s = fit_steps(arms, args.batch_size, args.sparsity)
    timed = list(zip(arms[args.warmup : -1], step_s[args.warmup :]))
    dense = [t for arm, t in timed if arm == "dense"]
    gmp = [t for arm, t in timed if arm == "gmp"]
    ratios = [d / g for d, g in zip(dense, gmp)]  # the k-th dense and k-th GMP step are neighbours
    return {
        "dense_img_s": args.batch_size / statistics.median(dense),
        "gmp_img_s": args.batch_size / statistics.median(gmp),
        "ratio": statistics.median(ratios),
        "ratio_of_sums": sum(dense) / sum(gmp),
        "ratio_quartiles": statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3,
        "dense_step_s": statistics.median(dense),
        "hook_s": statistics.median(hook_s[args.warmup :]),
    }


def whole_fits(args: argparse.Namespace) -> list[float]:
    """Cross-check: separate fits, all-dense vs all-GMP, alternating; ratio of their step medians."""
    ratios = []
    n = args.warmup + 2 * args.pairs + 1
    for r in range(args.whole_fits):
        medians = {}
        for arm in (("dense", "gmp") if r % 2 == 0 else ("gmp", "dense")):
            arms = ["gmp"] * args.warmup + [arm] * (n - args.warmup)  # the dense arm holds the pruned weights too
            step_s, _ = fit_steps(arms, args.batch_size, args.sparsity)
            medians[arm] = statistics.median(step_s[args.warmup :])
        ratios.append(medians["dense"] / medians["gmp"])
        print(f"whole fits {r + 1}/{args.whole_fits}: dense {args.batch_size / medians['dense']:.1f} img/s, "
              f"GMP {args.batch_size / medians['gmp']:.1f} img/s, ratio {ratios[-1]:.4f}", flush=True)
    return ratios


def event_seconds(backbone: str, granularity: str, repeats: int) -> tuple[float, int]:
    """Median wall time of one ``update_masks`` from dense, and the number of prunable weights."""
    pl.seed_everything(0, verbose=False)
    model = SupervisedClassifier(backbone=backbone, lr=0.1, milestones=[1000])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    F.cross_entropy(model.classify(x), y).backward()
    opt.step()  # momentum buffers exist: the event zeroes their pruned entries too
    initial = copy.deepcopy(model.state_dict())
    trainer = SimpleNamespace(global_step=0, world_size=1, optimizers=[opt], loggers=[])
    kwargs = {"granularity": "nm", "n": 2, "m": 4, "nm_indivisible": "skip"} if granularity == "nm" else {}
    sparsity = 0.5 if granularity == "nm" else 0.9
    times = []
    for _ in range(repeats):
        model.load_state_dict(initial)
        pruner = gmp_at(sparsity, **kwargs)
        start = time.perf_counter()
        pruner.update_masks(trainer, model, sparsity)
        times.append(time.perf_counter() - start)
        masked = {k: p.detach() for k, p in pruner.prunable(model).items()}
        assert sparsity_of(masked) == sparsity_of(pruner.masks), "weights and masks disagree"
    n = sum(p.numel() for p in model.prunable_parameters().values())
    return statistics.median(times), n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    parser.add_argument("--pairs", type=int, default=60, help="timed (dense, GMP) step pairs (default 60)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed GMP steps first (>= 2; default 2)")
    parser.add_argument("--sparsity", type=float, default=0.9, help="GMP sparsity held during timing (default 0.9)")
    parser.add_argument("--frequency", type=int, default=500, help="GMP steps between events, for the amortised ratio (default 500)")
    parser.add_argument("--event-repeats", type=int, default=3, help="timed mask-update events per case (default 3)")
    parser.add_argument("--whole-fits", type=int, default=0, help="also time this many all-dense/all-GMP fit pairs (default 0)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (default 1: on a shared machine several threads wait for each other "
        "whenever a neighbour's process takes a core, which times the neighbours, not the callback; 0 = torch's choice)",
    )
    parser.add_argument("--skip-events", action="store_true", help="measure throughput only (no event timings)")
    args = parser.parse_args(argv)
    if args.warmup < 2:
        parser.error("--warmup must be >= 2 (the GMP callback's two mask events happen at steps 0 and 1)")
    if args.pairs < 1 or args.batch_size < 1:
        parser.error("--pairs and --batch-size must be >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(
        f"pruning overhead: WRN-16-2 SupervisedClassifier, SGD, batch {args.batch_size}, synthetic tensors, CPU "
        f"({torch.get_num_threads()} threads), {args.pairs} paired dense/GMP steps; torch {torch.__version__}, "
        f"lightning {pl.__version__}",
        flush=True,
    )
    result = throughput(args)
    q1, _, q3 = result["ratio_quartiles"]
    print(
        f"throughput: dense {result['dense_img_s']:.1f} img/s, GMP@{args.sparsity:g} {result['gmp_img_s']:.1f} img/s "
        f"(median step: dense {1000 * result['dense_step_s']:.1f} ms)"
    )
    print(
        f"steady-state ratio GMP/dense: median of pairs {result['ratio']:.4f} (quartiles {q1:.4f}-{q3:.4f}), "
        f"ratio of sums {result['ratio_of_sums']:.4f}; pruning callback hooks {1000 * result['hook_s']:.2f} ms/step "
        f"= {100 * result['hook_s'] / result['dense_step_s']:.2f} % of a dense step",
        flush=True,
    )
    if args.whole_fits:
        fits = whole_fits(args)
        print(f"whole fits: median ratio {statistics.median(fits):.4f} over {len(fits)} pairs of fits")
    ratio = result["ratio"]
    if not args.skip_events:
        wrn_global = None
        for backbone in ("wrn16_2", "resnet18"):
            for granularity in ("unstructured", "nm"):
                seconds, n = event_seconds(backbone, granularity, args.event_repeats)
                label = "global unstructured -> 0.9" if granularity == "unstructured" else "N:M 2:4 -> 0.5"
                print(f"event {backbone:9s} ({n / 1e6:5.2f} M prunable weights) {label:27s}: {1000 * seconds:8.1f} ms", flush=True)
                if backbone == "wrn16_2" and granularity == "unstructured":
                    wrn_global = seconds
        assert wrn_global is not None
        amortised = 1.0 / (1.0 / ratio + wrn_global / (args.frequency * result["dense_step_s"]))
        print(
            f"with one WRN-16-2 event every {args.frequency} steps (= {wrn_global / result['dense_step_s']:.2f} dense "
            f"steps each): ratio {amortised:.4f}"
        )
        ratio = amortised
    print(f"ratio_gmp_vs_dense={ratio:.4f}")


if __name__ == "__main__":
    main()
