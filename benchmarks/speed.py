"""Speed of the real training path against a plain PyTorch loop, on the CPU (operation counts) or a GPU.

One command, two modes (``--device``, default: CUDA when there is a GPU):

* **CPU** — tensor operations dispatched per training step (on a GPU nearly each one is a kernel
  launch, so this is the launch count without a GPU; :mod:`benchmarks.opcount`): the real
  ``cli.py fit`` of the shipped Table 1 configs (Sup dense, Sup GMP holding its masks, SCL dense; on the
  embedded Fashion-MNIST subset, batch 32, one epoch of 10 steps, steps 3-7 counted) against a plain
  loop over the same model, loss and optimiser. Prints a table and the ratio lines
  ``ops_ratio_fit_vs_plain sup=... supcon=...`` and ``ops_gmp_minus_dense=...``.
* **GPU** — images/s, on a CIFAR-10-sized stand-in (50,000 / 10,000 random 28x28 images in
  Fashion-MNIST's idx format: speed only), of the real ``cli.py fit`` with the shipped configs and
  ``configs/trainer/gpu.yaml`` (whole epochs, validation included, from the run's ``train/epoch_time_s``;
  and the training part alone, ``train/epoch_train_time_s``) for Sup dense, Sup GMP (masks held between
  events every 50 steps), SCL dense (contrastive epochs and a linear-head epoch) and the CUDA-graph fast
  path (``configs/trainer/gpu_graphs.yaml``); the Lightning step alone on one repeated batch; the plain
  loop (bf16 autocast, channels_last, no per-step synchronisation); their ratios; and the projected
  GPU-hours of one Sup run (205 epochs), one SCL run (500 + 100 epochs) and the Table 1 grid
  (``configs/populations/table1.yaml``: 199,950 epochs), one run at a time. Under 5 minutes on an H200.

    python benchmarks/speed.py --device cpu           # op counts, ~2 minutes on 2 cores
    python benchmarks/speed.py --device cuda          # the GPU table
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.opcount import DispatchCounter  # noqa: E402
from lightning_modules import SupConModel, SupervisedClassifier  # noqa: E402
from lightning_modules.losses import supcon_loss  # noqa: E402

EXP = REPO / "configs" / "experiments"
OPCOUNT_CALLBACK = "--trainer.callbacks+=benchmarks.opcount.OpCounter"


# ----------------------------------------------------------------------------------------------
# the real fit, as a user runs it
# ----------------------------------------------------------------------------------------------
def run_fit(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 600) -> tuple[Path, float]:
    """``python cli.py fit <args>`` in a fresh run folder; returns the folder and the wall seconds."""
    folder = Path(tempfile.mkdtemp(prefix="speed-")) / "run"
    full_env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "WANDB_SILENT": "true", **(env or {})}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), "fit", *args, "--run.dir", str(folder)],
                          capture_output=True, text=True, env=full_env, timeout=timeout, check=False)  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"cli.py fit {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return folder, seconds


def epoch_times(folder: Path, key: str = "train/epoch_time_s") -> list[float]:
    with (folder / "csv" / "metrics.csv").open(newline="") as fh:
        return [float(r[key]) for r in csv.DictReader(fh) if r.get(key)]


# ----------------------------------------------------------------------------------------------
# the plain loop: the same model, loss and optimiser, nothing else
# ----------------------------------------------------------------------------------------------
def make_batch(method: str, batch_size: int, device: str) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    batch: dict[str, Any] = {"label": torch.randint(0, 10, (batch_size,), generator=g).to(device)}
    if method == "sup":
        batch["image"] = torch.randn(batch_size, 3, 32, 32, generator=g).to(device)
    else:
        batch["views"] = [torch.randn(batch_size, 3, 32, 32, generator=g).to(device) for _ in range(2)]
    return batch


class PlainLoop:
    """``zero_grad -> forward -> loss -> backward -> SGD step`` of the shipped model and optimiser
    (Sup: SGD lr 1.0 momentum 0.9 wd 5e-4; SCL: encoder + projector lr 0.05 wd 4e-4, probe lr 0.1),
    channels_last, bf16 autocast on a GPU."""

    def __init__(self, method: str, batch: dict[str, Any], device: str, bf16: bool) -> None:
        torch.manual_seed(0)
        self.method, self.batch, self.device = method, batch, device
        module = SupervisedClassifier(channels_last=True) if method == "sup" else SupConModel(head_epochs=1, channels_last=True)
        self.module = module.to(device).train()
        if method == "sup":
            groups: list[dict[str, Any]] = [{"params": list(module.parameters()), "weight_decay": 5e-4}]
            lr = 1.0
        else:
            groups = [{"params": list(module.encoder.parameters()) + list(module.projector.parameters()), "weight_decay": 4e-4},
                      {"params": list(module.probe.parameters()), "lr": 0.1, "weight_decay": 0.0}]  # fmt: skip
            lr = 0.05
        self.optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9)
        self.autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)

    def step(self) -> None:
        m, b = self.module, self.batch
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            if self.method == "sup":
                loss = F.cross_entropy(m.classifier(m.encoder(b["image"].contiguous(memory_format=torch.channels_last))), b["label"])
            else:
                h = m.encoder(torch.cat(b["views"]).contiguous(memory_format=torch.channels_last))
                z = F.normalize(m.projector(h), dim=1)
                loss = supcon_loss(torch.stack(z.chunk(2), dim=1).float(), b["label"], temperature=0.5, base_temperature=0.07)
                loss = loss + F.cross_entropy(m.probe(h[: len(b["label"])].detach()), b["label"])
        loss.backward()
        self.optimizer.step()


def plain_ops(method: str, batch_size: int) -> int:
    loop = PlainLoop(method, make_batch(method, batch_size, "cpu"), "cpu", bf16=False)
    for _ in range(2):
        loop.step()
    with DispatchCounter() as counter:
        loop.step()
    return counter.total


# ----------------------------------------------------------------------------------------------
# CPU: operations per step
# ----------------------------------------------------------------------------------------------
CPU_COMMON = ["--data.init_args.batch_size", "32", "--trainer.accelerator", "cpu", "--trainer.limit_train_batches", "10",
              "--trainer.limit_val_batches", "0", "--test_after_fit", "false", "--run.wandb_mode", "disabled"]  # fmt: skip
CPU_CASES = {
    "sup": ["--config", str(EXP / "sup_dense.yaml"), "--data", str(REPO / "configs/data/fashion_mnist_mini.yaml"),
            "--trainer.max_epochs", "1"],
    "sup_gmp": ["--config", str(EXP / "sup_gmp.yaml"), "--data", str(REPO / "configs/data/fashion_mnist_mini.yaml"),
                "--trainer.max_epochs", "1", "--pruning.init_args.begin_step", "1", "--pruning.init_args.end_step", "2",
                "--pruning.init_args.frequency", "1"],  # masks made at steps 1-2, held while counted (3-7)
    "supcon": ["--config", str(EXP / "supcon_dense.yaml"), "--data", str(REPO / "configs/data/fashion_mnist_mini_contrastive.yaml"),
               "--trainer.max_epochs", "2", "--model.init_args.head_epochs", "1"],
}  # fmt: skip


def fit_ops(case: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ops.json"
        run_fit([*CPU_CASES[case], *CPU_COMMON, OPCOUNT_CALLBACK], env={"OPCOUNT_OUT": str(out), "OMP_NUM_THREADS": "2"})
        return json.loads(out.read_text())


def cpu_report(args: argparse.Namespace) -> None:
    print(f"operations dispatched per training step (CPU, torch {torch.__version__}; batch 32, steps 3-7 of a real fit)")
    fits = {case: fit_ops(case) for case in CPU_CASES}
    plain = {"sup": plain_ops("sup", 32), "supcon": plain_ops("supcon", 32)}
    per_step = {case: statistics.median(r["steps"]) for case, r in fits.items()}
    print(f"{'what':<34} {'ops/step':>9}")
    for case, value in per_step.items():
        print(f"{'cli.py fit ' + case:<34} {value:>9.0f}   (steps: {fits[case]['steps']})")
    for method, value in plain.items():
        print(f"{'plain loop ' + method:<34} {value:>9.0f}")
    if args.top:
        for case, r in fits.items():
            steps = len(r["steps"])
            top = sorted(r["ops"].items(), key=lambda kv: -kv[1])[: args.top]
            print(f"  {case}: " + ", ".join(f"{name} {count / steps:.0f}" for name, count in top))
    print(f"ops_ratio_fit_vs_plain sup={per_step['sup'] / plain['sup']:.3f} supcon={per_step['supcon'] / plain['supcon']:.3f}")
    print(f"ops_gmp_minus_dense={per_step['sup_gmp'] - per_step['sup']:+.0f}")


__all__ = ["PlainLoop", "cpu_report", "epoch_times", "run_fit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--top", type=int, default=0, help="CPU: also list the N most frequent operations of each fit")
    parser.add_argument("--smoke", action="store_true", help="the GPU report on the CPU at toy size (checks the script only)")
    args = parser.parse_args()
    if args.device == "cpu" and not args.smoke:
        cpu_report(args)
    else:
        from benchmarks.speed_gpu import gpu_report

        gpu_report(args)


if __name__ == "__main__":
    main()
