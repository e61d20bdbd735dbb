"""Per-sample arrays keyed by dataset index: de-duplicate, merge, read and write ``.npz`` files.

Every array has one row per sample; ``index`` (the dataset index) is the key. :func:`dedup_sort`
keeps one row per index, sorted (``DistributedSampler`` pads the last batch with repeated samples);
:func:`merge_into_npz` adds a callback's columns to a stage's file (atomic rename), keeping the
columns other callbacks wrote after checking the ``index`` columns are equal. A file that holds a
*different* index set (a stale file from an earlier ``test`` on other data in the same run folder)
is replaced with a warning instead of being mixed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.utilities import rank_zero_warn

from common.io import atomic_write_bytes

INDEX = "index"


def dedup_sort(arrays: Mapping[str, np.ndarray], key: str = INDEX) -> dict[str, np.ndarray]:
    """Keep the first row of every distinct ``arrays[key]`` value and sort all arrays by it.

    Args:
        arrays: equal-length arrays ``[N, ...]``; ``arrays[key]`` is an integer ``[N]``.

    Returns:
        The same keys with ``[M, ...]`` rows, ``M`` = number of distinct keys, ascending ``key``.
    """
    if key not in arrays:
        raise KeyError(f"per-sample arrays need an {key!r} column, got {sorted(arrays)}")
    index = np.asarray(arrays[key])
    _check_rows(arrays, len(index))
    _, first = np.unique(index, return_index=True)  # sorted unique values, first occurrence of each
    return {name: np.asarray(value)[first] for name, value in arrays.items()}


def merge_arrays(old: Mapping[str, np.ndarray], new: Mapping[str, np.ndarray], key: str = INDEX) -> dict[str, np.ndarray]:
    """Add ``new``'s arrays to ``old``'s (``new`` wins on equal names); both must have equal ``key`` columns.

    Raises:
        ValueError: if the ``key`` columns differ (different sample sets cannot be merged row-wise).
    """
    if key in old and not np.array_equal(np.asarray(old[key]), np.asarray(new[key])):
        raise ValueError(
            f"cannot merge per-sample arrays: {key!r} columns differ (existing {len(old[key])} rows, new {len(new[key])} rows)"
        )
    return {**old, **new}


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def merge_into_npz(path: Path, arrays: Mapping[str, np.ndarray], key: str = INDEX) -> dict[str, np.ndarray]:
    """Merge ``arrays`` into the ``.npz`` at ``path`` (created if absent) with an atomic rename.

    Arrays already in the file and not in ``arrays`` are kept when the ``key`` columns are equal;
    if they differ the file is replaced by ``arrays`` alone (with a warning). Returns what was written.
    """
    _check_rows(arrays, len(arrays[key]))
    merged = dict(arrays)
    if path.exists():
        old = read_npz(path)
        try:
            merged = merge_arrays(old, arrays, key)
        except ValueError as err:
            rank_zero_warn(f"{path}: {err}; replacing the file's arrays {sorted(old)} with {sorted(arrays)}")
    buffer = io.BytesIO()
    np.savez(buffer, **merged)
    atomic_write_bytes(path, buffer.getvalue())
    return merged


def _check_rows(arrays: Mapping[str, Any], n: int) -> None:
    for name, value in arrays.items():
        if len(value) != n:
            raise ValueError(f"per-sample array {name!r} has {len(value)} rows, expected {n}")


__all__ = ["INDEX", "dedup_sort", "merge_arrays", "merge_into_npz", "read_npz"]
