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
``KNeighborsClassifier(n_neighbors=k)`` (uniform weights) predicts, which the tests check. It is
fast because a float32 GEMM shortlists the candidates, which are then re-ranked in float64 (see
:func:`knn_predict`); :func:`knn_predict_float64` is the plain all-float64 version it must equal.

:class:`PredictionDepth` is the thin callback: the test probes come from ``test_step`` itself
(``outputs["probes"]``, one forward pass), the training bank from one forward pass over the
training images at test end, then one k-NN per probe and ``pd_score`` into
``per_sample/test.npz``, with progress shown on rank 0.

This module is the maths and imports no Lightning. :func:`extract_probes` (plain torch) lives in :mod:`callbacks.metrics.probe_extraction`, the callback
(``callbacks.metrics.PredictionDepth``) in :mod:`callbacks.metrics.prediction_depth_callback` and
its progress display :class:`~callbacks.metrics.stage_progress.StageProgress` in
:mod:`callbacks.metrics.stage_progress`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor

REFERENCES = ("label", "prediction")
TRAIN_AUGMENTATIONS = ("supervised", "none")
DEFAULT_CHUNK_BYTES = 256 * 2**20
DEFAULT_BANK_BATCH_SIZE = 512

# shortlist tuning (speed only; the result is exact whatever these are)
_BLOCK = 64  # training points per block of the block-minimum pre-selection
_EXTRA_BLOCKS = 8  # blocks kept beyond k
_EXTRA_CANDIDATES = 4  # candidates re-ranked in float64 beyond k
_MAX_CHUNK_ROWS = 512  # query rows per float32 distance block (fastest of 64..1024 on 2 CPU cores)
_U32 = 2.0**-24  # unit round-off of float32
_U64 = 2.0**-53


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
        chunk_bytes: memory budget of one ``[chunk, N]`` float32 distance block; queries are
            processed in chunks of ``max(1, chunk_bytes // (4 N))`` rows (at most 512).

    Returns:
        predicted classes ``[M]`` (int64, on ``query``'s device). Neighbours are the ``k`` smallest
        float64 squared distances (computed as ``‖x‖² − 2 q·x``, as :func:`knn_predict_float64`);
        among training points tied at the k-th distance the ones earlier in ``train_x`` are taken.
        The vote counts each neighbour once; a tied vote goes to the lowest class index (as
        scikit-learn's ``KNeighborsClassifier`` with uniform weights).

    How it is fast and still exact: one float32 GEMM per chunk ranks all training points
    approximately; a rigorous bound ``ε`` on the float32 rounding error (per query, from the
    norms and ``D``) gives every training point that can be among the float64 ``k`` nearest: its
    float32 value is at most ``τ + 2ε``, ``τ`` = the k-th smallest float32 value. Those
    candidates (found through per-block minima, then a small top-k) are re-ranked in float64 with
    the tie rule above. A query whose candidate set cannot be certified complete (many points
    within ``2ε`` of its k-th distance, e.g. exact duplicates), any input with non-finite or
    float32-overflowing values, and a bank too small for the shortlist to pay (fewer than
    ``(k + 10) * 64`` points) go through :func:`knn_predict_float64` instead. The float64 values
    are computed per candidate rather than by one big GEMM, so they could differ from
    :func:`knn_predict_float64`'s in the last bit (never for exactly representable sums such as
    integer data); a different neighbour needs two distances equal to ~1e-16, not seen in the
    benchmark's checks.
    """
    labels, c, n = _check_knn_args(train_x, train_y, query, k, num_classes)
    if query.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=query.device)
    with torch.no_grad(), _highest_float32_matmul_precision():
        bank = train_x.detach().to(torch.float64)
        q_all = query.detach().to(device=bank.device, dtype=torch.float64)
        n_blocks = -(-n // _BLOCK)
        small = n_blocks <= k + _EXTRA_BLOCKS + 1  # too few blocks for the shortlist to save anything
        if small or not (torch.isfinite(bank).all() and torch.isfinite(q_all).all()):
            return _knn_float64(bank, labels, q_all, k, c, chunk_bytes).to(query.device)
        bank_sq = (bank * bank).sum(dim=1)  # exactly as knn_predict_float64
        # the shortlist works on data centred on the bank mean and scaled by a power of two to a
        # radius near 1: distances are translation invariant, the scaling multiplies every value
        # by the same factor, and the float32 values stay far from overflow and underflow
        mean = bank.mean(dim=0)
        centred = bank - mean
        spread = float((centred * centred).sum(dim=1).max().sqrt())
        scale = 2.0 ** -math.floor(math.log2(spread)) if 0 < spread < math.inf else 1.0
        centred *= scale
        centred_sq = (centred * centred).sum(dim=1)
        radius = float(centred_sq.max().sqrt())
        d = bank.shape[1]
        padded = n_blocks * _BLOCK
        minus_two_x = torch.zeros(padded, d, dtype=torch.float32, device=bank.device)
        minus_two_x[:n] = (-2.0 * centred).to(torch.float32)  # = -2 fl32(s (x − mean)) exactly
        sq32 = torch.full((padded,), float("inf"), dtype=torch.float32, device=bank.device)
        sq32[:n] = centred_sq.to(torch.float32)  # padding columns get +inf and are never chosen
        if not (torch.isfinite(sq32[:n]).all() and torch.isfinite(minus_two_x).all()):
            return _knn_float64(bank, labels, q_all, k, c, chunk_bytes).to(query.device)
        # float64 rounding of the old-path values and of the centring (in shortlist units), generously
        bank_norm = float(bank_sq.max().sqrt())
        mean_norm = float(mean.norm())
        slack64 = 4 * (d + 8) * _U64 * scale * scale
        rows = max(1, min(chunk_bytes // (4 * padded), _MAX_CHUNK_ROWS, q_all.shape[0]))
        buffer = torch.empty(rows, padded, dtype=torch.float32, device=bank.device)  # reused: no page faults
        preds = []
        for start in range(0, q_all.shape[0], rows):
            q64 = q_all[start : start + rows]
            qc = (q64 - mean) * scale
            q32 = qc.to(torch.float32)
            if not torch.isfinite(q32).all():
                preds.append(_knn_float64(bank, labels, q64, k, c, chunk_bytes))
                continue
            # s²(‖x−μ‖² − 2 (q−μ)·(x−μ)) = s²(‖q − x‖² − ‖q−μ‖²): the float64 ranking, scaled and
            # shifted per row; eps bounds its float32 error (rounding of the inputs, the GEMM's
            # D + 1 accumulations, the sum) plus the float64 error of the values it stands for
            approx = torch.addmm(sq32, q32, minus_two_x.T, out=buffer[: len(q32)])  # [m, padded] float32
            eps = (2 * (d + 8) * _U32) * (qc.norm(dim=1) + radius) ** 2 + (d + 8) * 2.0**-140
            eps += slack64 * (q64.norm(dim=1) + bank_norm + mean_norm) ** 2
            pred = torch.empty(len(q64), dtype=torch.long, device=bank.device)
            cand, ok = _shortlist(approx, eps, k)
            good = ok.nonzero().squeeze(1)
            if good.numel():
                nearest = _exact_top_k(bank, bank_sq, q64[good], cand[good], k, n)
                pred[good] = _vote(labels, nearest, c)
            bad = (~ok).nonzero().squeeze(1)
            if bad.numel():
                pred[bad] = _knn_float64(bank, labels, q64[bad], k, c, chunk_bytes)
            preds.append(pred)
    return torch.cat(preds).to(query.device)


def _shortlist(approx: Tensor, eps: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Candidate positions ``[m, L]`` for each row of float32 values ``approx`` ``[m, blocks * B]``.

    The ``k + 8`` blocks of ``B`` positions with the smallest minima hold the k smallest values;
    the ``k + 4`` smallest values inside them are the candidates. A row is complete (``ok``) when
    every position with ``approx <= τ + 2 eps`` is a candidate, ``τ`` = the k-th smallest value
    found: no unselected block has a minimum that low, and the last candidate is above it.
    """
    m = approx.shape[0]
    n_sel = k + _EXTRA_BLOCKS
    blocks = approx.view(m, -1, _BLOCK)
    bmin, bidx = torch.topk(blocks.amin(dim=2), n_sel + 1, dim=1, largest=False, sorted=True)
    outside = bmin[:, n_sel]  # no unselected block holds a value below this
    chosen = bidx[:, :n_sel]
    region = blocks.gather(1, chosen.unsqueeze(2).expand(-1, -1, _BLOCK)).view(m, -1)  # [m, n_sel * B]
    values, where = torch.topk(region, k + _EXTRA_CANDIDATES, dim=1, largest=False, sorted=True)
    cand = chosen.gather(1, where // _BLOCK) * _BLOCK + where % _BLOCK  # position in the bank
    band = values[:, k - 1] + 2 * eps.to(approx.dtype)
    ok = torch.isfinite(band) & (outside > band) & (values[:, -1] > band)
    return cand, ok


def _exact_top_k(bank: Tensor, bank_sq: Tensor, q64: Tensor, cand: Tensor, k: int, n: int) -> Tensor:
    """The ``k`` smallest float64 ``‖x‖² − 2 q·x`` among ``cand`` ``[m, L]``, ties to the lower position."""
    valid = cand < n  # padding positions
    safe = cand.clamp(max=n - 1)
    dots = torch.bmm(bank[safe], q64.unsqueeze(2)).squeeze(2)  # [m, L]
    dist = torch.where(valid, bank_sq[safe] - 2.0 * dots, torch.full_like(dots, float("inf")))
    positions, perm = cand.sort(dim=1)
    order = torch.sort(dist.gather(1, perm), dim=1, stable=True).indices[:, :k]
    return positions.gather(1, order)


def _vote(labels: Tensor, nearest: Tensor, c: int) -> Tensor:
    votes = torch.zeros(len(nearest), c, dtype=torch.long, device=nearest.device)
    votes.scatter_add_(1, labels[nearest], torch.ones_like(nearest))
    return votes.argmax(dim=1)  # first maximum = lowest class index on a tie


@contextlib.contextmanager
def _highest_float32_matmul_precision() -> Iterator[None]:
    """float32 GEMMs in full IEEE float32 (no TF32/bf16) inside the block: the error bound assumes it.

    Uses the per-backend ``fp32_precision`` settings (torch >= 2.9), touching only a backend that
    is set to a reduced precision and restoring it afterwards; older torch: the global setting.
    """
    backends = [
        b for b in (torch.backends.cuda.matmul, getattr(torch.backends.mkldnn, "matmul", None))
        if b is not None and hasattr(b, "fp32_precision")
    ]
    if not backends:  # pragma: no cover - torch < 2.9
        previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(previous)
        return
    generic = getattr(torch.backends, "fp32_precision", "none")
    reduced = [(b, b.fp32_precision) for b in backends if (generic if b.fp32_precision == "none" else b.fp32_precision) not in ("ieee", "none")]
    for b, _ in reduced:
        b.fp32_precision = "ieee"
    try:
        yield
    finally:
        for b, value in reduced:
            b.fp32_precision = value


def _check_knn_args(train_x: Tensor, train_y: Tensor, query: Tensor, k: int, num_classes: int | None) -> tuple[Tensor, int, int]:
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
    return labels, c, n


def knn_predict_float64(
    train_x: Tensor,
    train_y: Tensor,
    query: Tensor,
    *,
    k: int = 30,
    num_classes: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Tensor:
    """The all-float64 k-NN (same arguments and result as :func:`knn_predict`, several times slower).

    It was :func:`knn_predict` until the float32 shortlist; it stays as the reference the tests
    and ``benchmarks/prediction_depth.py`` compare with, and as the fallback for queries whose
    shortlist cannot be certified. ``chunk_bytes`` budgets one ``[chunk, N]`` float64 block.
    """
    labels, c, _ = _check_knn_args(train_x, train_y, query, k, num_classes)
    with torch.no_grad():
        bank = train_x.detach().to(torch.float64)
        q = query.detach().to(device=bank.device, dtype=torch.float64)
        return _knn_float64(bank, labels, q, k, c, chunk_bytes).to(query.device)


def _knn_float64(bank: Tensor, labels: Tensor, query: Tensor, k: int, c: int, chunk_bytes: int) -> Tensor:
    n = bank.shape[0]
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
        preds.append(_vote(labels, nearest, c))
    if not preds:
        return torch.zeros(0, dtype=torch.long, device=bank.device)
    return torch.cat(preds)


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


__all__ = [
    "knn_predict",
    "knn_predict_float64",
    "prediction_depth",
    "REFERENCES",
    "TRAIN_AUGMENTATIONS",
]
