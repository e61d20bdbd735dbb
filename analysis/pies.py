"""Pruning Identified Exemplars (Hooker et al. 2019) over populations of models (REFERENCE §3).

For test image ``i``: ``y_{i,0}`` = modal predicted class of the dense models, ``y_{i,t}`` = modal
predicted class of the models pruned to sparsity ``t``; ``PIE_{i,t} = 1`` iff ``y_{i,0} != y_{i,t}``.
The true label is not involved.

Ties in the mode (two or more classes predicted by equally many models) are resolved by ``tie``:

* ``"lowest"`` (default, the [CORTI] authors' code: ``np.bincount(preds).argmax()``): the lowest
  class index among the tied classes is the modal label; then compare the two labels.
* ``"disjoint"``: each population's modal label is the *set* of tied classes; a sample is a PIE
  only if the two sets share no class. A tie can then never make a PIE by an arbitrary choice,
  so this counts fewer PIEs on small populations (where ties are common) and equals ``"lowest"``
  wherever neither population is tied.

The maths (:func:`pie_flags`, :func:`modal_labels`, :func:`overlap`, ...) is pure NumPy on
``[models, N]`` integer prediction arrays; :func:`pies_per_setting` and :func:`shared_pies` apply it
to the populations of :mod:`analysis.runs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.runs import Population, Setting
from analysis.stats import as_preds
from common.run_folder import method_key  # the one ordering (re-exported)

TIE_RULES = ("lowest", "disjoint")


def class_counts(preds: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Votes per class ``[N, C]``: how many of the ``models`` rows of ``preds`` ``[models, N]`` predict each class."""
    preds = as_preds(preds, "preds")
    c = int(preds.max()) + 1 if num_classes is None else int(num_classes)
    if preds.size and int(preds.max()) >= c:
        raise ValueError(f"preds holds class {int(preds.max())}, but num_classes={c}")
    n = preds.shape[1]
    counts = np.zeros((n, c), dtype=np.int64)
    cols = np.broadcast_to(np.arange(n), preds.shape)
    np.add.at(counts, (cols.ravel(), preds.ravel()), 1)
    return counts


def modal_labels(preds: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Modal predicted class per sample ``[N]``; a tie goes to the lowest class index."""
    return class_counts(preds, num_classes).argmax(axis=1)  # argmax returns the first (lowest) maximum


def modal_sets(preds: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Boolean ``[N, C]``: the classes that reach the maximal vote count of each sample (all tied modes)."""
    counts = class_counts(preds, num_classes)
    return counts == counts.max(axis=1, keepdims=True)


def pie_flags(
    dense_preds: np.ndarray, pruned_preds: np.ndarray, *, tie: str = "lowest", num_classes: int | None = None
) -> np.ndarray:
    """PIE flag per test sample.

    Args:
        dense_preds: predicted classes of the dense models ``[models_dense, N]`` (or ``[N]`` for one model).
        pruned_preds: predicted classes of the pruned models ``[models_pruned, N]``; the two
            populations may differ in size but must cover the same ``N`` samples in the same order.
        tie: ``"lowest"`` or ``"disjoint"`` (module docstring).
        num_classes: number of classes (default: the largest predicted class + 1).

    Returns:
        ``bool [N]``, True where the dense and pruned modal labels differ.
    """
    if tie not in TIE_RULES:
        raise ValueError(f"tie={tie!r} is not allowed; choose one of {', '.join(map(repr, TIE_RULES))}")
    dense = as_preds(dense_preds, "dense_preds")
    pruned = as_preds(pruned_preds, "pruned_preds")
    if dense.shape[1] != pruned.shape[1]:
        raise ValueError(
            f"dense_preds covers {dense.shape[1]} samples and pruned_preds {pruned.shape[1]}; they must be the same test set"
        )
    c = max(int(dense.max()), int(pruned.max())) + 1 if num_classes is None else int(num_classes)
    if tie == "lowest":
        return modal_labels(dense, c) != modal_labels(pruned, c)
    return ~(modal_sets(dense, c) & modal_sets(pruned, c)).any(axis=1)


def per_class_counts(flags: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Number of flagged samples per true class ``[C]`` (the per-class PIE distribution)."""
    flags = np.asarray(flags, dtype=bool)
    labels = np.asarray(labels, dtype=np.int64)
    if flags.shape != labels.shape:
        raise ValueError(f"flags {flags.shape} and labels {labels.shape} must have the same shape")
    return np.bincount(labels[flags], minlength=num_classes)[:num_classes] if num_classes else np.zeros(0, np.int64)


@dataclass(frozen=True)
class Overlap:
    """PIEs of two methods at the same setting: shared (both) and unique to each."""

    shared: np.ndarray
    only_a: np.ndarray
    only_b: np.ndarray

    @property
    def counts(self) -> tuple[int, int, int]:
        """``(shared, only_a, only_b)`` counts."""
        return int(self.shared.sum()), int(self.only_a.sum()), int(self.only_b.sum())


def overlap(flags_a: np.ndarray, flags_b: np.ndarray) -> Overlap:
    """Split two PIE flag vectors ``[N]`` into shared (``a & b``) and unique (``a & ~b``, ``b & ~a``) parts."""
    a = np.asarray(flags_a, dtype=bool)
    b = np.asarray(flags_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"PIE flags of different shapes {a.shape} and {b.shape}: not the same test set")
    return Overlap(shared=a & b, only_a=a & ~b, only_b=b & ~a)


__all__ = [
    "TIE_RULES",
    "Overlap",
    "class_counts",
    "modal_labels",
    "modal_sets",
    "overlap",
    "per_class_counts",
    "pie_flags",
]


# ---------------------------------------------------------------------------------------------
# populations -> PIEs per setting, per class, shared between methods
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SettingPies:
    """The PIEs of one pruned population against the dense population of its method and dataset."""

    setting: Setting
    flags: np.ndarray  # bool [N]
    labels: np.ndarray  # int [N], true labels (for the per-class split only)
    index: np.ndarray  # int [N], dataset indices
    n_dense: int
    n_pruned: int
    num_classes: int

    @property
    def count(self) -> int:
        return int(self.flags.sum())

    @property
    def per_class(self) -> np.ndarray:
        return per_class_counts(self.flags, self.labels, self.num_classes)


def pies_per_setting(populations: dict[Setting, Population], *, tie: str = "lowest") -> dict[Setting, SettingPies]:
    """PIEs of every pruned population that has a dense population (same dataset and method)."""
    out: dict[Setting, SettingPies] = {}
    for setting, pop in populations.items():
        dense = populations.get(setting.dense)
        if setting.is_dense or dense is None:
            continue
        c = max(pop.num_classes, dense.num_classes)
        flags = pie_flags(dense.preds(), pop.preds(), tie=tie, num_classes=c)
        out[setting] = SettingPies(setting, flags, pop.labels, pop.index, dense.n, pop.n, c)
    return out


@dataclass(frozen=True)
class SharedPies:
    """PIEs of two methods under the same (dataset, pruning schedule, sparsity): shared vs unique."""

    a: SettingPies
    b: SettingPies
    overlap: Overlap

    @property
    def dataset(self) -> str:
        return self.a.setting.dataset

    def per_class(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(shared, only_a, only_b)`` counts per true class ``[C]`` each."""
        c, labels = self.a.num_classes, self.a.labels
        return (
            per_class_counts(self.overlap.shared, labels, c),
            per_class_counts(self.overlap.only_a, labels, c),
            per_class_counts(self.overlap.only_b, labels, c),
        )


def same_cell_groups(pies: dict[Setting, SettingPies]) -> dict[tuple[str, str, float], list[SettingPies]]:
    """The PIE results of the methods pruned with one schedule to one sparsity, keyed (and sorted) by
    ``(dataset, pruning, sparsity)``, each group sorted by method: the one definition of "the other
    methods" that the shared-PIE table, the per-class table and the per-class figures all use."""
    by_cell: dict[tuple[str, str, float], list[SettingPies]] = {}
    for setting, result in pies.items():
        by_cell.setdefault((setting.dataset, setting.pruning, setting.sparsity), []).append(result)
    return {key: sorted(by_cell[key], key=lambda r: method_key(r.setting.method)) for key in sorted(by_cell)}


def shared_with_other_methods(pies: dict[Setting, SettingPies]) -> dict[Setting, np.ndarray | None]:
    """bool ``[N]`` per setting: its PIEs that are also PIEs of another method in its
    :func:`same_cell_groups` group; ``None`` where no other method has PIEs there."""
    out: dict[Setting, np.ndarray | None] = {}
    for members in same_cell_groups(pies).values():
        for result in members:
            others = [o.flags for o in members if o is not result]
            out[result.setting] = result.flags & np.logical_or.reduce(others) if others else None
    return out


def shared_pies(pies: dict[Setting, SettingPies]) -> list[SharedPies]:
    """Every pair of methods with PIEs at the same (dataset, pruning, sparsity), e.g. Sup ∩ SCL at GMP 90%."""
    pairs: list[SharedPies] = []
    for members in same_cell_groups(pies).values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                pairs.append(SharedPies(a, b, overlap(a.flags, b.flags)))
    return pairs


__all__ += [
    "SettingPies", "SharedPies", "method_key", "pies_per_setting", "same_cell_groups", "shared_pies",
    "shared_with_other_methods",
]  # fmt: skip
