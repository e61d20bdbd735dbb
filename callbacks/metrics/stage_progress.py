"""Progress of one long stage on global rank 0 (:class:`StageProgress`), for the metric callbacks.

Used by :class:`~callbacks.metrics.prediction_depth_callback.PredictionDepth`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info


# -- progress (rank 0 only) -------------------------------------------------------------------
class StageProgress:
    """Progress of one long stage on global rank 0: a bar when the trainer shows one, else log lines.

    With an enabled progress-bar callback the stage gets its own task in a
    :class:`~lightning.pytorch.callbacks.RichProgressBar` or a ``tqdm`` bar (as
    :class:`~lightning.pytorch.callbacks.TQDMProgressBar` draws); without one it logs a start line,
    a line every ``every_s`` seconds and an end line with the duration. Other ranks print nothing.
    """

    def __init__(self, trainer: pl.Trainer, description: str, total: int, *, unit: str, every_s: float = 30.0) -> None:
        self.description, self.total, self.unit, self.every_s = description, total, unit, every_s
        self.done = 0
        self.start = self._last_line = time.perf_counter()
        self._bar: Any = None
        self._rich: Any = None
        self._enabled = bool(trainer.is_global_zero)
        if not self._enabled:
            return
        callback = trainer.progress_bar_callback
        if callback is not None and callback.is_enabled:
            progress = getattr(callback, "progress", None)
            if progress is not None and hasattr(progress, "add_task"):  # RichProgressBar, live
                self._rich = (progress, progress.add_task(description, total=total))
                return
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=description, unit=unit, file=sys.stdout, dynamic_ncols=True, leave=True)
            return
        rank_zero_info(f"{description}: {total} {unit} ...")

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self._enabled:
            return
        if self._rich is not None:
            self._rich[0].update(self._rich[1], advance=n)
        elif self._bar is not None:
            self._bar.update(n)
        elif time.perf_counter() - self._last_line >= self.every_s and self.done < self.total:
            self._last_line = time.perf_counter()
            rank_zero_info(f"{self.description}: {self.done}/{self.total} {self.unit}, {self.elapsed():.1f} s")

    def close(self) -> None:
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.close()
        elif self._rich is None:
            rank_zero_info(f"{self.description}: {self.done}/{self.total} {self.unit} done in {self.elapsed():.1f} s")


__all__ = ["StageProgress"]
