"""Tensor operations dispatched per training step, counted on any device (a proxy for kernel launches).

On a GPU nearly every dispatched ATen operation is one kernel launch, and a small model such as
WRN-16-2 at batch 128 is bound by launches, not arithmetic; on the CPU the count is the same and
costs nothing to measure. :class:`DispatchCounter` counts every ATen operation that reaches the
dispatcher (forward, backward, optimiser, augmentation, metrics, callbacks), by name.

:class:`OpCounter` is a Lightning callback for the real ``cli.py fit`` path::

    OPCOUNT_OUT=ops.json python cli.py fit --config ... --trainer.callbacks+=benchmarks.opcount.OpCounter

It counts the operations between consecutive ``on_train_batch_end`` calls — one whole loop
iteration: fetching and transferring the batch, the device augmentation, every hook, forward,
backward, the optimiser step and the logging of that step — for the steps after ``OPCOUNT_SKIP``
(default 3: warm-up, the first logging step), and writes ``{"steps": [...], "ops": {name: count}}``
(summed over the counted steps) to ``$OPCOUNT_OUT`` at the end of training; with ``OPCOUNT_WHERE=1``
each name carries the innermost frame outside torch that asked for it (slow; for finding where).
"""

from __future__ import annotations

import json
import os
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch.utils._python_dispatch import TorchDispatchMode


class DispatchCounter(TorchDispatchMode):
    """Counts ATen operations by overload name while active (``with DispatchCounter() as c: ...``)."""

    def __init__(self, where: bool = False) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.where = where

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = str(func.overloadpacket.__name__)
        if self.where:  # attribute the operation to the innermost frame of this project or Lightning
            frames = [f for f in traceback.extract_stack()[:-1] if "/torch/" not in f.filename]
            frame = frames[-1] if frames else None
            name += f" @ {Path(frame.filename).name}:{frame.lineno} {frame.name}" if frame else " @ ?"
        self.ops[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())


class OpCounter(pl.Callback):
    """Operations per training step of a real fit, written to ``$OPCOUNT_OUT`` (see the module doc)."""

    def __init__(self) -> None:
        self.skip = int(os.environ.get("OPCOUNT_SKIP", "3"))
        self.limit = int(os.environ.get("OPCOUNT_STEPS", "5"))
        self.out = os.environ.get("OPCOUNT_OUT", "opcount.json")
        self.steps: list[int] = []
        self.ops: Counter[str] = Counter()
        self._mode: DispatchCounter | None = None
        self._seen = 0

    def _stop(self) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.steps.append(self._mode.total)
            self.ops.update(self._mode.ops)
            self._mode = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._stop()
        self._seen += 1
        if self._seen >= self.skip and len(self.steps) < self.limit:
            self._mode = DispatchCounter(where=bool(os.environ.get("OPCOUNT_WHERE")))
            self._mode.__enter__()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._mode is not None:  # the epoch ended: the open count spans validation, drop it
            self._mode.__exit__(None, None, None)
            self._mode = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop()
        if trainer.is_global_zero:
            with open(self.out, "w") as fh:
                json.dump({"steps": self.steps, "ops": dict(self.ops.most_common())}, fh, indent=1)
