"""The training loader's order, resumption and workers, used by :mod:`datamodules.base`.

**A training epoch is a pure function of (seed, epoch).** :class:`ResumableSampler` draws epoch
``e``'s permutation from ``seed + e`` (``DistributedSampler`` semantics: every rank its own
``rank::world`` part of the padded permutation) and yields ``(position, e)`` keys; the dataset
seeds the augmentation of each sample from ``(seed, e, index)``. So shuffling and augmentation do
not depend on the global RNG, the number of loader workers or the batch a sample lands in, and a run
resumed from a checkpoint — at an epoch boundary or mid-epoch (:class:`ResumableLoader` skips the
batches already trained) — sees exactly the data the uninterrupted run would have seen.

* :class:`ResumableSampler`, :class:`ResumableLoader` — the above.
* :func:`ignore_stop_signals`, :func:`default_num_workers` — the loader workers.
* :func:`run_seed` — the run's ``seed_everything``, the default seed of the sample stream.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` whose epoch ``e`` is a permutation seeded by ``seed + e``, yielding
    ``(position, e)`` keys, that can skip the start of an epoch after a mid-epoch resume.

    A ``DistributedSampler`` subclass, so Lightning does not replace it under DDP; it is built with
    the trainer's ``world_size``/``global_rank`` (1/0 outside a Trainer).
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self._skip: tuple[int, int] | None = None  # (epoch, samples of this rank to skip)

    def skip_in_epoch(self, epoch: int, samples: int) -> None:
        """Skip this rank's first ``samples`` samples the next time epoch ``epoch`` is iterated."""
        self._skip = (int(epoch), int(samples))

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        positions = list(super().__iter__())
        if self._skip is not None:
            epoch, samples = self._skip
            self._skip = None
            if epoch == self.epoch:
                positions = positions[samples:]
        return iter([(p, self.epoch) for p in positions])

    def __len__(self) -> int:
        return self.num_samples


class ResumableLoader(DataLoader):
    """A training ``DataLoader`` with ``state_dict``/``load_state_dict`` (Lightning saves it in every
    checkpoint and restores it when a fit resumes mid-epoch): the epoch and how many batches of it
    were trained; on restore, the sampler skips them."""

    #: returns the number of batches of the current epoch already trained (set by the datamodule)
    progress: Any = None

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        assert isinstance(sampler, ResumableSampler)
        done = int(self.progress()) if callable(self.progress) else 0
        return {"epoch": int(sampler.epoch), "batches": done, "batch_size": int(self.batch_size or 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        assert isinstance(sampler, ResumableSampler)
        sampler.skip_in_epoch(state["epoch"], state["batches"] * state["batch_size"])


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of every loader: workers ignore SIGTERM and SIGINT.

    SLURM (``--signal``), ``timeout`` and a terminal's Ctrl-C signal a whole process group, workers
    included. A worker killed by it makes the main process fail ("DataLoader worker ... is killed by
    signal") wherever it is, before it can checkpoint; ignoring the signal leaves the stop to the main
    process, which checkpoints at the next batch boundary and then ends its workers itself.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_num_workers() -> int:
    """Loader workers: the usable CPU cores minus one for the training process, capped at 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores - 1))


def run_seed() -> int:
    """The run's ``seed_everything`` (``PL_GLOBAL_SEED``), 0 when none was set."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    return int(seed) if seed not in (None, "") else 0
