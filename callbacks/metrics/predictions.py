"""Per-sample predictions of the test set (and optionally of validation epochs), plus confusion matrix.

:class:`PerSamplePredictions` reads what ``test_step`` / ``validation_step`` return
(``{"index", "label", "logits", ...}``, no second forward pass), gathers all ranks' rows,
de-duplicates them by index and writes ``index``, ``label``, ``pred`` (and ``logits`` / ``features`` when asked)
to ``<run_dir>/per_sample/test.npz`` — the file every other per-sample metric adds its columns to.
It also computes the confusion matrix and per-class accuracy of those de-duplicated rows.

At the very end of ``test`` (``on_test_end``, after every callback has added its arrays) the file
is logged to W&B as an artifact of type ``per_sample`` and, when ``log_table``, as a
``wandb.Table`` of its one-dimensional columns (first ``table_max_rows`` rows by index). Nothing is
sent anywhere when no ``WandbLogger`` is attached.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from callbacks.metrics.arrays import read_npz
from callbacks.metrics.confusion import confusion_matrix, confusion_png, per_class_accuracy
from callbacks.metrics.logs import log_artifact_file, log_image, log_table, wandb_logger
from callbacks.metrics.per_sample import PerSampleCallback, figure_path, per_sample_path, require_outputs, write_per_sample
from common.errors import check_range
from common.io import atomic_write_bytes
from common.protocols import NamedClasses


class PerSamplePredictions(PerSampleCallback):
    """Write ``index``/``label``/``pred`` (``logits``) per test sample; confusion matrix; W&B artifact/table.

    Args:
        save_logits: also store the ``[N, C]`` logits.
        save_features: also store the ``[N, D]`` representations ``h`` (``features``; 5 MB for
            10,000 x 128 float32), e.g. for UMAPs of whole populations in ``analysis/``.
        every_n_val_epochs: also write ``per_sample/val_epoch<k>.npz`` every this many validation
            epochs (``k`` = 0-based epoch; 0 = never).
        confusion: compute the confusion matrix and per-class accuracy of the de-duplicated rows
            (W&B tables ``<stage>/per_class_accuracy`` / ``<stage>/confusion_table``, W&B image
            ``<stage>/confusion_matrix``, ``figures/confusion_<stage>.png``, ``per_class_acc`` in
            run.json). Scalars ``test/acc_class_<c>`` are the LightningModule's to log.
        log_artifact: log ``per_sample/test.npz`` to W&B as an artifact at test end.
        log_table: also log its 1-D columns as a ``wandb.Table``.
        table_max_rows: row cap of that table (the rows with the smallest indices).
    """

    def __init__(
        self,
        save_logits: bool = False,
        save_features: bool = False,
        every_n_val_epochs: int = 0,
        confusion: bool = True,
        log_artifact: bool = True,
        log_table: bool = False,
        table_max_rows: int = 10_000,
    ) -> None:
        check_range("PerSamplePredictions.every_n_val_epochs", every_n_val_epochs, low=0)
        check_range("PerSamplePredictions.table_max_rows", table_max_rows, low=1)
        super().__init__(every_n_val_epochs)
        self.save_logits = save_logits
        self.save_features = save_features
        self.confusion = confusion
        self.log_artifact = log_artifact
        self.log_table = log_table
        self.table_max_rows = table_max_rows
        self._num_classes = 0
        self._summary: dict[str, Any] = {}

    # -- collection ---------------------------------------------------------------------------
    @override
    def _collect(self, outputs: Any, hook: str) -> None:
        with self._timer:
            needed = ("index", "label", "logits", "features") if self.save_features else ("index", "label", "logits")
            out = require_outputs(outputs, needed, who="PerSamplePredictions", hook=hook)
            self._num_classes = int(out["logits"].shape[1])
            columns = {"index": out["index"], "label": out["label"], "pred": out["logits"].argmax(dim=1)}
            if self.save_logits:
                columns["logits"] = out["logits"].float()
            if self.save_features:
                columns["features"] = out["features"].float()
            self._collector.add(**columns)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        arrays = self._finish(trainer, pl_module, stage="test", prefix="test")
        if arrays is not None:
            accuracy = float(np.mean(arrays["pred"] == arrays["label"]))
            self._summary.update(
                {
                    "test_samples": int(len(arrays["index"])),
                    "per_sample_acc": accuracy,
                    "per_sample_file": str(per_sample_path(trainer, "test")),
                }
            )

    @override
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = per_sample_path(trainer, "test")
        if not trainer.is_global_zero or wandb_logger(trainer) is None or not path.exists():
            return
        with self._timer:
            if self.log_artifact:
                log_artifact_file(trainer, path, name="per_sample_test", artifact_type="per_sample")
            if self.log_table:
                arrays = read_npz(path)
                columns = [name for name, value in arrays.items() if value.ndim == 1]
                n = min(len(arrays["index"]), self.table_max_rows)
                if n < len(arrays["index"]):
                    rank_zero_warn(f"per-sample W&B table capped at table_max_rows={self.table_max_rows} of {len(arrays['index'])} rows")
                rows = [[arrays[c][i].item() for c in columns] for i in range(n)]
                log_table(trainer, "test/per_sample", columns, rows)
        self._summary["predictions_seconds"] = self._timer.rounded()

    # -- output -------------------------------------------------------------------------------
    @override
    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, stage: str, prefix: str) -> dict[str, np.ndarray] | None:
        with self._timer:
            arrays = self._collector.gather(trainer)  # collective: every rank calls it
            self._collector.clear()
            if arrays is None:
                return None
            write_per_sample(trainer, per_sample_path(trainer, stage), arrays)
            if self.confusion:
                self._log_confusion(trainer, pl_module, arrays, stage=stage, prefix=prefix)
        self._summary["predictions_seconds"] = self._timer.rounded()
        return arrays

    def _log_confusion(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, arrays: dict[str, np.ndarray], *, stage: str, prefix: str
    ) -> None:
        num_classes = max(self._num_classes, int(arrays["label"].max()) + 1, int(arrays["pred"].max()) + 1)
        names = _class_names(trainer, num_classes)
        matrix = confusion_matrix(arrays["label"], arrays["pred"], num_classes)
        accuracy = per_class_accuracy(matrix)
        if prefix == "test":
            self._summary["per_class_acc"] = {names[c]: (None if np.isnan(a) else float(a)) for c, a in enumerate(accuracy)}
        if not trainer.is_global_zero:
            return
        png = figure_path(trainer, f"confusion_{stage}.png")
        atomic_write_bytes(png, confusion_png(matrix, names, title=f"confusion matrix ({stage})"))
        log_image(trainer, f"{prefix}/confusion_matrix", png)
        log_table(
            trainer,
            f"{prefix}/per_class_accuracy",
            ["class", "name", "samples", "accuracy"],
            [[c, names[c], int(matrix[c].sum()), None if np.isnan(a) else float(a)] for c, a in enumerate(accuracy)],
        )
        log_table(
            trainer,
            f"{prefix}/confusion_table",
            ["true", "predicted", "count"],
            [[names[i], names[j], int(matrix[i, j])] for i in range(num_classes) for j in range(num_classes)],
        )

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """``test_samples``, ``per_sample_acc``, ``per_class_acc``, ``per_sample_file``, ``predictions_seconds``."""
        return dict(self._summary)


def _class_names(trainer: pl.Trainer, num_classes: int) -> list[str]:
    names = trainer.datamodule.class_names if isinstance(trainer.datamodule, NamedClasses) else None
    if names is not None and len(names) == num_classes:
        return [str(n) for n in names]
    return [str(c) for c in range(num_classes)]


__all__ = ["PerSamplePredictions"]
