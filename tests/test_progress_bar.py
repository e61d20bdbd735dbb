"""The progress bar reads logged numbers once per logging period and redraws at most every 0.1 s."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from conftest import REPO  # noqa: F401 - puts the repository on sys.path
from lightning.pytorch.callbacks import TQDMProgressBar

import callbacks.progress as progress
from callbacks.progress import SyncFreeProgressBar


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_is_drawn_at_most_every_min_interval_and_at_the_last_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    bar = SyncFreeProgressBar()
    drawn = []
    for batch in range(1, 101):  # 100 batches, 1 ms apart: 0.1 s in all
        clock.now += 0.001
        if bar._should_update(batch, 100):
            drawn.append(batch)
    assert drawn == [1, 100]  # the first, then none until 0.1 s passed; the last always
    clock.now += 0.2
    assert bar._should_update(7, 100) and not bar._should_update(8, 100)
    assert not SyncFreeProgressBar(refresh_rate=5)._should_update(7, 100)  # Lightning's refresh_rate still applies


def test_the_logged_numbers_are_read_once_per_logging_period_even_between_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TQDMProgressBar, "get_metrics", lambda self, trainer, module: {})
    reads: list[int] = []

    class Value:
        def __init__(self, step: int) -> None:
            self.step = step

        def __float__(self) -> float:  # a device value's .item(): count it
            reads.append(self.step)
            return float(self.step)

    bar = SyncFreeProgressBar()
    trainer: Any = SimpleNamespace(training=True, log_every_n_steps=10, global_step=0, logged_metrics={})
    shown = []
    for step in [0, 3, 9, 13, 17, 20, 21, 35, 38, 41]:  # the steps at which the bar happens to be drawn
        trainer.global_step = step
        trainer.logged_metrics = {"train/loss_step": Value(step), "train/acc": torch.tensor(0.5)}
        shown.append(bar.get_metrics(trainer, None).get("train/loss_step"))
    # read at the first draw, then at the first draw of each new period of 10 steps (13, 20, 35, 41)
    assert reads == [0, 13, 20, 35, 41]
    assert shown == [0, 0, 0, 13, 13, 20, 20, 35, 35, 41]
