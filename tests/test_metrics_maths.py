"""Metric maths against independent references: Q-Score (NumPy), prediction depth (loop), k-NN (sklearn)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from callbacks.metrics.per_sample import dedup_sort, merge_arrays, merge_into_npz, read_npz
from callbacks.metrics.prediction_depth import knn_predict, prediction_depth
from callbacks.metrics.q_score import q_score


# -- Q-Score ----------------------------------------------------------------------------------
def q_score_numpy(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """REFERENCE §3 row by row in float64: ĥ = h/‖h‖₂, Z = (max−mean)/std (ddof 0), Q = Z/‖ĥ‖₁."""
    qs, zs, l1s = [], [], []
    for row in h.astype(np.float64):
        norm = np.sqrt(np.sum(row**2))
        unit = row / norm if norm > 0 else row * 0.0
        l1 = np.sum(np.abs(unit))
        if np.all(row == row[0]):  # documented degenerate case: no spread
            z = q = 0.0
        else:
            z = (unit.max() - unit.mean()) / np.std(unit, ddof=0)
            q = z / l1
        qs.append(q), zs.append(z), l1s.append(l1)
    return np.array(qs), np.array(zs), np.array(l1s)


@pytest.mark.parametrize("dim", [2, 7, 128])
def test_q_score_matches_numpy(dim: int) -> None:
    rng = np.random.default_rng(dim)
    h = np.concatenate([rng.normal(size=(20, dim)), np.abs(rng.normal(size=(10, dim))) * rng.exponential(size=(10, dim))])
    q, z, l1 = q_score(torch.from_numpy(h).float())
    q_ref, z_ref, l1_ref = q_score_numpy(h.astype(np.float32))
    np.testing.assert_allclose(q.numpy(), q_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z.numpy(), z_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l1.numpy(), l1_ref, rtol=1e-5, atol=1e-6)
    # float64 input is computed in float64
    q64, _, _ = q_score(torch.from_numpy(h))
    assert q64.dtype == torch.float64
    np.testing.assert_allclose(q64.numpy(), q_score_numpy(h)[0], rtol=1e-12)


def test_q_score_degenerate_rows_are_defined() -> None:
    h = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 3.0, 0.0], [-1.0, -1.0, -1.0, -1.0]])
    q, z, l1 = q_score(h)
    assert torch.isfinite(q).all() and torch.isfinite(z).all() and torch.isfinite(l1).all()
    assert q[0] == 0 and z[0] == 0 and l1[0] == 0  # zero vector
    assert q[1] == 0 and z[1] == 0 and l1[1] == pytest.approx(2.0)  # constant: ĥ = 1/√4 each, ‖ĥ‖₁ = √4
    # one-hot: ĥ = e_3, mean 1/4, std sqrt(3)/4 -> Z = (3/4)/(sqrt(3)/4) = sqrt(3), ‖ĥ‖₁ = 1
    assert z[2].item() == pytest.approx(np.sqrt(3.0)) and l1[2].item() == pytest.approx(1.0) and q[2].item() == pytest.approx(np.sqrt(3.0))
    assert q[3] == 0 and z[3] == 0
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        q_score(torch.zeros(3))


def test_q_score_is_scale_invariant() -> None:
    h = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    for a, b in zip(q_score(h), q_score(h * 37.5)):
        torch.testing.assert_close(a, b)


# -- prediction depth -------------------------------------------------------------------------
def depth_loop(preds: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Spelled out: walk the probes; remember the 0-based position of the last disagreement; +1."""
    out = np.zeros(preds.shape[1], dtype=np.int64)
    for n in range(preds.shape[1]):
        last = 0
        for p in range(preds.shape[0]):
            if preds[p, n] != ref[n]:
                last = p
        out[n] = last + 1
    return out


def test_prediction_depth_hand_computed() -> None:
    ref = torch.tensor([3, 3, 3, 3, 3])
    preds = torch.tensor(
        [
            # probe 0 .. 3 (columns = samples)
            [3, 1, 3, 1, 0],
            [3, 3, 2, 1, 0],
            [3, 3, 3, 1, 3],
            [3, 3, 3, 3, 3],
        ]
    )
    # sample 0: never differs -> 1; 1: last differs at 0 -> 1; 2: at 1 -> 2; 3: at 2 -> 3; 4: at 1 -> 2
    assert prediction_depth(preds, ref).tolist() == [1, 1, 2, 3, 2]
    # differing at the last probe gives the maximum depth P
    assert prediction_depth(torch.tensor([[3], [3], [3], [0]]), torch.tensor([3])).tolist() == [4]


def test_prediction_depth_matches_loop() -> None:
    rng = np.random.default_rng(1)
    preds = rng.integers(0, 3, size=(16, 500))
    ref = rng.integers(0, 3, size=500)
    preds[:, :50] = ref[:50]  # some samples agree everywhere
    depth = prediction_depth(torch.from_numpy(preds), torch.from_numpy(ref))
    assert depth.dtype == torch.long
    np.testing.assert_array_equal(depth.numpy(), depth_loop(preds, ref))
    assert depth.min() >= 1 and depth.max() <= 16


def test_prediction_depth_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[P, N\]"):
        prediction_depth(torch.zeros(3, 4, dtype=torch.long), torch.zeros(5, dtype=torch.long))


# -- k-NN -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "classes", "dim"), [(1, 3, 5), (4, 2, 3), (6, 3, 8), (30, 10, 16)])
def test_knn_matches_sklearn(k: int, classes: int, dim: int) -> None:
    rng = np.random.default_rng(k * 100 + classes)
    train = rng.normal(size=(300, dim))
    labels = rng.integers(0, classes, size=300)
    query = rng.normal(size=(257, dim))
    expected = KNeighborsClassifier(n_neighbors=k).fit(train, labels).predict(query)
    # tiny chunk budget: several query chunks of 5 rows each
    got = knn_predict(torch.from_numpy(train), torch.from_numpy(labels), torch.from_numpy(query), k=k, chunk_bytes=5 * 8 * 300)
    np.testing.assert_array_equal(got.numpy(), expected)
    # float32 input gives the same answer (distances are computed in float64)
    got32 = knn_predict(torch.from_numpy(train).float(), torch.from_numpy(labels), torch.from_numpy(query).float(), k=k)
    np.testing.assert_array_equal(got32.numpy(), expected)


def test_knn_vote_ties_go_to_lowest_class_like_sklearn() -> None:
    rng = np.random.default_rng(7)
    train = rng.normal(size=(200, 2))
    labels = rng.integers(0, 4, size=200)
    query = rng.normal(size=(400, 2))
    k = 4
    model = KNeighborsClassifier(n_neighbors=k).fit(train, labels)
    neighbours = model.kneighbors(query, return_distance=False)
    counts = np.stack([np.bincount(labels[row], minlength=4) for row in neighbours])
    tied = (counts == counts.max(axis=1, keepdims=True)).sum(axis=1) > 1
    assert tied.sum() > 50  # the case under test really happens
    got = knn_predict(torch.from_numpy(train), torch.from_numpy(labels), torch.from_numpy(query), k=k).numpy()
    np.testing.assert_array_equal(got, model.predict(query))
    np.testing.assert_array_equal(got[tied], counts[tied].argmax(axis=1))  # argmax = lowest tied class


def test_knn_distance_ties_take_earlier_training_points() -> None:
    # three training points at the same distance 1 from the query; k=2 takes positions 0 and 1
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [5.0, 5.0]])
    query = torch.zeros(1, 2)
    assert knn_predict(train, torch.tensor([2, 2, 1, 1]), query, k=2).tolist() == [2]
    assert knn_predict(train, torch.tensor([1, 2, 2, 0]), query, k=2).tolist() == [1]  # vote tie 1:1 -> class 1
    assert knn_predict(train, torch.tensor([2, 1, 1, 0]), query, k=3).tolist() == [1]
    with pytest.raises(ValueError, match="k=5"):
        knn_predict(train, torch.tensor([0, 0, 1, 1]), query, k=5)


def test_knn_many_distance_ties_match_stable_sort_reference() -> None:
    # integer grid points: many exactly equal distances, computed exactly in float64
    rng = np.random.default_rng(3)
    train = rng.integers(-2, 3, size=(120, 2)).astype(np.float64)
    labels = rng.integers(0, 3, size=120)
    query = rng.integers(-2, 3, size=(60, 2)).astype(np.float64)
    for k in (1, 5, 12):
        expected = []
        for q in query:
            d = ((train - q) ** 2).sum(axis=1)
            nearest = np.argsort(d, kind="stable")[:k]  # ties: earlier training point first
            expected.append(np.bincount(labels[nearest], minlength=3).argmax())  # ties: lowest class
        got = knn_predict(torch.from_numpy(train), torch.from_numpy(labels), torch.from_numpy(query), k=k, chunk_bytes=8 * 120 * 7)
        np.testing.assert_array_equal(got.numpy(), np.array(expected), err_msg=f"k={k}")


# -- per-sample store maths -------------------------------------------------------------------
def test_dedup_sort_and_merge(tmp_path) -> None:
    arrays = {"index": np.array([4, 1, 3, 1, 0, 4]), "pred": np.array([9, 8, 7, 8, 6, 9])}
    out = dedup_sort(arrays)
    np.testing.assert_array_equal(out["index"], [0, 1, 3, 4])
    np.testing.assert_array_equal(out["pred"], [6, 8, 7, 9])
    path = tmp_path / "per_sample" / "test.npz"
    merge_into_npz(path, out)
    merge_into_npz(path, {"index": out["index"], "q_score": np.array([0.1, 0.2, 0.3, 0.4])})
    stored = read_npz(path)
    assert sorted(stored) == ["index", "pred", "q_score"]
    np.testing.assert_array_equal(stored["pred"], [6, 8, 7, 9])
    with pytest.raises(ValueError, match="differ"):
        merge_arrays(stored, {"index": np.array([0, 1]), "x": np.array([1, 2])})
    with pytest.raises(ValueError, match="rows"):
        dedup_sort({"index": np.array([0, 1]), "x": np.array([1])})
    assert not list(path.parent.glob(".*tmp"))  # no temporary files left behind
