"""Wall-clock timing of the metric callbacks' work: one helper instead of hand-written
``time.perf_counter()`` pairs.

The callbacks report how long their work took in ``run.json`` (``predictions_seconds``,
``q_score_seconds``, ``pd_seconds`` with ``pd_seconds_forward`` and ``pd_seconds_knn``,
``umap_seconds``); their work is spread over several hooks (every test batch, the epoch end), so a
:class:`Stopwatch` sums the blocks it is entered for. Stdlib only.
"""

from __future__ import annotations

import time
from types import TracebackType


class Stopwatch:
    """Seconds spent inside ``with stopwatch:`` blocks, summed until :meth:`reset`.

    ``last`` is the duration of the latest block. A block counts however it is left (normally, by
    ``return`` or by an exception). Several stopwatches can time one block
    (``with total, forward: ...``); the outer one's block includes the inner one's.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.last = 0.0
        self._started: float | None = None

    def reset(self) -> None:
        """Back to zero (a new test epoch)."""
        self.seconds = self.last = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._started is not None, "Stopwatch left without being entered"
        self.last = time.perf_counter() - self._started
        self.seconds += self.last
        self._started = None

    def rounded(self, digits: int = 3) -> float:
        """The summed seconds as ``run.json`` records them (milliseconds)."""
        return round(self.seconds, digits)


__all__ = ["Stopwatch"]
