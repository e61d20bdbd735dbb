"""PIE counts of model selections, and PIEs of ``h`` pruned vs ``h`` dense models beside the noise floor.

Pure NumPy (no Lightning, no torch; of its siblings only :mod:`analysis.intervals`): every function
takes plain arrays, so the tests check it against independent loops on synthetic arrays.
Re-exported by :mod:`analysis.stats`.

**PIE counts of model selections** (:func:`pie_counts`): one-hot votes ``V [M, N·C]`` of a
population's predictions; a selection of models (with repetition: a bootstrap row; without: a
subset) is a weight vector ``w [M]`` (how often each model is chosen), and its votes per sample and
class are ``w @ V``. The modal class is the arg-max (a tie goes to the lowest class index) or, for
``tie="disjoint"``, the set of classes reaching the maximum; a PIE is a sample whose dense and
pruned modes differ (disjoint sets). This is :func:`analysis.pies.pie_flags` on the selected rows,
vectorised over ``B`` selections.

**Counts at one population size, beside the floor of that size** (:class:`DenseSplits`,
:class:`MatchedSplits`). The mode of fewer models flips more often, so a PIE count means something
only beside the PIEs that appear without pruning *at the same size*: the **noise floor** ``h`` vs
``h`` = the PIEs of ``h`` dense models against ``h`` other dense models (disjoint subsets), and the
pruned count ``h`` vs ``h`` = ``h`` dense models against ``h`` pruned ones, from the same dense
subsets. Subsets are drawn without replacement — a model never votes twice, unlike a bootstrap row,
whose repeated models make its mode noisier and its PIE count larger than the population's. With
few models every ``h``-subset is enumerated (the means are then U-statistics: exact, no random
draw); with many, random permutations give matched splits. ``h = min((n_dense - 1) // 2, n_pruned
- 1)`` (:func:`comparison_size`) leaves room to leave any one model out, which the interval over
models needs (:func:`analysis.estimators.pie_comparison`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations
from math import comb

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


#: fewest models a dense population needs for a noise floor: two disjoint groups of 1 with any one left out
MIN_NOISE_FLOOR_MODELS = 3


# ---------------------------------------------------------------------------------------------
# PIEs of h pruned vs h dense models beside the floor of h vs h dense models, for any kept models
# ---------------------------------------------------------------------------------------------
#: enumerate every h-subset of a population when it has at most this many (else random splits)
EXACT_SUBSETS = 126


def comparison_size(n_dense: int, n_pruned: int) -> int:
    """``h = min((n_dense - 1) // 2, n_pruned - 1)``: the largest size at which ``h`` pruned vs ``h``
    dense models and the floor ``h`` vs ``h`` other dense models can still be counted with any one
    model left out (what the jackknife over models needs); 0 when the populations are too small."""
    return max(0, min((int(n_dense) - 1) // 2, int(n_pruned) - 1))


def _tokens(votes: np.ndarray, tie: str) -> np.ndarray:
    """Modal classes of ``votes [B, N, C]`` as bit sets, ``[B, N]`` unsigned ints (``[B, N, K]``
    bytes beyond 64 classes): one bit for the lowest modal class (``tie="lowest"``) or one per tied
    modal class (``"disjoint"``). Two populations' modes make a PIE iff their bit sets share no bit."""
    if tie == "lowest":
        mask = np.zeros(votes.shape, dtype=bool)
        np.put_along_axis(mask, votes.argmax(axis=2)[..., None], True, axis=2)
    else:
        mask = votes == votes.max(axis=2, keepdims=True)
    packed = np.packbits(mask, axis=2, bitorder="little")  # [B, N, ceil(C / 8)] bytes
    k = packed.shape[2]
    if k > 8:
        return packed
    width = 1 if k == 1 else 2 if k == 2 else 4 if k <= 4 else 8
    padded = np.zeros(packed.shape[:2] + (width,), dtype=np.uint8)
    padded[..., :k] = packed
    return padded.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[width])[..., 0]


def _pies(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PIE counts between token rows ``a [A, N(, K)]`` and ``b [B, N(, K)]``, ``int [A, B]``."""
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int64)
    wide = a.ndim == 3
    for i in range(a.shape[0]):
        both = a[i][None] & b
        shared = (both != 0).any(axis=2) if wide else both != 0
        out[i] = (~shared).sum(axis=1)
    return out


def _selection_tokens(preds: np.ndarray, selections: np.ndarray, num_classes: int, tie: str) -> np.ndarray:
    parts = [_tokens(votes, tie) for _, _, votes in _votes_chunks(preds, selections, num_classes)]
    return np.concatenate(parts, axis=0)


class DenseSplits:
    """The dense side of :class:`MatchedSplits`: a dense population's ``h``-subsets and their noise floor.

    With at most :data:`EXACT_SUBSETS` ``h``-subsets, every subset is enumerated: the floor is the
    PIE count of every ordered pair of *disjoint* ``h``-subsets, and the comparison with a pruned
    population uses every subset. With more, ``n_splits`` random permutations of the models are
    drawn (``default_rng(seed)``, one ``permutation`` call each): split ``s`` takes the kept models
    in the order of permutation ``s``, the first ``h`` as ``D1`` and the next ``h`` as ``D2`` (the
    floor is ``D1`` vs ``D2``). Leaving a model out keeps every permutation (common random numbers),
    so the jackknife's replicates differ by the model, not by the draw.
    """

    def __init__(
        self, preds: np.ndarray, h: int, *, tie: str = "lowest", num_classes: int | None = None, n_splits: int = 20,
        seed: int | Sequence[int] = 0,
    ) -> None:  # fmt: skip
        if tie not in TIE_RULES:
            raise ValueError(f"tie={tie!r} is not allowed; choose one of {', '.join(map(repr, TIE_RULES))}")
        self.preds = as_preds(preds, "dense_preds")
        self.n = self.preds.shape[0]
        self.h = _check_count("h", h, 1)
        if 2 * self.h > self.n - 1:
            raise ValueError(f"h={h} needs >= {2 * h + 1} dense models (two disjoint halves with any one left out), got {self.n}")
        self.tie = tie
        self.num_classes = int(self.preds.max()) + 1 if num_classes is None else int(num_classes)
        self.exact = comb(self.n, self.h) <= EXACT_SUBSETS
        if self.exact:
            self.subsets = np.array(list(combinations(range(self.n), self.h)), dtype=np.int64)  # [A, h]
            self.members = np.zeros((len(self.subsets), self.n), dtype=bool)
            self.members[np.arange(len(self.subsets))[:, None], self.subsets] = True
            self.tokens = _selection_tokens(self.preds, self.subsets, self.num_classes, tie)
            self.floor_matrix = _pies(self.tokens, self.tokens)
            self.disjoint = ~(self.members.astype(np.int64) @ self.members.T.astype(np.int64)).astype(bool)
        else:
            _check_count("n_splits", n_splits, 1)
            rng = np.random.default_rng(seed)
            self.perms = np.stack([rng.permutation(self.n) for _ in range(n_splits)])
            self.votes = _RandomVotes(self.preds, self.perms, self.num_classes, (0, self.h, 2 * self.h))

    def floor(self, keep: np.ndarray | None = None) -> np.ndarray:
        """PIE counts of ``h`` vs ``h`` disjoint kept dense models: every disjoint ordered pair of kept
        subsets (exact) or ``D1`` vs ``D2`` of every split (random)."""
        keep = np.arange(self.n) if keep is None else np.asarray(keep)
        if self.exact:
            valid = self.members[:, keep].sum(axis=1) == self.h
            pairs = self.disjoint & valid[:, None] & valid[None, :]
            return self.floor_matrix[pairs]
        d1, d2 = self.halves(keep)
        return _pies_rows(d1, d2)

    def halves(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Random path: the modal tokens of ``D1`` and ``D2`` of every split among the kept models."""
        v1, v2 = self.votes.blocks(keep)
        return _tokens(v1, self.tie), _tokens(v2, self.tie)


class _RandomVotes:
    """Votes of consecutive blocks of positions (``bounds``: ``0, h[, 2h]``) in each of ``S`` random
    permutations of a population, for the kept models in the permutation's order.

    All models kept: one weighted sum per block. One model left out (the jackknife): each block
    loses the model if it was there and takes the model that follows it, so the votes are updated
    by two one-hot rows instead of recounted; any other kept set is recounted.
    """

    def __init__(self, preds: np.ndarray, perms: np.ndarray, num_classes: int, bounds: tuple[int, ...]) -> None:
        self.preds, self.perms, self.c, self.bounds = preds, perms, num_classes, bounds
        self.n, self.samples = preds.shape
        self.onehot = one_hot_votes(preds, num_classes).reshape(self.n, self.samples, num_classes)
        self.position = np.argsort(perms, axis=1)  # [S, n]: where model m sits in permutation s
        self.full = self._count(perms)

    def _count(self, order: np.ndarray) -> list[np.ndarray]:
        out = []
        for lo, hi in zip(self.bounds[:-1], self.bounds[1:]):
            weights = selection_weights(order[:, lo:hi], self.n)
            flat = self.onehot.reshape(self.n, -1)
            out.append((weights @ flat).reshape(order.shape[0], self.samples, self.c))
        return out

    def blocks(self, keep: np.ndarray) -> list[np.ndarray]:
        keep = np.asarray(keep)
        if len(keep) == self.n:
            return self.full
        if len(keep) == self.n - 1:
            (left,) = np.setdiff1d(np.arange(self.n), keep)
            pos = self.position[:, left]  # [S]
            rows = np.arange(self.perms.shape[0])
            out = []
            for block, (lo, hi) in zip(self.full, zip(self.bounds[:-1], self.bounds[1:])):
                # the block loses perm[hi] to the one before it when the left-out model sits before hi,
                # and loses the left-out model itself when it sits inside the block
                gains = pos < hi
                loses_own = (pos >= lo) & (pos < hi)
                loses_first = pos < lo
                delta = np.zeros_like(block)
                nxt = self.perms[rows, np.minimum(hi, self.n - 1)]
                first = self.perms[rows, lo]
                delta[gains] += self.onehot[nxt[gains]]
                delta[loses_own] -= self.onehot[left]
                delta[loses_first] -= self.onehot[first[loses_first]]
                out.append(block + delta)
            return out
        inside = np.isin(self.perms, keep)
        return self._count(self.perms[inside].reshape(self.perms.shape[0], len(keep)))


def _pies_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PIE counts row by row between token arrays of equal shape ``[S, N(, K)]``, ``int [S]``."""
    both = a & b
    shared = (both != 0).any(axis=2) if a.ndim == 3 else both != 0
    return (~shared).sum(axis=1).astype(np.int64)


class MatchedSplits:
    """PIEs of ``h`` pruned vs ``h`` dense models and, from the same dense subsets, the noise floor of
    ``h`` vs ``h`` other dense models — counts at one population size, for any kept models.

    Exact (both populations have at most :data:`EXACT_SUBSETS` ``h``-subsets): the pruned counts are
    those of every (dense subset, pruned subset) pair, the floor every disjoint pair of dense subsets
    (:class:`DenseSplits`); their means are the U-statistics ``E[PIEs(h dense, h pruned)]`` and
    ``E[PIEs(h dense, h other dense)]`` of these models. Random: split ``s`` pairs the dense ``D1``
    of :class:`DenseSplits` with the first ``h`` kept pruned models of the ``s``-th pruned
    permutation (drawn after the dense ones' seed, ``default_rng(seed)`` again for the pruned side's
    own permutations), so the pruned count and the floor of a split share ``D1``.
    """

    def __init__(
        self, dense: DenseSplits, pruned_preds: np.ndarray, *, seed: int | Sequence[int] = 0, n_random: int = 20
    ) -> None:
        self.dense = dense
        self.preds = as_preds(pruned_preds, "pruned_preds")
        if self.preds.shape[1] != dense.preds.shape[1]:
            raise ValueError(
                f"dense_preds covers {dense.preds.shape[1]} samples and pruned_preds {self.preds.shape[1]}; they must be the same test set"
            )
        self.n = self.preds.shape[0]
        self.h = dense.h
        if self.h > self.n - 1:
            raise ValueError(f"h={self.h} needs >= {self.h + 1} pruned models (any one left out), got {self.n}")
        c = max(dense.num_classes, int(self.preds.max()) + 1)
        if c > dense.num_classes:
            raise ValueError(f"pruned_preds holds class {c - 1}, but the dense side has num_classes={dense.num_classes}")
        self.exact = dense.exact and comb(self.n, self.h) <= EXACT_SUBSETS
        if self.exact:
            self.subsets = np.array(list(combinations(range(self.n), self.h)), dtype=np.int64)
            self.members = np.zeros((len(self.subsets), self.n), dtype=bool)
            self.members[np.arange(len(self.subsets))[:, None], self.subsets] = True
            tokens = _selection_tokens(self.preds, self.subsets, dense.num_classes, dense.tie)
            self.cross = _pies(dense.tokens, tokens)  # [A_dense, A_pruned]
        else:
            n_splits = dense.perms.shape[0] if not dense.exact else n_random
            _check_count("n_random", n_splits, 1)
            rng = np.random.default_rng(seed)
            self.perms = np.stack([rng.permutation(self.n) for _ in range(n_splits)])
            self.votes = _RandomVotes(self.preds, self.perms, dense.num_classes, (0, self.h))

    def counts(self, keep_dense: np.ndarray | None = None, keep_pruned: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(pruned counts, floor counts)`` of ``h`` vs ``h`` models among the kept ones (default all)."""
        kd = np.arange(self.dense.n) if keep_dense is None else np.asarray(keep_dense)
        kp = np.arange(self.n) if keep_pruned is None else np.asarray(keep_pruned)
        if self.exact:
            vd = self.dense.members[:, kd].sum(axis=1) == self.h
            vp = self.members[:, kp].sum(axis=1) == self.h
            return self.cross[np.ix_(vd, vp)].ravel(), self.dense.floor(kd)
        (vp_votes,) = self.votes.blocks(kp)
        p = _tokens(vp_votes, self.dense.tie)
        if self.dense.exact:  # every kept dense subset against the random pruned subsets
            vd = self.dense.members[:, kd].sum(axis=1) == self.h
            return _pies(self.dense.tokens[vd], p).ravel(), self.dense.floor(kd)
        d1, d2 = self.dense.halves(kd)
        return _pies_rows(d1, p), _pies_rows(d1, d2)

    def excess(self, keep_dense: np.ndarray | None = None, keep_pruned: np.ndarray | None = None) -> float:
        """Mean pruned count − mean floor count (PIEs above the noise floor at ``h`` vs ``h``)."""
        pruned, floor = self.counts(keep_dense, keep_pruned)
        return float(pruned.mean() - floor.mean())


__all__ = [
    "EXACT_SUBSETS", "MIN_NOISE_FLOOR_MODELS", "DenseSplits", "MatchedSplits", "TIE_RULES", "as_preds",
    "comparison_size", "mode_differences", "one_hot_votes", "pie_counts", "selection_modes", "selection_weights",
]  # fmt: skip
