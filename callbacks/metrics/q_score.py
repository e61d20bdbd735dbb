"""Q-Score of a representation (Kalibhat et al. 2022, the early Z / L1 form used by [CORTI]).

For one sample's pooled encoder output ``h`` (``D`` features; 128 for WRN-16-2):

    ĥ = h / ‖h‖₂
    Z = (max_j ĥ_j − mean_j ĥ_j) / std_j ĥ_j        (population std: divide by D)
    Q = Z / ‖ĥ‖₁

A high Z means one feature stands out; a small ‖ĥ‖₁ means the unit vector is sparse, so a high Q is
a sparse, "spiky" representation. Degenerate input has a defined value instead of NaN: when all
``D`` features of ``h`` are equal (the zero vector included) the spread is zero and we set
``Z = 0`` and ``Q = 0``; ``‖ĥ‖₁`` is then ``0`` for the zero vector and ``√D`` otherwise.

:func:`q_score` is pure maths; :class:`QScore` is the thin callback that feeds it the test (and,
when asked, validation) representations, stores ``q_score``, ``z_score`` and ``l1_norm`` per sample
in ``<run_dir>/per_sample/<stage>.npz`` and logs mean ± std and histograms.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from typing_extensions import override

from callbacks.metrics.logs import log_histogram, log_scalars
from callbacks.metrics.per_sample import PerSampleCallback, per_sample_path, require_outputs, write_per_sample
from common.errors import check_range


def q_score(h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample Q-Score, Z-score and L1 norm of the L2-normalised representation.

    Args:
        h: representations ``[N, D]`` (any real dtype; computed in float32, or float64 if given).

    Returns:
        ``(q, z, l1)``, each ``[N]``: ``q = z / l1``, ``z = (max − mean) / std`` of ``ĥ = h/‖h‖₂``
        over the ``D`` features (population std), ``l1 = ‖ĥ‖₁``. Rows whose features are all equal
        (e.g. all zero) get ``z = q = 0``; a zero row gets ``l1 = 0``.
    """
    if h.ndim != 2:
        raise ValueError(f"h must be [N, D], got shape {tuple(h.shape)}")
    if h.shape[1] < 1:
        raise ValueError("h must have at least one feature (D >= 1)")
    x = h.detach().to(torch.float64 if h.dtype == torch.float64 else torch.float32)
    norm = x.norm(p=2, dim=1, keepdim=True)
    unit = torch.where(norm > 0, x / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(x))
    l1 = unit.abs().sum(dim=1)
    top = unit.max(dim=1).values
    mean = unit.mean(dim=1)
    std = unit.std(dim=1, unbiased=False)
    constant = h.detach().amax(dim=1) == h.detach().amin(dim=1)
    safe_std = torch.where(constant, torch.ones_like(std), std)
    z = torch.where(constant, torch.zeros_like(std), (top - mean) / safe_std)
    safe_l1 = torch.where(constant, torch.ones_like(l1), l1)
    q = torch.where(constant, torch.zeros_like(z), z / safe_l1)
    return q, z, l1


class QScore(PerSampleCallback):
    """Store per-sample Q / Z / ‖ĥ‖₁ of the test representations and log their mean ± std.

    Reads ``outputs["features"]`` (the ``[B, D]`` encoder output ``h``) and ``outputs["index"]``
    returned by ``test_step`` / ``validation_step``; no extra forward pass. Writes ``q_score``,
    ``z_score`` and ``l1_norm`` into ``per_sample/test.npz`` (and ``per_sample/val_epoch<k>.npz``
    every ``every_n_val_epochs`` validation epochs when > 0); logs ``<stage>/q_score_mean``,
    ``..._std`` (also for Z and L1) to every logger and histograms to W&B when attached.

    Args:
        every_n_val_epochs: also compute on validation every this many epochs (0 = test only).
        histogram_bins: number of bins of the W&B histograms.
    """

    ARRAYS = ("q_score", "z_score", "l1_norm")

    def __init__(self, every_n_val_epochs: int = 0, histogram_bins: int = 64) -> None:
        check_range("QScore.every_n_val_epochs", every_n_val_epochs, low=0)
        check_range("QScore.histogram_bins", histogram_bins, low=1, high=512)
        super().__init__(every_n_val_epochs)
        self.histogram_bins = histogram_bins
        self._means: dict[str, float] = {}

    # -- collection ---------------------------------------------------------------------------
    @override
    def _collect(self, outputs: Any, hook: str) -> None:
        with self._timer:
            out = require_outputs(outputs, ("index", "features"), who="QScore", hook=hook)
            q, z, l1 = q_score(out["features"])
            self._collector.add(index=out["index"], q_score=q, z_score=z, l1_norm=l1)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, stage="test", prefix="test")

    # -- output -------------------------------------------------------------------------------
    @override
    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, stage: str, prefix: str) -> None:
        with self._timer:
            arrays = self._collector.gather(trainer)  # collective: every rank calls it
            self._collector.clear()
            if arrays is None:
                return
            write_per_sample(trainer, per_sample_path(trainer, stage), arrays)
            scalars: dict[str, float] = {}
            for name in self.ARRAYS:
                values = arrays[name].astype(np.float64)
                scalars[f"{prefix}/{name}_mean"] = float(values.mean())
                scalars[f"{prefix}/{name}_std"] = float(values.std())
            log_scalars(pl_module, scalars)
            for name in self.ARRAYS:
                log_histogram(trainer, f"{prefix}/{name}_hist", arrays[name], bins=self.histogram_bins)
            if prefix == "test":
                self._means = {k.split("/", 1)[1]: v for k, v in scalars.items()}

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """``q_score_mean``/``_std``, ``z_score_mean``/``_std``, ``l1_norm_mean``/``_std`` of the test set."""
        if not self._means:
            return {}
        return {**self._means, "q_score_seconds": self._timer.rounded()}


__all__ = ["q_score", "QScore"]
