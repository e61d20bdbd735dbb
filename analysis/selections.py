"""PIE counts of model selections: bootstrap rows, disjoint halves (the PIE noise floor), size-matched subsamples.

Pure NumPy (no Lightning, no torch; of its siblings only :mod:`analysis.intervals`): every function
takes plain arrays, so the tests check it against independent loops on synthetic arrays.
Re-exported by :mod:`analysis.stats`.

**PIE counts of resampled populations** (:func:`pie_counts`): one-hot votes ``V [M, N·C]`` of a
population's predictions; a selection of models (with repetition: a bootstrap row; without: a
half or a subsample) is a weight vector ``w [M]`` (how often each model is chosen), and its votes
per sample and class are ``w @ V``. The modal class is the arg-max (a tie goes to the lowest class
index) or, for ``tie="disjoint"``, the set of classes reaching the maximum; a PIE is a sample whose
dense and pruned modes differ (disjoint sets). This is :func:`analysis.pies.pie_flags` on the
selected rows, vectorised over ``B`` selections.

**Noise floor** (:func:`noise_floor`): PIEs that appear without any pruning. Split one dense
population of ``M >= 4`` models into two disjoint random halves of ``h = M // 2`` models each (the
odd one out, if any, is left out of that split) and count the PIEs of one half's modal prediction
against the other's, over several splits. A pruned population's PIE count means something only
well above it. The floor belongs to populations of ``h`` models; compare it with the PIEs of ``h``
pruned vs ``h`` dense models (:func:`matched_pie_counts`), since the mode of fewer models flips more.

**Equal population sizes** (:func:`matched_pie_counts`): when dense and pruned populations differ
in size, the larger is subsampled (without replacement) to the size of the smaller, averaged over draws.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.intervals import _check_count

TIE_RULES = ("lowest", "disjoint")
#: selections per chunk of the vectorised PIE count (bounds memory: chunk x N x C floats)
_CHUNK_ELEMENTS = 8_000_000


# ---------------------------------------------------------------------------------------------
# PIE counts of model selections
# ---------------------------------------------------------------------------------------------
def as_preds(preds: np.ndarray, name: str) -> np.ndarray:
    """``preds`` as int64 ``[models, N]`` class indices (one model may be given as ``[N]``).

    Raises:
        ValueError: not 2-D, no model, not integers, or a negative class index (``name`` says which).
    """
    arr = np.asarray(preds)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"{name} must be [models, N] with at least one model, got shape {np.shape(preds)}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"{name} holds a negative class index {int(arr.min())}")
    return arr.astype(np.int64, copy=False)


def one_hot_votes(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``float32 [M, N * C]``: row ``m`` is the one-hot of model ``m``'s predictions (sample-major:
    column ``i * C + k`` = model ``m`` predicts class ``k`` on sample ``i``)."""
    preds = as_preds(preds, "preds")
    m, n = preds.shape
    if preds.size and int(preds.max()) >= num_classes:
        raise ValueError(f"preds holds class {int(preds.max())}, but num_classes={num_classes}")
    votes = np.zeros((m, n * num_classes), dtype=np.float32)
    votes[np.arange(m)[:, None], np.arange(n)[None, :] * num_classes + preds] = 1.0
    return votes


def selection_weights(selections: np.ndarray, n_models: int) -> np.ndarray:
    """``float32 [B, M]``: how often each of ``n_models`` models appears in each row of ``selections [B, k]``."""
    sel = np.asarray(selections, dtype=np.int64)
    if sel.ndim != 2 or sel.shape[1] < 1:
        raise ValueError(f"selections must be [B, k] model indices with k >= 1, got shape {sel.shape}")
    if sel.size and (int(sel.min()) < 0 or int(sel.max()) >= n_models):
        raise ValueError(f"selections hold model indices outside [0, {n_models})")
    weights = np.zeros((sel.shape[0], n_models), dtype=np.float32)
    np.add.at(weights, (np.repeat(np.arange(sel.shape[0]), sel.shape[1]), sel.ravel()), 1.0)
    return weights


def _votes_chunks(preds: np.ndarray, selections: np.ndarray, num_classes: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, votes [stop - start, N, C])`` over chunks of the selections' rows."""
    weights = selection_weights(selections, preds.shape[0])
    votes = one_hot_votes(preds, num_classes)
    n = preds.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * num_classes))
    for start in range(0, weights.shape[0], chunk):
        stop = min(start + chunk, weights.shape[0])
        yield start, stop, (weights[start:stop] @ votes).reshape(stop - start, n, num_classes)


def selection_modes(preds: np.ndarray, selections: np.ndarray, num_classes: int) -> np.ndarray:
    """``int [B, N]``: the modal class of the models in each row of ``selections [B, k]`` (a tie goes
    to the lowest class index), for every sample of ``preds [M, N]``."""
    preds = as_preds(preds, "preds")
    sel = np.asarray(selections)
    dtype = np.int16 if num_classes <= np.iinfo(np.int16).max else np.int64
    out = np.empty((sel.shape[0], preds.shape[1]), dtype=dtype)
    for start, stop, votes in _votes_chunks(preds, sel, num_classes):
        out[start:stop] = votes.argmax(axis=2)  # the first maximum: a tie goes to the lowest class
    return out


def pie_counts(
    dense_preds: np.ndarray,
    pruned_preds: np.ndarray,
    dense_selections: np.ndarray,
    pruned_selections: np.ndarray,
    *,
    tie: str = "lowest",
    num_classes: int | None = None,
) -> np.ndarray:
    """``int [B]``: PIE count between the dense models of each row of ``dense_selections [B, kd]``
    and the pruned models of the same row of ``pruned_selections [B, kp]``.

    Args:
        dense_preds: predicted classes ``[M_dense, N]``.
        pruned_preds: predicted classes ``[M_pruned, N]`` (may be ``dense_preds`` itself: the noise floor).
        dense_selections / pruned_selections: model indices per selection; repeated indices count
            as many votes (a bootstrap row). Both must have the same number of rows ``B``.
        tie: ``"lowest"`` (a tied mode goes to the lowest class index) or ``"disjoint"`` (a PIE
            only when the two sets of tied modal classes share no class).
        num_classes: ``C`` (default: the largest predicted class + 1).
    """
    if tie not in TIE_RULES:
        raise ValueError(f"tie={tie!r} is not allowed; choose one of {', '.join(map(repr, TIE_RULES))}")
    dense = as_preds(dense_preds, "dense_preds")
    pruned = as_preds(pruned_preds, "pruned_preds")
    if dense.shape[1] != pruned.shape[1]:
        raise ValueError(f"dense_preds covers {dense.shape[1]} samples and pruned_preds {pruned.shape[1]}; they must be the same test set")
    c = max(int(dense.max()), int(pruned.max())) + 1 if num_classes is None else int(num_classes)
    ds, ps = np.asarray(dense_selections), np.asarray(pruned_selections)
    selection_weights(ds, dense.shape[0]), selection_weights(ps, pruned.shape[0])  # validate both
    if ds.shape[0] != ps.shape[0]:
        raise ValueError(f"dense_selections has {ds.shape[0]} rows and pruned_selections {ps.shape[0]}; they must pair up")
    if tie == "lowest":
        return mode_differences(selection_modes(dense, ds, c), selection_modes(pruned, ps, c))
    out = np.empty(ds.shape[0], dtype=np.int64)
    for (start, stop, d), (_, _, p) in zip(_votes_chunks(dense, ds, c), _votes_chunks(pruned, ps, c)):
        d_sets = d == d.max(axis=2, keepdims=True)
        p_sets = p == p.max(axis=2, keepdims=True)
        out[start:stop] = (~(d_sets & p_sets).any(axis=2)).sum(axis=1)
    return out


def mode_differences(dense_modes: np.ndarray, pruned_modes: np.ndarray) -> np.ndarray:
    """``int [B]``: samples whose modal classes differ, row by row (``[B, N]`` each; the "lowest" rule)."""
    if dense_modes.shape != pruned_modes.shape:
        raise ValueError(f"modal labels of shapes {dense_modes.shape} and {pruned_modes.shape} do not pair up")
    return (dense_modes != pruned_modes).sum(axis=1).astype(np.int64)


def split_halves(n_models: int, n_splits: int, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Two ``int [n_splits, n_models // 2]`` arrays: disjoint random halves of ``range(n_models)`` per split.

    Split ``s`` is ``perm = rng.permutation(n_models)`` (``rng = default_rng(seed)``, one call per
    split): first half ``perm[:h]``, second ``perm[h:2h]`` with ``h = n_models // 2``.
    """
    _check_count("n_models", n_models, 2)
    _check_count("n_splits", n_splits, 1)
    rng = np.random.default_rng(seed)
    h = n_models // 2
    perms = np.stack([rng.permutation(n_models) for _ in range(n_splits)])
    return perms[:, :h], perms[:, h : 2 * h]


@dataclass(frozen=True)
class _Counts:
    """PIE counts over several draws (splits or subsamples): their mean and range."""

    counts: np.ndarray  # int [draws]

    @property
    def mean(self) -> float:
        return float(self.counts.mean())

    @property
    def low(self) -> int:
        return int(self.counts.min())

    @property
    def high(self) -> int:
        return int(self.counts.max())

    def fmt(self) -> str:
        """``12.3 (8–17)``: mean and range over the draws."""
        return f"{self.mean:.1f} ({self.low}–{self.high})"


@dataclass(frozen=True)
class NoiseFloor(_Counts):
    """PIE counts of one half of a dense population against the other half, over ``len(counts)`` splits."""

    half: int  # models per half
    n_models: int


#: fewest models a dense population needs for a noise floor (two halves of >= 2 models)
MIN_NOISE_FLOOR_MODELS = 4


def noise_floor(
    preds: np.ndarray, *, n_splits: int = 20, seed: int | Sequence[int] = 0, tie: str = "lowest", num_classes: int | None = None
) -> NoiseFloor:
    """PIEs between two disjoint random halves of one (dense) population ``preds [M, N]``, ``M >= 4``.

    Raises:
        ValueError: fewer than :data:`MIN_NOISE_FLOOR_MODELS` models.
    """
    preds = as_preds(preds, "preds")
    if preds.shape[0] < MIN_NOISE_FLOOR_MODELS:
        raise ValueError(f"a noise floor needs >= {MIN_NOISE_FLOOR_MODELS} models (two halves of >= 2), got {preds.shape[0]}")
    first, second = split_halves(preds.shape[0], n_splits, seed)
    counts = pie_counts(preds, preds, first, second, tie=tie, num_classes=num_classes)
    return NoiseFloor(counts=counts, half=first.shape[1], n_models=preds.shape[0])


@dataclass(frozen=True)
class MatchedPies(_Counts):
    """PIE counts with both populations at ``size`` models (the larger subsampled), over draws."""

    size: int


def matched_pie_counts(
    dense_preds: np.ndarray,
    pruned_preds: np.ndarray,
    *,
    size: int | None = None,
    n_draws: int = 20,
    seed: int | Sequence[int] = 0,
    tie: str = "lowest",
    num_classes: int | None = None,
) -> MatchedPies:
    """PIE counts of ``size`` dense vs ``size`` pruned models (default: the smaller population's size).

    Each draw subsamples each population without replacement (dense first, then pruned, from one
    ``rng``; a population of exactly ``size`` models is used whole, with its own draws still taken).
    """
    dense = as_preds(dense_preds, "dense_preds")
    pruned = as_preds(pruned_preds, "pruned_preds")
    k = min(dense.shape[0], pruned.shape[0]) if size is None else int(size)
    _check_count("n_draws", n_draws, 1)
    if k > dense.shape[0] or k > pruned.shape[0] or k < 1:
        raise ValueError(f"size={k} must be in [1, min(models)] = [1, {min(dense.shape[0], pruned.shape[0])}]")
    rng = np.random.default_rng(seed)
    ds = np.stack([rng.permutation(dense.shape[0])[:k] for _ in range(n_draws)])
    ps = np.stack([rng.permutation(pruned.shape[0])[:k] for _ in range(n_draws)])
    return MatchedPies(pie_counts(dense, pruned, ds, ps, tie=tie, num_classes=num_classes), k)


__all__ = [
    "MIN_NOISE_FLOOR_MODELS",
    "MatchedPies",
    "NoiseFloor",
    "TIE_RULES",
    "as_preds",
    "matched_pie_counts",
    "mode_differences",
    "noise_floor",
    "one_hot_votes",
    "pie_counts",
    "selection_modes",
    "selection_weights",
    "split_halves",
]
