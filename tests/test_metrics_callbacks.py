"""Metric callbacks in a real ``Trainer.test`` on a tiny model and random data.

Asserts on what a user looks at: ``per_sample/test.npz`` (exactly N rows sorted by index, values
equal to an independent recomputation), the figures, ``run_summary`` values, the W&B offline run
read back (metric keys, histogram, images, tables, artifact), one-line errors for bad input, and a
2-process CPU DDP run giving the same per-sample file as one process.

Run as a script (``python tests/test_metrics_callbacks.py <out_dir> <ddp|single>``) it performs the
DDP run in a fresh interpreter, which is how the DDP test launches it (in-process ``strategy="ddp"``
under pytest would re-run pytest in the child).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from callbacks.metrics import PerSamplePredictions, PredictionDepth, QScore, UMAPPlot, q_score, read_npz
from callbacks.metrics.umap import load_pie_mask
from common.errors import ConfigError

try:  # tests/ as rootdir-inserted path (no __init__.py) or as a package
    from wandb_offline import find_offline_run, history_keys, read_offline_run
except ImportError:  # pragma: no cover
    from tests.wandb_offline import find_offline_run, history_keys, read_offline_run

N_TEST, N_TRAIN, CLASSES, DIM = 51, 64, 3, 8


# -- a tiny model and datamodule implementing the callbacks' contract -------------------------
class DictImages(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, CLASSES, (n,), generator=g)
        self.images = torch.randn(n, 3, 8, 8, generator=g) + 0.1 * self.labels.view(-1, 1, 1, 1).float()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"index": i, "label": int(self.labels[i]), "image": self.images[i]}


class TinyData(pl.LightningDataModule):
    num_classes = CLASSES

    def __init__(self) -> None:
        super().__init__()
        self.train = DictImages(N_TRAIN, seed=1)
        self.test = DictImages(N_TEST, seed=2)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=16, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=8)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=8)

    def probe_train_dataloader(self, subset_size: int | None = None, augment: bool = False, seed: int = 0) -> DataLoader:
        indices = list(range(N_TRAIN))
        if subset_size is not None:
            indices = sorted(torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(seed))[:subset_size].tolist())
        return DataLoader(torch.utils.data.Subset(self.train, indices), batch_size=10)


class TinyModel(pl.LightningModule):
    """conv -> pooled probe 0 -> linear -> probe 1 -> linear = h (probe 2) -> classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc1 = nn.Linear(6, 12)
        self.fc2 = nn.Linear(12, DIM)
        self.head = nn.Linear(DIM, CLASSES)

    def probe_features(self, x: Tensor) -> list[Tensor]:
        p0 = torch.relu(self.conv(x)).mean(dim=(2, 3))
        p1 = torch.relu(self.fc1(p0))
        return [p0, p1, self.fc2(p1)]

    def encode(self, x: Tensor) -> Tensor:
        return self.probe_features(x)[-1]

    def classify(self, x: Tensor) -> Tensor:
        return self.head(self.encode(x))

    def prunable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if n.endswith("weight")}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return nn.functional.cross_entropy(self.classify(batch["image"]), batch["label"])

    def _eval_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        h = self.encode(batch["image"])
        logits = self.head(h)
        self.log("acc", (logits.argmax(1) == batch["label"]).float().mean())
        return {"index": batch["index"], "label": batch["label"], "logits": logits.detach(), "features": h.detach()}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


class NoProbeModel(TinyModel):
    probe_features = None  # type: ignore[assignment]


def make_trainer(root: Path, callbacks: list[pl.Callback], **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    return pl.Trainer(
        accelerator="cpu",
        devices=kwargs.pop("devices", 1),
        default_root_dir=str(root),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )


def all_callbacks(pie_file: Path) -> list[pl.Callback]:
    np.save(pie_file, np.arange(0, N_TEST, 5))  # every 5th test sample counts as a PIE
    return [
        PerSamplePredictions(save_logits=True, log_table=True, table_max_rows=20),
        QScore(),
        PredictionDepth(k=5, reference="label"),
        UMAPPlot(subsample=40, seed=3, n_neighbors=5, pie_file=str(pie_file)),
    ]


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every W&B file (run, cache, artifacts staging, settings) inside the test's folder."""
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        path = tmp_path / "wandb_home" / var.lower()
        path.mkdir(parents=True)
        monkeypatch.setenv(var, str(path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


# -- independent recomputation ----------------------------------------------------------------
@torch.no_grad()
def expected_arrays(model: TinyModel, data: TinyData, k: int) -> dict[str, np.ndarray]:
    model.eval()
    images, labels = data.test.images, data.test.labels
    logits = model.classify(images)
    q, z, l1 = q_score(model.encode(images))
    train_probes = model.probe_features(data.train.images)
    test_probes = model.probe_features(images)
    knn = np.stack(
        [
            KNeighborsClassifier(n_neighbors=k).fit(tr.numpy(), data.train.labels.numpy()).predict(te.numpy())
            for tr, te in zip(train_probes, test_probes)
        ]
    )
    depth = np.ones(len(labels), dtype=np.int64)
    for p in range(knn.shape[0]):  # 1 + 0-based index of the last probe that disagrees with the label
        depth[knn[p] != labels.numpy()] = p + 1
    return {
        "index": np.arange(len(labels)),
        "label": labels.numpy(),
        "logits": logits.numpy(),
        "pred": logits.argmax(1).numpy(),
        "q_score": q.numpy(),
        "z_score": z.numpy(),
        "l1_norm": l1.numpy(),
        "pd_score": depth,
    }


def assert_matches(stored: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(expected) <= set(stored), sorted(stored)
    assert len(stored["index"]) == N_TEST
    for name in ("index", "label", "pred", "pd_score"):
        np.testing.assert_array_equal(stored[name], expected[name], err_msg=name)
    for name in ("logits", "q_score", "z_score", "l1_norm"):
        np.testing.assert_allclose(stored[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


# -- tests ------------------------------------------------------------------------------------
def test_all_metrics_in_run_folder_and_wandb(wandb_env: Path) -> None:
    from lightning.pytorch.loggers import WandbLogger

    root = wandb_env / "run"
    torch.manual_seed(0)
    model, data = TinyModel(), TinyData()
    callbacks = all_callbacks(wandb_env / "pies.npy")
    logger = WandbLogger(offline=True, save_dir=str(root), project="metrics-test")
    trainer = make_trainer(root, callbacks, logger=logger)
    trainer.test(model, datamodule=data, verbose=False)
    logger.experiment.finish()

    stored = read_npz(root / "per_sample" / "test.npz")
    assert_matches(stored, expected_arrays(model, data, k=5))
    assert stored["pd_score"].min() >= 1 and stored["pd_score"].max() <= 3
    assert len(np.unique(stored["pd_score"])) >= 2 and 0 < (stored["pred"] == stored["label"]).mean() < 1  # non-trivial case
    assert (root / "figures" / "umap_test.png").stat().st_size > 1000
    assert (root / "figures" / "confusion_test.png").exists()
    umap_npz = read_npz(root / "figures" / "umap_test.npz")
    assert umap_npz["umap"].shape == (40, 2) and np.all(np.diff(umap_npz["index"]) > 0)

    summary: dict[str, Any] = {}
    for cb in callbacks:
        summary.update(cb.run_summary(trainer, model))
    correct = stored["pred"] == stored["label"]
    assert summary["test_samples"] == N_TEST
    assert summary["q_score_mean"] == pytest.approx(float(stored["q_score"].mean()))
    assert summary["pd_mean_correct"] == pytest.approx(float(stored["pd_score"][correct].mean()))
    assert summary["pd_mean_wrong"] == pytest.approx(float(stored["pd_score"][~correct].mean()))
    assert summary["umap_png"].endswith("figures/umap_test.png")
    assert trainer.callback_metrics["test/pd_mean"].item() == pytest.approx(float(stored["pd_score"].mean()))

    run = read_offline_run(find_offline_run(root))
    keys = history_keys(run)
    for key in (
        "test/q_score_mean", "test/q_score_std", "test/z_score_mean", "test/l1_norm_mean",
        "test/pd_mean", "test/pd_mean_correct", "test/pd_mean_wrong",
        "test/q_score_hist", "test/pd_score_hist", "test/umap", "test/confusion_matrix",
        "test/per_class_accuracy", "test/per_sample",
    ):
        assert key in keys, f"{key} not in W&B history: {sorted(keys)}"
    assert run["summary"]["test/q_score_mean"] == pytest.approx(float(stored["q_score"].mean()), rel=1e-5)
    assert run["summary"]["test/q_score_hist"]["_type"] == "histogram"
    umap_item = next(item["test/umap"] for item in run["history"] if "test/umap" in item)
    assert umap_item["_type"] == "image-file" and umap_item["path"] in run["files"]
    assert any(f.startswith("media/images/test/umap") and f.endswith(".png") for f in run["files"])
    assert any(f.startswith("media/table/test/per_sample") for f in run["files"])
    assert {"type": "per_sample", "files": ["test.npz"]}.items() <= next(
        a for a in run["artifacts"] if a["type"] == "per_sample"
    ).items()


def test_without_wandb_and_sanity_check_skipped(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, data = TinyModel(), TinyData()
    callbacks = [PerSamplePredictions(every_n_val_epochs=1), QScore(every_n_val_epochs=1), PredictionDepth(k=3, train_subset_size=20)]
    trainer = make_trainer(
        tmp_path, callbacks, max_epochs=1, limit_train_batches=2, num_sanity_val_steps=2, limit_val_batches=3
    )
    trainer.fit(model, datamodule=data)
    val = read_npz(tmp_path / "per_sample" / "val_epoch0.npz")
    # the sanity check (2 batches) wrote nothing; the real epoch wrote its 3 batches of 8, sorted
    np.testing.assert_array_equal(val["index"], np.arange(24))
    assert {"label", "pred", "q_score"} <= set(val)
    trainer.test(model, datamodule=data, verbose=False)
    stored = read_npz(tmp_path / "per_sample" / "test.npz")
    assert len(stored["index"]) == N_TEST and stored["pd_score"].max() <= 3
    assert "logits" not in stored
    assert callbacks[2].run_summary(trainer, model)["pd_train_samples"] == 20


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^UMAPPlot.subsample=0 is too small"):
        UMAPPlot(subsample=0)
    with pytest.raises(ConfigError, match=r"^PredictionDepth.k=30 is larger than train_subset_size=10"):
        PredictionDepth(k=30, train_subset_size=10)
    with pytest.raises(ConfigError, match=r"^PredictionDepth.reference='depth' is not allowed"):
        PredictionDepth(reference="depth")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^PredictionDepth.k=100 is larger than the training subset \(64 samples\)"):
        make_trainer(tmp_path, [PredictionDepth(k=100)]).test(TinyModel(), datamodule=TinyData(), verbose=False)
    with pytest.raises(ConfigError, match=r"^PredictionDepth needs the model to define probe_features"):
        make_trainer(tmp_path, [PredictionDepth(k=3)]).test(NoProbeModel(), datamodule=TinyData(), verbose=False)


def test_pie_files(tmp_path: Path) -> None:
    index = np.array([0, 2, 3, 5])
    np.savez(tmp_path / "pies.npz", index=np.array([5, 3, 2]), pie=np.array([True, False, True]))
    np.testing.assert_array_equal(load_pie_mask(tmp_path / "pies.npz", index), [False, True, False, True])
    np.save(tmp_path / "mask.npy", np.array([True, False, False, True, False, False]))
    np.testing.assert_array_equal(load_pie_mask(tmp_path / "mask.npy", index), [True, False, True, False])
    np.save(tmp_path / "ids.npy", np.array([5, 0]))
    np.testing.assert_array_equal(load_pie_mask(tmp_path / "ids.npy", index), [True, False, False, True])
    np.savez(tmp_path / "bad.npz", flips=np.ones(3))
    with pytest.raises(ConfigError, match=r"^UMAPPlot.pie_file=.*has no 'pie' array"):
        UMAPPlot(pie_file=str(tmp_path / "bad.npz"))
    with pytest.raises(ConfigError, match=r"^UMAPPlot.pie_file=.*does not exist"):
        UMAPPlot(pie_file=str(tmp_path / "missing.npz"))


@pytest.mark.ddp
def test_ddp_two_processes_match_one(tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    script = Path(__file__).resolve()
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ddp"), "ddp"],
        env=env, capture_output=True, text=True, timeout=300, cwd=script.parent.parent, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _script(str(tmp_path / "single"), "single")  # the same seeded model and data in this process
    single = read_npz(tmp_path / "single" / "per_sample" / "test.npz")
    ddp = read_npz(tmp_path / "ddp" / "per_sample" / "test.npz")
    assert sorted(single) == sorted(ddp)
    np.testing.assert_array_equal(ddp["index"], np.arange(N_TEST))  # 51 samples: rank 1 got one padded duplicate
    for name in ("label", "pred", "pd_score"):
        np.testing.assert_array_equal(ddp[name], single[name], err_msg=name)
    for name in ("logits", "features", "q_score", "z_score", "l1_norm"):
        np.testing.assert_allclose(ddp[name], single[name], rtol=1e-5, atol=1e-6, err_msg=name)
    torch.manual_seed(0)
    model = TinyModel().eval()
    with torch.no_grad():
        np.testing.assert_allclose(ddp["features"], model.encode(TinyData().test.images).numpy(), rtol=1e-5, atol=1e-6)


def _script(out_dir: str, mode: str) -> None:
    torch.manual_seed(0)
    model, data = TinyModel(), TinyData()
    callbacks = [PerSamplePredictions(save_logits=True, save_features=True), QScore(), PredictionDepth(k=5)]
    extra = {"devices": 2, "strategy": "ddp"} if mode == "ddp" else {}
    trainer = make_trainer(Path(out_dir), callbacks, **extra)
    trainer.test(model, datamodule=data, verbose=False)


if __name__ == "__main__":
    _script(sys.argv[1], sys.argv[2])
