"""The GPU half of ``benchmarks/speed.py`` (see its docstring): real fits, the step alone, the plain loop."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from benchmarks.speed import EXP, REPO, PlainLoop, epoch_times, make_batch, run_fit
from lightning_modules import SupConModel, SupervisedClassifier

N_TRAIN, N_TEST = 50_000, 10_000
GPU = ["--config", str(REPO / "configs/trainer/gpu.yaml")]
GRAPHS = ["--config", str(REPO / "configs/trainer/gpu_graphs.yaml")]
#: --smoke: the whole report on the CPU at toy size (checks the script, measures nothing)
SMOKE = {"n": (600, 200), "gpu": ["--trainer.accelerator", "cpu", "--trainer.precision", "32-true", "--data.init_args.augment_on", "device"],
         "steps": 3}
#: Table 1 (configs/populations/table1.yaml): runs per cell and epochs per run
GRID = {"sup_dense": (30, 205), "sup_gmp": (120, 205), "supcon_dense": (30, 600), "supcon_gmp": (240, 600), "oneshot": (240, 30)}


def write_standin(folder: Path, n_train: int = N_TRAIN, n_test: int = N_TEST) -> None:
    """50,000 / 10,000 random 28x28 images and labels in Fashion-MNIST's idx files (speed only)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)

    def idx(path: Path, arr: np.ndarray) -> None:
        with path.open("wb") as fh:
            fh.write(bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape) + arr.tobytes())

    for stem, n in (("train", n_train), ("t10k", n_test)):
        idx(folder / f"{stem}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        idx(folder / f"{stem}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))


def fit_rates(args: list[str]) -> dict[str, Any]:
    """A real fit's per-epoch seconds (whole epoch; training part) and wall seconds."""
    folder, wall = run_fit([*args, "--test_after_fit", "false"])
    return {"epoch": epoch_times(folder), "train": epoch_times(folder, "train/epoch_train_time_s"), "wall": wall}


class _Repeat:
    def __init__(self, batch: dict[str, Any], n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self) -> Any:
        return (self.batch for _ in range(self.n))

    def __len__(self) -> int:
        return self.n


class _Clock(pl.Callback):
    def __init__(self, start: int) -> None:
        self.start, self.t0 = start, 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.start:
            _sync(trainer.strategy.root_device.type)
            self.t0 = time.perf_counter()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step_only_rate(method: str, batch_size: int, steps: int = 60, warmup: int = 15, device: str = "cuda") -> float:
    """Images/s of ``Trainer.fit`` on one repeated batch (the module, its logging and metrics, no data)."""
    torch.manual_seed(0)
    module = SupervisedClassifier(lr=0.1) if method == "sup" else SupConModel(head_epochs=1)
    clock = _Clock(warmup)
    trainer = pl.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, max_epochs=1000, max_steps=warmup + steps,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock],
                         precision="bf16-mixed" if device == "cuda" else "32-true", benchmark=device == "cuda")  # fmt: skip
    trainer.fit(module, train_dataloaders=_Repeat(make_batch(method, batch_size, device), warmup + steps + 1))
    _sync(device)
    return batch_size * steps / (time.perf_counter() - clock.t0)


def plain_rate(method: str, batch_size: int, steps: int = 60, warmup: int = 15, device: str = "cuda") -> float:
    """Images/s of the plain loop (bf16 autocast, channels_last), timed over ``steps`` with one sync."""
    torch.backends.cudnn.benchmark = True
    loop = PlainLoop(method, make_batch(method, batch_size, device), device, bf16=device == "cuda")
    for _ in range(warmup):
        loop.step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loop.step()
    _sync(device)
    return batch_size * steps / (time.perf_counter() - start)


def _med(values: list[float], skip: int = 1) -> float:
    return statistics.median(values[skip:] or values)


def gpu_report(args: argparse.Namespace) -> None:
    smoke = bool(getattr(args, "smoke", False))
    n_train, n_test = SMOKE["n"] if smoke else (N_TRAIN, N_TEST)
    gpu, graphs = (SMOKE["gpu"], SMOKE["gpu"]) if smoke else (GPU, GRAPHS)
    device = "cpu" if smoke else "cuda"
    steps: dict[str, Any] = {"steps": SMOKE["steps"], "warmup": 2} if smoke else {}
    name = "CPU smoke run (toy sizes: checks the script, measures nothing)" if smoke else torch.cuda.get_device_name(0)
    print(f"{name}, torch {torch.__version__}, lightning {pl.__version__}; CIFAR-10-sized stand-in "
          f"({n_train} / {n_test} random images); Sup batch 128, SCL batch 1024 x 2 views; configs/trainer/gpu.yaml", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "standin"
        write_standin(data, n_train, n_test)
        sup_data = ["--data", str(REPO / "configs/data/fashion_mnist.yaml"), "--data.init_args.data_dir", str(data)]
        scl_data = ["--data", str(REPO / "configs/data/fashion_mnist_contrastive.yaml"), "--data.init_args.data_dir", str(data),
                    "--data.init_args.batch_size", "1024"]  # fmt: skip
        sup = ["--config", str(EXP / "sup_dense.yaml"), *sup_data, "--trainer.max_epochs", "3"]
        gmp = ["--config", str(EXP / "sup_gmp.yaml"), *sup_data, "--trainer.max_epochs", "3", "--pruning.init_args.begin_step", "4" if smoke else "10",
               "--pruning.init_args.end_step", str(14 if smoke else 1000), "--pruning.init_args.frequency", "2" if smoke else "50"]  # fmt: skip
        scl = ["--config", str(EXP / "supcon_dense.yaml"), *scl_data, "--trainer.max_epochs", "3", "--model.init_args.head_epochs", "1"]
        fits = {}
        for fit, cmd in (("sup", [*sup, *gpu]), ("sup_gmp", [*gmp, *gpu]), ("supcon", [*scl, *gpu]),
                         ("sup_graphs", [*sup, *graphs]), ("supcon_graphs", [*scl, *graphs])):  # fmt: skip
            try:
                fits[fit] = fit_rates(cmd)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:  # one failed fit must not hide the others
                fits[fit] = {"epoch": [float("nan")] * 3, "train": [float("nan")] * 3, "wall": float("nan")}
                print(f"  fit {fit} FAILED: {str(err).strip().splitlines()[-1][:400]}", flush=True)
                continue
            print(f"  fit {fit}: s/epoch {[round(e, 2) for e in fits[fit]['epoch']]}, "
                  f"training part {[round(e, 2) for e in fits[fit]['train']]}, wall {fits[fit]['wall']:.0f} s", flush=True)  # fmt: skip
    step = {"sup": step_only_rate("sup", 128, device=device, **steps), "supcon": step_only_rate("supcon", 1024 if not smoke else 32, device=device, **steps)}
    plain = {"sup": plain_rate("sup", 128, device=device, **steps), "supcon": plain_rate("supcon", 1024 if not smoke else 32, device=device, **steps)}

    def rate(name: str, key: str = "epoch") -> float:  # images/s over the contrastive/supervised epochs (not the head epoch)
        values = fits[name][key][:2] if name.startswith("supcon") else fits[name][key]
        return n_train / _med(values)

    rows = []
    for method, eager, graphs in (("sup", "sup", "sup_graphs"), ("supcon", "supcon", "supcon_graphs")):
        rows.append((f"{method}: real fit, whole epoch (with validation)", rate(eager), rate(eager) / plain[method]))
        rows.append((f"{method}: real fit, training part", rate(eager, "train"), rate(eager, "train") / plain[method]))
        rows.append((f"{method}: Lightning step alone, one batch", step[method], step[method] / plain[method]))
        rows.append((f"{method}: plain PyTorch loop (eager)", plain[method], 1.0))
        rows.append((f"{method}: fast path (CUDA graphs), whole epoch", rate(graphs), rate(graphs) / plain[method]))
        rows.append((f"{method}: fast path (CUDA graphs), training part", rate(graphs, "train"), rate(graphs, "train") / plain[method]))
    print(f"\n{'what':<52} {'img/s':>9} {'x plain':>8}")
    for what, value, ratio in rows:
        print(f"{what:<52} {value:>9.0f} {ratio:>8.2f}")
    gmp_whole, gmp_train = rate("sup_gmp") / rate("sup"), rate("sup_gmp", "train") / rate("sup", "train")
    print(f"GMP (masks held, events every 50 steps) vs dense: whole epoch {gmp_whole:.3f}, training part {gmp_train:.3f}")

    def hours(suffix: str) -> dict[str, float]:
        sup_s = _med(fits["sup" + suffix]["epoch"])
        gmp_s = sup_s / gmp_whole
        con_s = _med(fits["supcon" + suffix]["epoch"][:2], skip=1)
        head_s = fits["supcon" + suffix]["epoch"][2]
        scl_run = 500 * con_s + 100 * head_s
        return {"sup_run": 205 * sup_s / 3600, "scl_run": scl_run / 3600,
                "grid": (GRID["sup_dense"][0] * 205 * sup_s + GRID["sup_gmp"][0] * 205 * gmp_s + GRID["supcon_dense"][0] * scl_run
                         + GRID["supcon_gmp"][0] * scl_run / gmp_whole + GRID["oneshot"][0] * 30 * sup_s) / 3600}  # fmt: skip

    for label, suffix in (("eager (gpu.yaml)", ""), ("fast path (gpu_graphs.yaml)", "_graphs")):
        h = hours(suffix)
        print(f"projected, one run at a time, {label}: Sup run {h['sup_run'] * 60:.1f} min, SCL run {h['scl_run'] * 60:.1f} min, "
              f"Table 1 grid {h['grid']:.1f} GPU-hours")  # fmt: skip
    print(f"ratio_real_fit_vs_plain sup={rate('sup') / plain['sup']:.3f} supcon={rate('supcon') / plain['supcon']:.3f} "
          f"ratio_gmp_vs_dense={gmp_whole:.3f} ratio_fast_path_vs_plain sup={rate('sup_graphs', 'train') / plain['sup']:.3f}")


__all__ = ["gpu_report", "plain_rate", "step_only_rate", "write_standin"]
