"""The :class:`PredictionDepth` callback: prediction depth of every test sample (Baldock et al. 2021).

The definition, the depth convention and the exact k-NN are in :mod:`callbacks.metrics.prediction_depth`
(pure maths, no Lightning); the package exports this class as ``callbacks.metrics.PredictionDepth``.

:class:`PredictionDepth` is the thin callback: the test probes come from ``test_step`` itself
(``outputs["probes"]``, one forward pass), the training bank from one forward pass over the
training images at test end, then one k-NN per probe and ``pd_score`` into
``per_sample/test.npz``, with progress shown on rank 0.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_deprecation, rank_zero_info
from torch import Tensor
from typing_extensions import override

from callbacks.metrics.collector import PerSampleCollector
from callbacks.metrics.logs import log_histogram, log_scalars
from callbacks.metrics.per_sample import per_sample_path, require_outputs, write_per_sample
from callbacks.metrics.prediction_depth import (
    DEFAULT_BANK_BATCH_SIZE,
    DEFAULT_CHUNK_BYTES,
    REFERENCES,
    TRAIN_AUGMENTATIONS,
    knn_predict,
    prediction_depth,
)
from callbacks.metrics.probe_extraction import extract_probes
from callbacks.metrics.stage_progress import StageProgress
from common.errors import ConfigError, check_choice, check_range
from common.protocols import Probed, ProbeData, ProbesFromTestStep
from common.timing import Stopwatch


# -- callback ---------------------------------------------------------------------------------
class PredictionDepth(pl.Callback):
    """Prediction depth of every test sample, stored as ``pd_score`` in ``per_sample/test.npz``.

    During ``test`` it reads the pooled probes of each test batch from ``outputs["probes"]``,
    which :class:`~lightning_modules.base.RepresentationModule` returns while the callback sets
    ``pl_module.collect_probes = True`` (``on_test_start`` .. ``on_test_end``), so the encoder runs
    once per test batch; a module whose outputs carry no probes gets a
    ``pl_module.probe_features(batch["image"])`` call instead. At test end it runs one forward pass
    (``torch.inference_mode()``, the module's own ``channels_last`` setting, batches of
    ``bank_batch_size``) over the training images of
    ``trainer.datamodule.probe_train_dataloader(subset_size=..., augmentation=..., seed=...)``
    (split across ranks under DDP, then gathered), fits one k-NN per probe on the true training
    labels and computes each test sample's depth against ``reference``. Logs ``test/pd_mean``,
    ``test/pd_mean_correct`` and ``test/pd_mean_wrong`` (correct = the network's prediction equals
    the label) and a histogram to W&B. Progress ("probe extraction: training bank i/N batches",
    "k-NN probe p/P") is shown on rank 0 as a bar when the trainer shows a progress bar, else as
    log lines. ``run_summary`` gives ``pd_seconds`` (all of it), ``pd_seconds_forward``
    (training-bank forward pass + probe collection) and ``pd_seconds_knn``.

    Args:
        k: neighbours of each k-NN probe (paper: 30).
        reference: ``"label"`` (the authors' code) or ``"prediction"`` (Baldock's original).
        train_subset_size: training images to fit the k-NN on (``None`` = the whole training set).
        train_augmentation: transform of those images: ``"supervised"`` (crop + flips, one pass:
            the authors' code, the default) or ``"none"`` (the eval transform).
        seed: which random training subset (and which augmentation draw).
        chunk_bytes: memory budget of one k-NN distance block (see :func:`knn_predict`).
        bank_batch_size: images per forward pass of the training bank (independent of the
            datamodule's ``eval_batch_size``).
        augment: deprecated (one release): ``True`` = ``train_augmentation="supervised"``,
            ``False`` = ``"none"``.

    Raises:
        ConfigError: for ``k < 1``, an unknown ``reference`` or ``train_augmentation``,
            ``k > train_subset_size``, ``chunk_bytes < 1`` or ``bank_batch_size < 1``; at
            ``setup`` when the model has no ``probe_features``, the datamodule no
            ``probe_train_dataloader``, or ``k`` exceeds the training images it yields.
    """

    def __init__(
        self,
        k: int = 30,
        reference: Literal["label", "prediction"] = "label",
        train_subset_size: int | None = None,
        train_augmentation: Literal["supervised", "none"] = "supervised",
        seed: int = 0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        bank_batch_size: int = DEFAULT_BANK_BATCH_SIZE,
        augment: bool | None = None,
    ) -> None:
        check_range("PredictionDepth.k", k, low=1)
        check_choice("PredictionDepth.reference", reference, REFERENCES)
        if augment is not None:
            mapped = "supervised" if augment else "none"
            rank_zero_deprecation(
                f"PredictionDepth.augment is deprecated and will be removed in the next release; "
                f"use train_augmentation={mapped!r} (augment={augment} is taken as that)"
            )
            train_augmentation = mapped  # type: ignore[assignment]
        check_choice("PredictionDepth.train_augmentation", train_augmentation, TRAIN_AUGMENTATIONS)
        if train_subset_size is not None:
            check_range("PredictionDepth.train_subset_size", train_subset_size, low=1)
            if k > train_subset_size:
                raise ConfigError(
                    f"PredictionDepth.k={k} is larger than train_subset_size={train_subset_size}; k must be <= the number of training samples"
                )
        check_range("PredictionDepth.chunk_bytes", chunk_bytes, low=1)
        check_range("PredictionDepth.bank_batch_size", bank_batch_size, low=1)
        self.k = k
        self.reference = reference
        self.train_subset_size = train_subset_size
        self.train_augmentation = train_augmentation
        self.seed = seed
        self.chunk_bytes = chunk_bytes
        self.bank_batch_size = bank_batch_size
        self._collector = PerSampleCollector()
        self._summary: dict[str, Any] = {}
        #: run.json's pd_seconds (all of it), pd_seconds_forward (training bank + probe collection), pd_seconds_knn
        self._total, self._forward, self._knn = Stopwatch(), Stopwatch(), Stopwatch()
        #: seconds of each probe's k-NN in the last test (benchmarks read it)
        self.knn_probe_seconds: list[float] = []

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "test":
            return
        if not isinstance(pl_module, Probed):
            raise ConfigError(
                f"PredictionDepth needs the model to define probe_features(x) -> list[Tensor]; "
                f"{type(pl_module).__name__} has none (remove the PredictionDepth callback or use a model that has it)"
            )
        datamodule = trainer.datamodule
        if not isinstance(datamodule, ProbeData):
            raise ConfigError(
                f"PredictionDepth needs a datamodule with probe_train_dataloader(); got {type(datamodule).__name__}"
            )
        n_train = len(self._train_loader(trainer).dataset)
        if self.k > n_train:
            raise ConfigError(
                f"PredictionDepth.k={self.k} is larger than the training subset ({n_train} samples); k must be <= {n_train}"
            )

    def _train_loader(self, trainer: pl.Trainer) -> Any:
        make = trainer.datamodule.probe_train_dataloader
        if _accepts_keyword(make, "augmentation"):
            return make(subset_size=self.train_subset_size, augmentation=self.train_augmentation, seed=self.seed)
        # datamodules written before `augmentation` existed take the boolean form
        return make(subset_size=self.train_subset_size, augment=self.train_augmentation == "supervised", seed=self.seed)

    # -- single forward pass over the test set: the module returns the probes -----------------
    @override
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _set_collect_probes(pl_module, True)

    @override
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _set_collect_probes(pl_module, False)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        _set_collect_probes(pl_module, False)

    @override
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collector.clear()
        for watch in (self._total, self._forward, self._knn):
            watch.reset()

    @override
    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if dataloader_idx != 0:
            return
        with self._total, self._forward:
            out = require_outputs(outputs, ("index", "label", "logits"), who="PredictionDepth", hook="test_step")
            probes = out.get("probes")
            if probes is None:  # a module that does not return its probes: one more forward pass
                with torch.inference_mode():
                    probes = pl_module.probe_features(batch["image"].to(pl_module.device))
            columns = {f"probe{p}": f.detach().float() for p, f in enumerate(probes)}
            self._collector.add(index=out["index"], label=out["label"], pred=out["logits"].argmax(dim=1), **columns)

    def _train_bank(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[list[Tensor], Tensor]:
        """Probe embeddings ``P x [N_train, D_p]`` and labels ``[N_train]`` of the training subset.

        Under DDP each rank embeds every ``world``-th batch and all ranks receive the whole bank,
        ordered by training index (so the k-NN tie rule does not depend on the number of ranks).
        """
        rank, world = trainer.global_rank, trainer.world_size
        loader = self._train_loader(trainer)
        mine = sum(1 for b in range(len(loader)) if b % world == rank)
        progress = StageProgress(trainer, "PredictionDepth probe extraction: training bank", mine, unit="batches")
        batches = (batch for b, batch in enumerate(loader) if b % world == rank)
        was_training = pl_module.training
        pl_module.eval()
        try:
            local = extract_probes(
                pl_module.probe_features, batches, batch_size=self.bank_batch_size, device=pl_module.device,
                on_batch=progress.update,
            )
        finally:
            pl_module.train(was_training)
        progress.close()
        collector = PerSampleCollector()
        if local:
            collector.add(**local)
        arrays = collector.gather(trainer)  # collective
        if arrays is None:
            raise ConfigError("PredictionDepth: datamodule.probe_train_dataloader() yielded no training images")
        n_probes = sum(name.startswith("probe") for name in arrays)
        return [torch.from_numpy(arrays[f"probe{p}"]) for p in range(n_probes)], torch.from_numpy(arrays["label"]).long()

    def _knn_predictions(
        self, trainer: pl.Trainer, bank: list[Tensor], bank_y: Tensor, queries: list[Tensor], device: torch.device
    ) -> Tensor:
        """``[P, M]``: the k-NN prediction of every probe for every query row."""
        progress = StageProgress(trainer, "PredictionDepth k-NN probe", len(bank), unit="probes", every_s=10.0)
        labels = bank_y.to(device)
        predictions = []
        self.knn_probe_seconds = []
        for p in range(len(bank)):
            with Stopwatch() as probe:
                predictions.append(
                    knn_predict(
                        bank[p].to(device), labels, queries[p].to(device), k=self.k,
                        num_classes=int(bank_y.max()) + 1, chunk_bytes=self.chunk_bytes,
                    ).cpu()
                )
            self.knn_probe_seconds.append(probe.seconds)
            progress.update()
        progress.close()
        return torch.stack(predictions)

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with self._total:
            scored = self._score(trainer, pl_module)
        if scored is None:
            return
        n_test, scalars, n_probes, n_train = scored
        self._summary = {
            "pd_mean": scalars["test/pd_mean"],
            "pd_mean_correct": _finite_or_none(scalars["test/pd_mean_correct"]),
            "pd_mean_wrong": _finite_or_none(scalars["test/pd_mean_wrong"]),
            "pd_probes": n_probes,
            "pd_train_samples": n_train,
            "pd_train_augmentation": self.train_augmentation,
            "pd_k": self.k,
            "pd_reference": self.reference,
            "pd_seconds": self._total.rounded(),
            "pd_seconds_forward": self._forward.rounded(),
            "pd_seconds_knn": self._knn.rounded(),
        }
        if trainer.is_global_zero:
            rank_zero_info(
                f"PredictionDepth: {n_test} test samples, {n_probes} probes, "
                f"{self._total.seconds:.1f} s (forward {self._forward.seconds:.1f} s, k-NN {self._knn.seconds:.1f} s)"
            )

    def _score(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[int, dict[str, float], int, int] | None:
        """Training bank, k-NN of every probe, PD of every test sample written and logged (a collective).

        Returns ``(test samples, test/pd_* scalars, probes, training samples)``, or ``None`` when no
        rank saw a test sample.
        """
        with self._forward:
            bank, bank_y = self._train_bank(trainer, pl_module)
        local = self._collector.local()
        self._collector.clear()
        if not local:  # this rank saw no test batch
            local = {"index": torch.zeros(0, dtype=torch.long), "label": torch.zeros(0, dtype=torch.long)}
            local["pred"] = local["label"]
            local.update({f"probe{p}": torch.zeros(0, x.shape[1]) for p, x in enumerate(bank)})
        if len(bank) != sum(name.startswith("probe") for name in local):
            raise RuntimeError("probe_features returned a different number of probes for training and test images")
        with self._knn:
            knn = self._knn_predictions(trainer, bank, bank_y, [local[f"probe{p}"] for p in range(len(bank))], pl_module.device)
        reference = local["label"] if self.reference == "label" else local["pred"]
        collector = PerSampleCollector()
        collector.add(
            index=local["index"], pd_score=prediction_depth(knn, reference), label=local["label"], pred=local["pred"]
        )
        arrays = collector.gather(trainer)  # collective
        if arrays is None or len(arrays["index"]) == 0:
            return None
        pd = arrays["pd_score"].astype(np.float64)
        correct = arrays["pred"] == arrays["label"]
        write_per_sample(trainer, per_sample_path(trainer, "test"), {"index": arrays["index"], "pd_score": arrays["pd_score"]})
        scalars = {
            "test/pd_mean": float(pd.mean()),
            "test/pd_mean_correct": float(pd[correct].mean()) if correct.any() else float("nan"),
            "test/pd_mean_wrong": float(pd[~correct].mean()) if (~correct).any() else float("nan"),
        }
        log_scalars(pl_module, scalars)
        log_histogram(trainer, "test/pd_score_hist", pd, bins=len(bank))
        return len(arrays["index"]), scalars, len(bank), int(len(bank_y))

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """``pd_mean``, ``pd_mean_correct``, ``pd_mean_wrong`` (+ probes, k, reference, seconds)."""
        return dict(self._summary)


def _set_collect_probes(pl_module: pl.LightningModule, value: bool) -> None:
    """Ask a module that supports it (:class:`~common.protocols.ProbesFromTestStep`) to return its
    test probes from ``test_step``'s own forward."""
    if isinstance(pl_module, ProbesFromTestStep):
        pl_module.collect_probes = value


def _accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None

__all__ = ["PredictionDepth"]
