"""Opt-in ``torch.compile`` of the encoder: ``--trainer.callbacks+=callbacks.compile.CompileEncoder``.

Compiles the encoder in place (``nn.Module.compile``: the module, its parameter names and state-dict
keys are unchanged, so pruning masks, EMA pairs and checkpoints work as without it) when fitting
starts. The first steps pay the compilation (a minute or two on a GPU); worth it for long runs.
"""

from __future__ import annotations

import lightning.pytorch as pl
from typing_extensions import override

from common.errors import check_choice
from common.protocols import HasEncoder, require

MODES = ("default", "reduce-overhead", "max-autotune")


class CompileEncoder(pl.Callback):
    """``pl_module.encoder.compile(mode=mode)`` at the start of ``fit``.

    Args:
        mode: ``torch.compile`` mode.
    """

    def __init__(self, mode: str = "default") -> None:
        check_choice("CompileEncoder.mode", mode, MODES)
        self.mode = mode

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require(pl_module, HasEncoder, needed_by="callbacks CompileEncoder", role="model")
        if stage == "fit":
            pl_module.encoder.compile(mode=self.mode)


__all__ = ["CompileEncoder"]
