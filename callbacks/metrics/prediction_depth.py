"""Prediction depth (Baldock et al. 2021) with k-NN probes, as used by [CORTI] (REFERENCE §3).

A network with ``P`` probe points (hidden representations, globally average-pooled; 16 for
WRN-16-2) gets one k-NN classifier per probe, fitted on the training set's probe embeddings with
their true labels. For a test sample, each probe's k-NN predicts a class; the sample's depth is

    depth = 1 + i*,   i* = 0-based index of the LAST probe whose k-NN prediction differs from the
                           reference class;   depth = 1 when no probe differs.

So depth is the 1-based position of the last disagreeing probe, in ``[1, P]``. This is the
convention of the [CORTI] authors' code (their Table 6 numbers, e.g. mean PD ≈ 10.9 vs 14.9 for
Sup non-PIEs vs PIEs, are on this scale). Two consequences worth knowing: a sample whose only
disagreeing probe is the first one also gets depth 1, like a sample with no disagreement; and
Baldock's phrasing "the first layer from which all k-NN predictions agree" (1-based) would be one
more, ``i* + 2``, for every sample with a disagreement.

The reference is the true label (``reference="label"``, the authors' code) or the network's own
final prediction (``reference="prediction"``, Baldock's definition).

The k-NN (:func:`knn_predict`) is exact and written in torch so it runs on the accelerator and in
chunks of queries: Euclidean distances in float64, the ``k`` nearest training points (when several
training points tie at the k-th distance, the lower training-bank position wins), majority vote,
and a vote tie goes to the **lowest class index**. That is what scikit-learn's
``KNeighborsClassifier(n_neighbors=k)`` (uniform weights) predicts, which the tests check.

:class:`PredictionDepth` is the thin callback: probe features of the test batches during ``test``,
of a training subset at test end, one k-NN per probe, ``pd_score`` into ``per_sample/test.npz``.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from callbacks.metrics.per_sample import (
    PerSampleCollector,
    log_histogram,
    log_scalars,
    per_sample_path,
    require_outputs,
    write_per_sample,
)
from lightning_modules.errors import ConfigError, check_choice, check_range

REFERENCES = ("label", "prediction")
DEFAULT_CHUNK_BYTES = 256 * 2**20


# -- pure maths -------------------------------------------------------------------------------
def knn_predict(
    train_x: Tensor,
    train_y: Tensor,
    query: Tensor,
    *,
    k: int = 30,
    num_classes: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Tensor:
    """Exact k-nearest-neighbour majority vote under the Euclidean distance.

    Args:
        train_x: training embeddings ``[N, D]``.
        train_y: their integer class labels ``[N]`` in ``[0, num_classes)``.
        query: embeddings to classify ``[M, D]`` (same device as ``train_x``).
        k: neighbours per query, ``1 <= k <= N``.
        num_classes: number of classes (default ``max(train_y) + 1``).
        chunk_bytes: memory budget of one ``[chunk, N]`` float64 distance block; queries are
            processed in chunks of ``max(1, chunk_bytes // (8 N))`` rows.

    Returns:
        predicted classes ``[M]`` (int64, on ``query``'s device). Neighbours are the ``k`` smallest
        distances; among training points tied at the k-th distance the ones earlier in
        ``train_x`` are taken. The vote counts each neighbour once; a tied vote goes to the lowest
        class index (as scikit-learn's ``KNeighborsClassifier`` with uniform weights).
    """
    if train_x.ndim != 2 or query.ndim != 2 or train_x.shape[1] != query.shape[1]:
        raise ValueError(f"train_x [N, D] and query [M, D] must share D; got {tuple(train_x.shape)} and {tuple(query.shape)}")
    n = train_x.shape[0]
    if train_y.shape != (n,):
        raise ValueError(f"train_y must be [N]={n}, got {tuple(train_y.shape)}")
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, {n}] (the number of training points)")
    labels = train_y.to(device=train_x.device, dtype=torch.long)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError("train_y must be non-negative class indices")
    c = int(labels.max()) + 1 if num_classes is None else num_classes
    bank = train_x.to(torch.float64)
    bank_sq = (bank * bank).sum(dim=1)  # [N]
    rows = max(1, chunk_bytes // (8 * max(n, 1)))
    preds = []
    for start in range(0, query.shape[0], rows):
        q = query[start : start + rows].to(device=bank.device, dtype=torch.float64)
        # ‖q − x‖² − ‖q‖² = ‖x‖² − 2 q·x: the same ranking per query row, one GEMM per chunk
        dist = bank_sq.unsqueeze(0) - 2.0 * (q @ bank.T)  # [m, N]
        # one extra neighbour tells whether the k-th distance is tied with a point left out
        values, nearest = torch.topk(dist, min(k + 1, n), dim=1, largest=False, sorted=True)
        nearest = nearest[:, :k].contiguous()
        if k < n:
            tied = (values[:, k] == values[:, k - 1]).nonzero().squeeze(1)
            if tied.numel():
                # rows whose k-th distance is shared beyond the top k: take everything closer, then
                # the earliest training points at exactly that distance
                sub, kth = dist[tied], values[tied, k - 1 : k]
                closer = sub < kth
                at_kth = sub == kth
                at_kth &= at_kth.cumsum(dim=1) <= k - closer.sum(dim=1, keepdim=True)
                nearest[tied] = (closer | at_kth).nonzero()[:, 1].view(len(tied), k)
        votes = torch.zeros(len(q), c, dtype=torch.long, device=bank.device)
        votes.scatter_add_(1, labels[nearest], torch.ones_like(nearest))
        preds.append(votes.argmax(dim=1))  # first maximum = lowest class index on a tie
    if not preds:
        return torch.zeros(0, dtype=torch.long, device=query.device)
    return torch.cat(preds).to(query.device)


def prediction_depth(knn_predictions: Tensor, reference: Tensor) -> Tensor:
    """Depth of each sample from its per-probe k-NN predictions (convention: module docstring).

    Args:
        knn_predictions: ``[P, N]`` class predicted by the k-NN of probe ``p`` (0 = shallowest).
        reference: ``[N]`` class to compare with (true label, or the network's final prediction).

    Returns:
        ``[N]`` int64 depth in ``[1, P]``: ``1 + i*`` with ``i*`` the 0-based index of the last
        probe whose prediction differs from ``reference``; ``1`` if no probe differs.
    """
    if knn_predictions.ndim != 2 or reference.ndim != 1 or knn_predictions.shape[1] != reference.shape[0]:
        raise ValueError(
            f"knn_predictions must be [P, N] and reference [N]; got {tuple(knn_predictions.shape)} and {tuple(reference.shape)}"
        )
    probes = knn_predictions.shape[0]
    differs = knn_predictions != reference.to(knn_predictions.device).unsqueeze(0)  # [P, N]
    position = torch.arange(1, probes + 1, device=differs.device).unsqueeze(1)  # 1-based probe position
    return torch.where(differs, position, torch.zeros_like(position)).amax(dim=0).clamp(min=1).long()


# -- callback ---------------------------------------------------------------------------------
class PredictionDepth(pl.Callback):
    """Prediction depth of every test sample, stored as ``pd_score`` in ``per_sample/test.npz``.

    During ``test`` it calls ``pl_module.probe_features(batch["image"])`` on each test batch
    (without autograd) and keeps the pooled probes; at test end it extracts the same probes for a
    training subset from ``trainer.datamodule.probe_train_dataloader(train_subset_size, augment,
    seed)`` (split across ranks under DDP, then gathered), fits one k-NN per probe on the true
    training labels and computes each test sample's depth against ``reference``. Logs
    ``test/pd_mean``, ``test/pd_mean_correct`` and ``test/pd_mean_wrong`` (correct = the
    network's prediction equals the label) and a histogram to W&B.

    Args:
        k: neighbours of each k-NN probe (paper: 30).
        reference: ``"label"`` (the authors' code) or ``"prediction"`` (Baldock's original).
        train_subset_size: training images to fit the k-NN on (``None`` = the whole training set).
        augment: use the training augmentation for those images (default: un-augmented).
        seed: which random training subset.
        chunk_bytes: memory budget of one k-NN distance block (see :func:`knn_predict`).
    """

    def __init__(
        self,
        k: int = 30,
        reference: Literal["label", "prediction"] = "label",
        train_subset_size: int | None = None,
        augment: bool = False,
        seed: int = 0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        check_range("PredictionDepth.k", k, low=1)
        check_choice("PredictionDepth.reference", reference, REFERENCES)
        if train_subset_size is not None:
            check_range("PredictionDepth.train_subset_size", train_subset_size, low=1)
            if k > train_subset_size:
                raise ConfigError(
                    f"PredictionDepth.k={k} is larger than train_subset_size={train_subset_size}; k must be <= the number of training samples"
                )
        check_range("PredictionDepth.chunk_bytes", chunk_bytes, low=1)
        self.k = k
        self.reference = reference
        self.train_subset_size = train_subset_size
        self.augment = augment
        self.seed = seed
        self.chunk_bytes = chunk_bytes
        self._collector = PerSampleCollector()
        self._summary: dict[str, Any] = {}
        self._seconds = 0.0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "test":
            return
        if not callable(getattr(pl_module, "probe_features", None)):
            raise ConfigError(
                f"PredictionDepth needs the model to define probe_features(x) -> list[Tensor]; "
                f"{type(pl_module).__name__} has none (remove the PredictionDepth callback or use a model that has it)"
            )
        datamodule = trainer.datamodule
        if not callable(getattr(datamodule, "probe_train_dataloader", None)):
            raise ConfigError(
                f"PredictionDepth needs a datamodule with probe_train_dataloader(); got {type(datamodule).__name__}"
            )
        n_train = len(self._train_loader(trainer).dataset)
        if self.k > n_train:
            raise ConfigError(
                f"PredictionDepth.k={self.k} is larger than the training subset ({n_train} samples); k must be <= {n_train}"
            )

    def _train_loader(self, trainer: pl.Trainer) -> Any:
        return trainer.datamodule.probe_train_dataloader(
            subset_size=self.train_subset_size, augment=self.augment, seed=self.seed
        )

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._collector.clear()
        self._seconds = 0.0

    @torch.no_grad()
    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if dataloader_idx != 0:
            return
        start = time.perf_counter()
        out = require_outputs(outputs, ("index", "label", "logits"), who="PredictionDepth", hook="test_step")
        probes = pl_module.probe_features(batch["image"].to(pl_module.device))
        columns = {f"probe{p}": f.detach().float() for p, f in enumerate(probes)}
        self._collector.add(index=out["index"], label=out["label"], pred=out["logits"].argmax(dim=1), **columns)
        self._seconds += time.perf_counter() - start

    @torch.no_grad()
    def _train_bank(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[list[Tensor], Tensor]:
        """Probe embeddings ``P x [N_train, D_p]`` and labels ``[N_train]`` of the training subset.

        Under DDP each rank embeds every ``world``-th batch and all ranks receive the whole bank,
        ordered by training index (so the k-NN tie rule does not depend on the number of ranks).
        """
        rank, world = trainer.global_rank, trainer.world_size
        collector = PerSampleCollector()
        for b, batch in enumerate(self._train_loader(trainer)):
            if b % world != rank:
                continue
            probes = pl_module.probe_features(batch["image"].to(pl_module.device))
            collector.add(
                index=torch.as_tensor(batch["index"]),
                label=torch.as_tensor(batch["label"]),
                **{f"probe{p}": f.detach().float() for p, f in enumerate(probes)},
            )
        arrays = collector.gather(trainer)  # collective
        if arrays is None:
            raise ConfigError("PredictionDepth: datamodule.probe_train_dataloader() yielded no training images")
        n_probes = sum(name.startswith("probe") for name in arrays)
        return [torch.from_numpy(arrays[f"probe{p}"]) for p in range(n_probes)], torch.from_numpy(arrays["label"]).long()

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        start = time.perf_counter()
        bank, bank_y = self._train_bank(trainer, pl_module)
        local = self._collector.local()
        self._collector.clear()
        if not local:  # this rank saw no test batch
            local = {"index": torch.zeros(0, dtype=torch.long), "label": torch.zeros(0, dtype=torch.long)}
            local["pred"] = local["label"]
            local.update({f"probe{p}": torch.zeros(0, x.shape[1]) for p, x in enumerate(bank)})
        if len(bank) != sum(name.startswith("probe") for name in local):
            raise RuntimeError("probe_features returned a different number of probes for training and test images")
        device = pl_module.device
        labels = bank_y.to(device)
        knn = torch.stack(
            [
                knn_predict(
                    bank[p].to(device),
                    labels,
                    local[f"probe{p}"].to(device),
                    k=self.k,
                    num_classes=int(bank_y.max()) + 1,
                    chunk_bytes=self.chunk_bytes,
                ).cpu()
                for p in range(len(bank))
            ]
        )  # [P, n_local]
        reference = local["label"] if self.reference == "label" else local["pred"]
        collector = PerSampleCollector()
        collector.add(
            index=local["index"], pd_score=prediction_depth(knn, reference), label=local["label"], pred=local["pred"]
        )
        arrays = collector.gather(trainer)  # collective
        if arrays is None or len(arrays["index"]) == 0:
            return
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
        self._seconds += time.perf_counter() - start
        self._summary = {
            "pd_mean": scalars["test/pd_mean"],
            "pd_mean_correct": _finite_or_none(scalars["test/pd_mean_correct"]),
            "pd_mean_wrong": _finite_or_none(scalars["test/pd_mean_wrong"]),
            "pd_probes": len(bank),
            "pd_train_samples": int(len(bank_y)),
            "pd_k": self.k,
            "pd_reference": self.reference,
            "pd_seconds": round(self._seconds, 3),
        }

    def run_summary(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """``pd_mean``, ``pd_mean_correct``, ``pd_mean_wrong`` (+ probes, k, reference, seconds)."""
        return dict(self._summary)


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None


__all__ = ["knn_predict", "prediction_depth", "PredictionDepth", "REFERENCES"]
