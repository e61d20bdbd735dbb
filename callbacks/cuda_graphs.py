"""Opt-in fast path for small models on one GPU: the encoder's forward and backward as CUDA graphs.

A WRN-16-2 training step at batch 128 is a few hundred small kernels, and the GPU spends most of the
step waiting for the host to launch them. :class:`CudaGraphEncoder` records the encoder's forward and
backward once per input shape with :func:`torch.cuda.make_graphed_callables` — two CUDA graphs, one
launch each when replayed — and leaves everything else eager: the loss, the heads and classifier,
the optimiser (foreach SGD), pruning masks (applied in place on the same parameters, which the
graphs read), metrics and logging. Training is the same computation: the same kernels in the same
order, replayed (the CUDA test compares the loss curves step by step).

* Captured on the first training-mode call of each input shape (at most ``max_shapes``: the full
  batch and an epoch's smaller last batch; any further shape runs eagerly), inside the step's own
  autocast (bf16/fp16 mixed precision is captured with autocast's weight cache off, as torch
  requires). The capture's warm-up passes would move BatchNorm's running statistics: they are put
  back afterwards, so the model is exactly where eager training would have it.
* Eval mode (validation, test, a frozen encoder in the linear-head phase, prediction depth) and
  calls without gradients run the encoder eagerly.
* Valid for modules that call their encoder once per training step with its own parameters
  (Sup, SupCon, SimCLR, BYOL's online encoder). Refused, with one line before anything is written,
  for SDCLR (its pruned branch calls the encoder with substituted parameters), off CUDA and under DDP.

Opt in with ``--config configs/trainer/gpu_graphs.yaml`` (``gpu.yaml`` plus this callback) or
``--trainer.callbacks+=callbacks.cuda_graphs.CudaGraphEncoder``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from typing_extensions import override

from common.errors import ConfigError, check_range
from common.protocols import HasEncoder, require


class _GraphedEncoder(nn.Module):
    """The encoder's own forward as a module of its own (same parameters), for one captured shape."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor) -> Tensor:
        return type(self.encoder).forward(self.encoder, x)  # the class's forward, not the dispatcher


class CudaGraphEncoder(pl.Callback):
    """Replays the encoder's training forward and backward from CUDA graphs (see the module doc).

    Args:
        max_shapes: input shapes captured per fit (each costs its activations' memory once more).

    Raises:
        ConfigError: not on a CUDA device, more than one device, or a module that calls its encoder
            with substituted parameters (SDCLR).
    """

    def __init__(self, max_shapes: int = 2) -> None:
        check_range("CudaGraphEncoder.max_shapes", max_shapes, low=1)
        self.max_shapes = int(max_shapes)
        self._graphs: dict[tuple[Any, ...], nn.Module] = {}
        self._encoder: nn.Module | None = None
        #: shapes captured (for run.json and the tests)
        self.captured: list[tuple[int, ...]] = []

    # -- checks ------------------------------------------------------------------------------------
    def check_fit(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Raise a one-line :class:`ConfigError` when the fast path cannot train this run exactly."""
        require(pl_module, HasEncoder, needed_by="callbacks CudaGraphEncoder", role="model")
        if not getattr(pl_module, "cuda_graph_safe", True):
            raise ConfigError(f"callbacks CudaGraphEncoder cannot train {type(pl_module).__name__}: it calls its encoder with "
                              "substituted parameters, which a CUDA graph would not see; drop the callback")  # fmt: skip
        if trainer.strategy.root_device.type != "cuda":
            raise ConfigError("callbacks CudaGraphEncoder needs a CUDA device (--trainer.accelerator gpu, or --config "
                              f"configs/trainer/gpu.yaml); this run is on {trainer.strategy.root_device.type}")  # fmt: skip
        if trainer.world_size > 1:
            raise ConfigError(f"callbacks CudaGraphEncoder is for one device; this run has {trainer.world_size} "
                              "(DDP's gradient hooks cannot be captured): drop the callback")  # fmt: skip

    # -- hooks -------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.check_fit(trainer, pl_module)
        encoder: nn.Module = pl_module.encoder  # type: ignore[assignment]
        self._encoder = encoder
        encoder.forward = self._dispatcher(encoder)  # type: ignore[method-assign]

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._encoder is not None and "forward" in vars(self._encoder):
            del self._encoder.forward  # the class's forward again
        self._encoder = None
        self._graphs = {}

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return {"cuda_graph_shapes": [list(s) for s in self.captured]}

    # -- capture and replay ------------------------------------------------------------------------
    def _dispatcher(self, encoder: nn.Module) -> Callable[[Tensor], Tensor]:
        eager = type(encoder).forward

        def forward(x: Tensor) -> Tensor:
            if not (encoder.training and torch.is_grad_enabled() and x.is_cuda):
                return eager(encoder, x)
            amp = torch.is_autocast_enabled("cuda")
            key = (tuple(x.shape), x.dtype, x.stride(), amp, torch.get_autocast_dtype("cuda") if amp else None)
            graphed = self._graphs.get(key)
            if graphed is None:
                if len(self._graphs) >= self.max_shapes:
                    return eager(encoder, x)
                graphed = self._graphs[key] = self._capture(encoder, x, amp)
                self.captured.append(tuple(x.shape))
            return graphed(x)

        return forward

    @staticmethod
    def _capture(encoder: nn.Module, x: Tensor, amp: bool) -> nn.Module:
        """Capture forward and backward for ``x``'s shape; BatchNorm statistics and buffers as before."""
        saved = {name: b.detach().clone() for name, b in encoder.named_buffers()}
        holder = _GraphedEncoder(encoder)
        sample = torch.empty_like(x).normal_()  # same shape, dtype and memory layout as the real input
        dtype = torch.get_autocast_dtype("cuda") if amp else torch.bfloat16  # (unused when autocast is off)
        with torch.autocast("cuda", dtype=dtype, enabled=amp, cache_enabled=False):
            graphed = torch.cuda.make_graphed_callables(holder, (sample,))
        with torch.no_grad():
            for name, b in encoder.named_buffers():
                b.copy_(saved[name])
        return graphed


__all__ = ["CudaGraphEncoder"]
