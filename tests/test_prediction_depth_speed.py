"""The fast prediction-depth path gives exactly what the slow one gave.

* the float32-shortlist k-NN equals the all-float64 k-NN bit for bit, on data full of exact ties
  (integer embeddings, duplicates) and on real-valued data, and scikit-learn where ties cannot occur;
* ``forward_with_probes`` is ``forward`` + ``probe_features`` in one pass (``torch.equal``);
* the callback's ``pd_score`` is the same whether the probes come from ``test_step``'s outputs
  (one forward pass) or from a second ``probe_features`` call, on a real WRN-10-1 + datamodule run;
* the options around it: ``train_augmentation`` (and the deprecated ``augment``), both
  ``probe_train_dataloader`` signatures, progress lines on rank 0 only, the new run.json timings.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

import callbacks.metrics.prediction_depth  # noqa: F401  (the module; the package re-exports a function of that name)
from callbacks.metrics.per_sample import read_npz
from callbacks.metrics.prediction_depth import knn_predict, knn_predict_float64
from callbacks.metrics.prediction_depth_callback import PredictionDepth
from callbacks.metrics.stage_progress import StageProgress
from datamodules.synthetic import SyntheticDataModule
from lightning_modules import SupervisedClassifier
from lightning_modules.backbones import ResNet18, WideResNet

pd_module = sys.modules["callbacks.metrics.prediction_depth"]


@pytest.fixture
def fallback_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the query rows the fast path hands to the float64 fallback (so a test is not vacuous)."""
    rows: list[int] = []
    original = pd_module._knn_float64

    def counting(bank, labels, query, *args):
        rows.append(len(query))
        return original(bank, labels, query, *args)

    monkeypatch.setattr(pd_module, "_knn_float64", counting)
    return rows


def _both(train: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, k: int, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return knn_predict(train, labels, query, k=k, **kw), knn_predict_float64(train, labels, query, k=k)


# -- the k-NN ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "dim", "values"), [(1, 2, 2), (5, 3, 3), (30, 8, 2), (12, 16, 1)])
def test_fast_knn_equals_float64_bit_for_bit_on_integer_ties(k: int, dim: int, values: int, fallback_rows: list[int]) -> None:
    # integer grid points: exact float arithmetic, so thousands of exactly equal distances, at the
    # k-th neighbour too; both paths must take the earlier training points and the lowest class
    rng = np.random.default_rng(k * 10 + dim)
    n, m = 4000, 600
    train = torch.from_numpy(rng.integers(-values, values + 1, size=(n, dim)).astype(np.float32))
    query = torch.from_numpy(rng.integers(-values, values + 1, size=(m, dim)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 5, size=n))
    fast, slow = _both(train, labels, query, k, chunk_bytes=4 * 4096 * 50)  # several chunks of 50 rows
    assert torch.equal(fast, slow)
    stable = []  # independent: stable argsort (earlier point first), bincount argmax (lowest class)
    for q in query.double().numpy():
        d = ((train.double().numpy() - q) ** 2).sum(axis=1)
        stable.append(np.bincount(labels.numpy()[np.argsort(d, kind="stable")[:k]], minlength=5).argmax())
    np.testing.assert_array_equal(fast.numpy(), np.array(stable))


def test_fast_knn_uses_the_shortlist_on_ties_and_falls_back_only_where_needed(fallback_rows: list[int]) -> None:
    rng = np.random.default_rng(0)
    train = torch.from_numpy(rng.integers(-3, 4, size=(5000, 24)).astype(np.float64))
    query = torch.from_numpy(rng.integers(-3, 4, size=(500, 24)).astype(np.float64))
    labels = torch.from_numpy(rng.integers(0, 7, size=5000))
    fast = knn_predict(train, labels, query, k=30)
    fell_back = sum(fallback_rows)
    assert torch.equal(fast, knn_predict_float64(train, labels, query, k=30))
    assert 0 < fell_back < len(query) // 2  # most rows certified by the shortlist, some not


def test_fast_knn_equals_float64_with_duplicates_and_offsets(fallback_rows: list[int]) -> None:
    gen = torch.Generator().manual_seed(1)
    prototypes = torch.randn(150, 20, generator=gen)
    train = prototypes[torch.randint(0, 150, (4000,), generator=gen)]  # every point repeated ~27 times
    query = torch.cat([prototypes[torch.randint(0, 150, (200,), generator=gen)], torch.randn(200, 20, generator=gen)])
    labels = torch.randint(0, 10, (4000,), generator=gen)
    fast, slow = _both(train, labels, query, 30)
    assert torch.equal(fast, slow)
    # a large common offset (post-ReLU features), tiny and huge scales: the shortlist still certifies
    for shift, scale in ((1e4, 1.0), (0.0, 1e-30), (0.0, 1e30)):
        x = torch.randn(4000, 32, generator=gen, dtype=torch.float64) * scale + shift
        q = torch.randn(300, 32, generator=gen, dtype=torch.float64) * scale + shift
        fallback_rows.clear()
        fast = knn_predict(x, labels, q, k=30)
        assert sum(fallback_rows) < 30, (shift, scale)
        assert torch.equal(fast, knn_predict_float64(x, labels, q, k=30)), (shift, scale)


@pytest.mark.parametrize("dim", [16, 64])
def test_fast_knn_matches_sklearn(dim: int, fallback_rows: list[int]) -> None:
    rng = np.random.default_rng(dim)
    train = rng.normal(size=(5000, dim))
    labels = rng.integers(0, 10, size=5000)
    query = rng.normal(size=(700, dim))
    expected = KNeighborsClassifier(n_neighbors=30).fit(train, labels).predict(query)
    got = knn_predict(torch.from_numpy(train).float(), torch.from_numpy(labels), torch.from_numpy(query).float(), k=30)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert sum(fallback_rows) == 0  # all certified by the float32 shortlist


def test_fast_knn_small_blocks_match_sklearn_and_vote_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    # tiny blocks put even a 300-point bank through the shortlist; vote ties -> lowest class
    monkeypatch.setattr(pd_module, "_BLOCK", 4)
    rng = np.random.default_rng(7)
    train, labels, query = rng.normal(size=(300, 2)), rng.integers(0, 4, size=300), rng.normal(size=(400, 2))
    for k in (1, 4, 9):
        expected = KNeighborsClassifier(n_neighbors=k).fit(train, labels).predict(query)
        got = knn_predict(torch.from_numpy(train), torch.from_numpy(labels), torch.from_numpy(query), k=k, chunk_bytes=4 * 300 * 7)
        np.testing.assert_array_equal(got.numpy(), expected, err_msg=f"k={k}")


def test_fast_knn_keeps_the_reduced_precision_settings_of_the_user() -> None:
    before = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        rng = np.random.default_rng(2)
        x, q = torch.from_numpy(rng.normal(size=(4000, 16))), torch.from_numpy(rng.normal(size=(100, 16)))
        y = torch.from_numpy(rng.integers(0, 3, size=4000))
        assert torch.equal(knn_predict(x, y, q, k=30), knn_predict_float64(x, y, q, k=30))
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"  # restored afterwards
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = before


# -- one forward pass -------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: WideResNet(16, 2), lambda: WideResNet(10, 1), ResNet18], ids=["wrn16_2", "wrn10_1", "resnet18"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_forward_with_probes_is_forward_plus_probe_features(make: Any, channels_last: bool) -> None:
    torch.manual_seed(0)
    encoder = make().eval()
    x = torch.randn(3, 3, 32, 32)
    if channels_last:
        encoder = encoder.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        h, probes = encoder.forward_with_probes(x)
        assert torch.equal(h, encoder(x))
        expected = encoder.probe_features(x)
    assert len(probes) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(probes, expected))


def _module() -> SupervisedClassifier:
    torch.manual_seed(0)
    return SupervisedClassifier(backbone="wrn", depth=10, widen_factor=1, channels_last=True)


def test_eval_step_returns_probes_only_when_asked() -> None:
    module = _module().eval()
    batch = {"index": torch.arange(4), "label": torch.zeros(4, dtype=torch.long), "image": torch.randn(4, 3, 32, 32)}
    with torch.inference_mode():
        plain = module._eval_step(batch)
        assert "probes" not in plain
        module.collect_probes = True
        out = module._eval_step(batch)
        expected = module.probe_features(batch["image"])
    assert torch.equal(out["features"], plain["features"]) and torch.equal(out["logits"], plain["logits"])
    assert all(torch.equal(a, b) for a, b in zip(out["probes"], expected))


class NoProbeOutputs(SupervisedClassifier):
    """A module that never returns its probes: the callback must call probe_features itself."""

    def _eval_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        out = super()._eval_step(batch)
        out.pop("probes", None)
        return out


def _tiny_run(root: Path, module: pl.LightningModule, **pd_kwargs: Any) -> tuple[PredictionDepth, dict[str, np.ndarray]]:
    data = SyntheticDataModule(train_size=150, test_size=40, batch_size=32, eval_batch_size=16, num_workers=0)
    callback = PredictionDepth(k=5, bank_batch_size=48, **pd_kwargs)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, default_root_dir=str(root), callbacks=[callback], logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )
    trainer.test(module, datamodule=data, verbose=False)
    return callback, read_npz(root / "per_sample" / "test.npz")


def test_callback_pd_is_identical_with_and_without_single_pass_outputs(tmp_path: Path) -> None:
    single = _module()
    calls = {"probe_features": 0}
    original = single.probe_features

    def counted(x: torch.Tensor) -> list[torch.Tensor]:
        calls["probe_features"] += 1
        return original(x)

    single.probe_features = counted  # type: ignore[method-assign]
    cb_single, stored_single = _tiny_run(tmp_path / "single", single)
    assert calls["probe_features"] == 4  # only the training bank: 150 images in passes of 48; no test batch
    assert single.collect_probes is False  # cleared at test end

    torch.manual_seed(0)
    double = NoProbeOutputs(backbone="wrn", depth=10, widen_factor=1, channels_last=True)
    double.load_state_dict(single.state_dict())
    _, stored_double = _tiny_run(tmp_path / "double", double)
    np.testing.assert_array_equal(stored_single["index"], np.arange(40))
    np.testing.assert_array_equal(stored_single["pd_score"], stored_double["pd_score"])

    summary = cb_single.run_summary(None, single)  # type: ignore[arg-type]
    assert {"pd_seconds", "pd_seconds_forward", "pd_seconds_knn"} <= set(summary)
    assert 0 < summary["pd_seconds_forward"] + summary["pd_seconds_knn"] <= summary["pd_seconds"] + 1e-3
    assert summary["pd_train_augmentation"] == "supervised" and summary["pd_train_samples"] == 150
    assert len(cb_single.knn_probe_seconds) == summary["pd_probes"] == 8  # WRN-10-1: stem + 3 + 2 + 2


def test_train_augmentation_reaches_the_datamodule(tmp_path: Path) -> None:
    """``none`` gives the eval transform, ``supervised`` the crop + flips (a different bank)."""
    data = SyntheticDataModule(train_size=150, test_size=40, batch_size=32, num_workers=0)
    data.setup("fit")
    seen: dict[str, Any] = {}
    for kind in ("none", "supervised"):
        cb = PredictionDepth(k=5, train_augmentation=kind)
        loader = cb._train_loader(SimpleNamespace(datamodule=data))  # type: ignore[arg-type]
        seen[kind] = torch.cat([b["image"] for b in loader])
    eval_images = torch.cat([b["image"] for b in data.probe_train_dataloader(augmentation="none")])
    assert torch.equal(seen["none"], eval_images) and not torch.equal(seen["supervised"], eval_images)


def test_deprecated_augment_and_old_datamodule_signature() -> None:
    with pytest.deprecated_call(match="PredictionDepth.augment is deprecated"):
        assert PredictionDepth(augment=True).train_augmentation == "supervised"
    with pytest.deprecated_call(match="train_augmentation='none'"):
        assert PredictionDepth(augment=False).train_augmentation == "none"
    with pytest.raises(Exception, match=r"PredictionDepth.train_augmentation='contrastive' is not allowed"):
        PredictionDepth(train_augmentation="contrastive")  # type: ignore[arg-type]
    calls: list[dict[str, Any]] = []

    class Old:  # written before `augmentation` existed
        def probe_train_dataloader(self, subset_size=None, augment=False, seed=0):
            calls.append({"subset_size": subset_size, "augment": augment, "seed": seed})

    class New:
        def probe_train_dataloader(self, subset_size=None, augmentation=None, seed=0):
            calls.append({"subset_size": subset_size, "augmentation": augmentation, "seed": seed})

    PredictionDepth(train_subset_size=40, seed=3)._train_loader(SimpleNamespace(datamodule=Old()))  # type: ignore[arg-type]
    PredictionDepth(train_augmentation="none")._train_loader(SimpleNamespace(datamodule=New()))  # type: ignore[arg-type]
    assert calls == [
        {"subset_size": 40, "augment": True, "seed": 3},
        {"subset_size": None, "augmentation": "none", "seed": 0},
    ]


# -- progress ---------------------------------------------------------------------------------
def _fake_trainer(rank_zero: bool, bar: Any = None) -> Any:
    return SimpleNamespace(is_global_zero=rank_zero, progress_bar_callback=bar)


def test_progress_lines_on_rank_zero_only(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for rank_zero in (False, True):
        progress = StageProgress(_fake_trainer(rank_zero), "PredictionDepth k-NN probe", 3, unit="probes", every_s=0.0)
        for _ in range(3):
            progress.update()
        progress.close()
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    assert text.count("PredictionDepth k-NN probe: 3 probes ...") == 1  # the start line, once (rank 0)
    assert "PredictionDepth k-NN probe: 1/3 probes" in text
    assert text.count("PredictionDepth k-NN probe: 3/3 probes done in") == 1


def test_progress_bar_when_the_trainer_shows_one(capfd: pytest.CaptureFixture[str]) -> None:
    bar = SimpleNamespace(is_enabled=True)  # a TQDMProgressBar-like callback: no rich `progress`
    progress = StageProgress(_fake_trainer(True, bar), "PredictionDepth probe extraction: training bank", 4, unit="batches")
    for _ in range(4):
        progress.update()
    progress.close()
    assert "PredictionDepth probe extraction: training bank: 100%" in capfd.readouterr().out
    silent = StageProgress(_fake_trainer(False, bar), "hidden", 2, unit="batches")
    silent.update()
    silent.close()
    captured = capfd.readouterr()
    assert "hidden" not in captured.out + captured.err
