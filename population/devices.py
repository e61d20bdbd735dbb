"""GPUs for the runner: which ones (``--devices``), and K runs on each (``--runs-per-device``).

A small model (WRN-16-2) leaves most of a modern GPU idle, so several runs share one; each run is
pinned to its GPU by ``CUDA_VISIBLE_DEVICES`` (the run sees one device, ``cuda:0``), and a run
starts on the GPU with the fewest runs, never more than K on one. ``--devices auto`` takes every
visible GPU: the entries of ``CUDA_VISIBLE_DEVICES`` when it is set (a SLURM allocation sets it),
else every GPU the driver reports.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from population.plan import PlanError


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries for its children."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    import torch  # only here: a plan's dry run and a CPU runner never need CUDA

    return [str(i) for i in range(torch.cuda.device_count())]


def parse_devices(spec: str | None) -> list[str]:
    """``--devices``: ``None`` (no pinning), ``auto`` or a comma-separated list such as ``0,1,2,3``.

    Raises:
        PlanError: an empty or repeated entry, or ``auto`` with no GPU visible.
    """
    if spec is None:
        return []
    if spec.strip() == "auto":
        found = visible_gpus()
        if not found:
            raise PlanError("--devices auto: no GPU is visible (CUDA_VISIBLE_DEVICES and the driver list none); "
                            "leave --devices out to run on what each run's config asks for")  # fmt: skip
        return found
    devices = [d.strip() for d in spec.split(",")]
    if not all(devices):
        raise PlanError(f"--devices {spec!r} is not allowed; give 'auto' or comma-separated GPU indices, e.g. 0,1,2,3")
    repeated = sorted({d for d in devices if devices.count(d) > 1})
    if repeated:
        raise PlanError(f"--devices {spec!r} names GPU {repeated[0]} twice; use --runs-per-device K for K runs on each GPU")
    return devices


class DeviceSlots:
    """Which GPU the next run goes to: the least loaded one with fewer than ``per_device`` runs.

    Without devices there is one slot pool of ``jobs`` and no pinning (``CUDA_VISIBLE_DEVICES`` is
    left as it is).
    """

    def __init__(self, devices: Sequence[str], per_device: int, jobs: int) -> None:
        self.devices = list(devices)
        self.per_device = per_device
        self.capacity = len(self.devices) * per_device if self.devices else jobs
        self.load: dict[str, int] = {d: 0 for d in self.devices}
        self.free_jobs = jobs

    def take(self) -> str | None:
        """Reserve a slot; returns its GPU (``None`` when runs are not pinned). Call :meth:`has_room` first."""
        if not self.devices:
            self.free_jobs -= 1
            return None
        device = min(self.devices, key=lambda d: (self.load[d], self.devices.index(d)))
        self.load[device] += 1
        return device

    def give_back(self, device: str | None) -> None:
        if device is None:
            self.free_jobs += 1
        else:
            self.load[device] -= 1

    def has_room(self) -> bool:
        if not self.devices:
            return self.free_jobs > 0
        return any(n < self.per_device for n in self.load.values())

    def describe(self) -> str:
        if not self.devices:
            return f"{self.capacity} at a time"
        return f"{self.per_device} per GPU on GPU {','.join(self.devices)} ({self.capacity} at a time)"


def child_env(device: str | None) -> dict[str, str]:
    """The environment of a run pinned to ``device`` (or this process's own, unpinned)."""
    env = dict(os.environ)
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    return env


__all__ = ["DeviceSlots", "child_env", "parse_devices", "visible_gpus"]
