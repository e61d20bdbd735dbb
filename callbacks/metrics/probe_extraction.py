"""One inference-mode forward pass over a loader's batches: the pooled probes (:func:`extract_probes`).

Plain torch, no Lightning; used by :class:`~callbacks.metrics.prediction_depth_callback.PredictionDepth`
for its training bank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


# -- probe extraction -------------------------------------------------------------------------
@torch.inference_mode()
def extract_probes(
    probe_features: Callable[[Tensor], list[Tensor]],
    batches: Iterable[Any],
    *,
    batch_size: int,
    device: torch.device | str,
    on_batch: Callable[[], None] | None = None,
) -> dict[str, Tensor]:
    """One forward pass over ``batches`` (dicts with ``image``, ``index``, ``label``): pooled probes.

    The images are re-batched into forward passes of ``batch_size`` (whatever the loader's batch
    size) under ``torch.inference_mode()``. Returns CPU tensors ``index`` ``[N]``, ``label`` ``[N]``
    and ``probe{p}`` ``[N, D_p]`` (float32) in the order the batches came. ``on_batch`` is called
    after each input batch has been consumed (for a progress display).
    """
    index: list[Tensor] = []
    label: list[Tensor] = []
    probes: list[list[Tensor]] = []
    pending: list[Tensor] = []
    waiting = 0

    def forward(images: Tensor) -> None:
        for p, f in enumerate(probe_features(images.to(device, non_blocking=True))):
            if p == len(probes):
                probes.append([])
            probes[p].append(f.float().cpu())

    for batch in batches:
        images = batch["image"]
        index.append(torch.as_tensor(batch["index"]).cpu())
        label.append(torch.as_tensor(batch["label"]).cpu())
        pending.append(images)
        waiting += len(images)
        if waiting >= batch_size:
            stacked = torch.cat(pending) if len(pending) > 1 else pending[0]
            full = (len(stacked) // batch_size) * batch_size
            for start in range(0, full, batch_size):
                forward(stacked[start : start + batch_size])
            pending = [stacked[full:]] if full < len(stacked) else []
            waiting = len(stacked) - full
        if on_batch is not None:
            on_batch()
    if waiting:
        forward(torch.cat(pending))
    if not index:
        return {}
    out = {"index": torch.cat(index), "label": torch.cat(label)}
    out.update({f"probe{p}": torch.cat(parts) for p, parts in enumerate(probes)})
    return out


__all__ = ["extract_probes"]
