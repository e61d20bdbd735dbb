"""Host time of a real fit's per-step hooks (a CPU proxy for what bounds a small model on a GPU).

On a GPU a WRN-16-2 step is bound by the host: what Python does around the kernels. On the CPU the
same Python runs, so timing it there is a proxy that needs no GPU. :class:`HookTimer` is a Lightning
callback for the real ``cli.py fit`` path that wraps, with ``time.perf_counter``, the module's
``log`` (Lightning's ``self.log``), ``log_train`` / ``log_train_metric``, ``training_step`` (forward,
loss and logging; the backward and optimiser run outside it), ``on_train_batch_start/end``, the
datamodule's ``on_after_batch_transfer`` (the device augmentation) and the progress bar's
``on_train_batch_end``, and prints their milliseconds per training step at the end of training
(``HOSTTIME {...}``; also written to ``$HOSTTIME_OUT`` as JSON when set). Use a small model and
batch (compute small next to the host's part) and one thread::

    OMP_NUM_THREADS=1 python cli.py fit --config configs/experiments/sup_dense.yaml \\
        --data configs/data/fashion_mnist_mini.yaml --data.init_args.batch_size 2 \\
        --model.init_args.depth 10 --model.init_args.widen_factor 1 --trainer.accelerator cpu \\
        --trainer.max_epochs 1 --trainer.limit_train_batches 200 --trainer.limit_val_batches 0 \\
        --test_after_fit false --run.wandb_mode disabled --trainer.callbacks+=benchmarks.hosttime.HookTimer
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import defaultdict
from typing import Any

import lightning.pytorch as pl

MODULE_HOOKS = ("log", "log_train", "log_train_metric", "training_step", "on_train_batch_start", "on_train_batch_end")


class HookTimer(pl.Callback):
    """Milliseconds per training step spent in chosen hooks of a real fit (see the module doc)."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.steps = 0

    def _wrap(self, owner: Any, name: str, label: str) -> None:
        if not hasattr(owner, name):
            return
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start

        setattr(owner, name, timed)  # on the instance: the class and other runs are untouched

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        for name in MODULE_HOOKS:
            self._wrap(pl_module, name, f"module.{name}")
        if trainer.datamodule is not None:
            self._wrap(trainer.datamodule, "on_after_batch_transfer", "data.on_after_batch_transfer")
        if trainer.progress_bar_callback is not None:
            self._wrap(trainer.progress_bar_callback, "on_train_batch_end", "progress_bar.on_train_batch_end")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.steps += 1

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        per_step = {label: round(1e3 * seconds / max(1, self.steps), 3) for label, seconds in sorted(self.seconds.items())}
        result = {"steps": self.steps, "ms_per_step": per_step}
        print("HOSTTIME " + json.dumps(result))
        if os.environ.get("HOSTTIME_OUT") and trainer.is_global_zero:
            with open(os.environ["HOSTTIME_OUT"], "w") as fh:
                json.dump(result, fh, indent=1)


__all__ = ["HookTimer"]
