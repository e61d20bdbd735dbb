"""Confusion matrix and per-class accuracy of de-duplicated per-sample predictions.

Computed from the gathered, de-duplicated ``label`` / ``pred`` columns (exactly one row per test
sample, also under DDP where a torchmetrics ``Metric`` state would count the sampler's padded
duplicates), with torchmetrics' functional confusion matrix. Plotting is matplotlib (Agg).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix


def confusion_matrix(label: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[C, C]`` (int64): row = true class, column = predicted class."""
    matrix = multiclass_confusion_matrix(
        torch.as_tensor(np.asarray(pred), dtype=torch.long),
        torch.as_tensor(np.asarray(label), dtype=torch.long),
        num_classes=num_classes,
    )
    return matrix.numpy().astype(np.int64)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Fraction of each true class predicted correctly ``[C]`` (recall); NaN for a class with no sample."""
    totals = matrix.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.where(totals > 0, totals, 1.0), np.nan)


def confusion_png(matrix: np.ndarray, class_names: Sequence[str], title: str = "confusion matrix") -> bytes:
    """The confusion matrix as a PNG (row-normalised colours, counts written in the cells)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    c = matrix.shape[0]
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=np.float64), where=totals > 0)
    size = max(4.0, 0.5 * c + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(c), labels=list(class_names), rotation=90)
        ax.set_yticks(range(c), labels=list(class_names))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        if c <= 20:
            for i in range(c):
                for j in range(c):
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if shares[i, j] > 0.5 else "black")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()
    finally:
        plt.close(fig)


__all__ = ["confusion_matrix", "per_class_accuracy", "confusion_png"]
