"""The real CLI: run folders, run.json, checkpoints, W&B offline records, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY_SUP, TINY_SUPCON, only_run_dir, read_run_json, run_cli, write_fake_cifar10
from wandb_offline import find_offline_run, history_keys, read_offline_run

import cli
from training.options import whole_batch_counts


@pytest.fixture(scope="module")
def sup_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("sup")
    done = run_cli("fit", *TINY_SUP, "--run.tags", "[smoke]", cwd=cwd)
    assert done.returncode == 0, done.stderr[-4000:]
    return only_run_dir(cwd / "runs")


def test_fit_writes_one_run_folder_with_summary_config_and_checkpoint(sup_run: Path) -> None:
    assert sup_run.parent.name == "quickstart"  # run.group of the config
    summary = read_run_json(sup_run)
    assert summary["method"] == "sup" and summary["dataset"] == "synthetic"
    assert summary["seed"] == 0 and summary["epochs"] == 2
    assert summary["run_dir"] == str(sup_run.resolve())
    assert 0.0 <= summary["test_acc"] <= 1.0 and summary["test_acc"] == summary["test_metrics"]["test/acc"]
    assert (sup_run / "config.yaml").is_file() and (sup_run / "csv" / "metrics.csv").is_file()
    ckpt = torch.load(sup_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == summary["global_step"] == 8  # 2 epochs x 256/64 batches
    assert "encoder.conv1.weight" in ckpt["state_dict"]


def test_wandb_offline_run_has_config_metrics_and_identity(sup_run: Path) -> None:
    run = read_offline_run(find_offline_run(sup_run))
    config = run["config"]
    assert config["model"]["init_args"]["lr"] == 0.1  # the resolved CLI config, values as given
    assert config["data"]["class_path"] == "datamodules.SyntheticDataModule"
    assert config["trainer"]["max_epochs"] == 2 and config["seed_everything"] == 0
    keys = history_keys(run)
    for key in ("train/loss_step", "train/loss_epoch", "train/acc", "val/loss", "val/acc", "test/acc",
                "train/epoch_time_s", "lr-SGD"):  # fmt: skip
        assert key in keys, f"{key} not logged; logged: {sorted(keys)}"
    assert run["summary"]["test/acc"] == pytest.approx(read_run_json(sup_run)["test_acc"], abs=1e-6)


def test_two_runs_of_the_same_config_never_collide(tmp_path: Path) -> None:
    args = ("fit", *TINY_SUP, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
            "--trainer.limit_val_batches", "1", "--test_after_fit", "false", "--run.wandb_mode", "disabled")  # fmt: skip
    for _ in range(2):
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    folders = sorted(p.parent for p in (tmp_path / "runs").rglob("run.json"))
    assert len(folders) == 2 and folders[0] != folders[1]
    assert all("test_acc" not in read_run_json(f) for f in folders)  # --test_after_fit false


def test_supcon_fit_runs_contrastive_then_head_phase(tmp_path: Path) -> None:
    done = run_cli("fit", *TINY_SUPCON, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    run_dir = only_run_dir(tmp_path / "runs")
    summary = read_run_json(run_dir)
    assert summary["method"] == "supcon" and summary["head_epochs"] == 1 and "test_acc" in summary
    run = read_offline_run(find_offline_run(run_dir))
    keys = history_keys(run)
    assert {"train/loss_epoch", "probe/train_acc", "probe/val_acc", "train/head_loss_epoch", "val/acc", "test/acc"} <= keys
    # the contrastive loss the user reads is never mixed with the probe's
    epochs = [r for r in run["history"] if "train/loss_epoch" in r]
    assert len(epochs) == 2  # 3 epochs - 1 head epoch
    # val/acc (the classifier) only once the head is trained: first logged at the last epoch
    assert [r["epoch"] for r in run["history"] if "val/acc" in r] == [2]


def test_simclr_config_ignores_labels(tmp_path: Path) -> None:
    args = [a if a != str(REPO / "configs/supcon.yaml") else str(REPO / "configs/simclr.yaml") for a in TINY_SUPCON]
    done = run_cli("fit", *args, "--run.wandb_mode", "disabled", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    run = only_run_dir(tmp_path / "runs")
    assert read_run_json(run)["method"] == "simclr"
    # the model the run trained (its resolved config.yaml) gives a bit-identical loss when the labels
    # are permuted; the same model with supervised=True (SupCon) does not — so the check can fail
    import yaml

    from lightning_modules.supcon import SupConModel

    init = yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]
    torch.manual_seed(0)
    views = [torch.rand(16, init.get("in_channels", 3), 32, 32) for _ in range(2)]
    labels = torch.arange(16) % 4
    losses = {}
    for supervised in (False, True):
        torch.manual_seed(1)
        model = SupConModel(**{**init, "supervised": supervised}).eval()
        with torch.no_grad():
            losses[supervised] = [model.pretrain_step({"views": views, "label": y}, 0)[0] for y in (labels, labels[torch.randperm(16)])]
    assert torch.equal(losses[False][0], losses[False][1])
    assert not torch.isclose(losses[True][0], losses[True][1])


def test_fit_on_cifar10_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """CIFAR-10's on-disk format through the real CLI (in-process, checksum patched only)."""
    import torchvision.datasets.cifar as tv_cifar

    write_fake_cifar10(tmp_path / "cifar", n_train_per_batch=16, n_test=24)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.chdir(tmp_path)
    args = [a for a in TINY_SUP]
    data_at = args.index("--data")
    args[data_at + 1 : data_at + 6] = [str(REPO / "configs/data/cifar10.yaml")]  # CIFAR-10 instead of the synthetic set
    cli.main(["fit", *args, "--data.init_args.data_dir", str(tmp_path / "cifar"), "--data.init_args.batch_size", "16",
              "--run.wandb_mode", "disabled"])  # fmt: skip
    summary = read_run_json(only_run_dir(tmp_path / "runs"))
    assert summary["dataset"] == "cifar10" and "test_acc" in summary


BAD_INPUT = [
    (["--trainer.max_epochs", "-1"], TINY_SUP, "error: trainer.max_epochs=-1 is not allowed; it must be a whole number >= 1"),
    (["--model.init_args.temperature", "0"], TINY_SUPCON,
     "error: model.temperature=0.0 is out of range; it must be in (0, inf)"),
    (["--model.init_args.backbone", "vgg"], TINY_SUP,
     "error: backbone='vgg' is not allowed; choose one of 'wrn16_2', 'wrn', 'resnet18'"),
    (["--data.init_args.views", "1"], TINY_SUPCON,
     "error: data.views=1 is not allowed for contrastive training; it needs >= 2 views"),
    (["--model.init_args.head_epochs", "3"], TINY_SUPCON,
     "error: model.head_epochs=3 must be below trainer.max_epochs=3"),
    (["--data", str(REPO / "configs/data/fashion_mnist.yaml"), "--data.init_args.data_dir", "/nonexistent/fm",
      "--data.init_args.download", "false"], TINY_SUP, "error: Fashion-MNIST idx files not found in /nonexistent/fm"),
]  # fmt: skip


@pytest.mark.parametrize("extra,base,message", BAD_INPUT, ids=["epochs", "temperature", "backbone", "views", "head_epochs", "data_dir"])
def test_bad_input_is_one_line_before_training(extra, base, message, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", *base, *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("offline-run-*"))


def test_bad_input_through_the_real_script_prints_one_line(tmp_path: Path) -> None:
    done = run_cli("fit", *TINY_SUPCON, "--model.init_args.temperature", "-0.5", cwd=tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["error: model.temperature=-0.5 is out of range; it must be in (0, inf)"], done.stderr[-2000:]


def test_ddp_test_metrics_count_each_test_sample_once(tmp_path: Path) -> None:
    """125 test images on 2 ranks: DistributedSampler pads to 126 (one image twice). test/acc, test/loss
    and the per-class accuracies must equal the per-sample file's values exactly, not the padded ones."""
    import numpy as np

    run = tmp_path / "run"
    done = run_cli("fit", *TINY_SUP, "--data.init_args.test_size", "125", "--data.init_args.eval_batch_size", "16",
                   "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
                   "--run.wandb_mode", "disabled", "--run.dir", str(run), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    summary = read_run_json(run)
    per_sample = np.load(run / "per_sample" / "test.npz")
    assert len(per_sample["index"]) == 125 and summary["status"] == "complete"
    correct = per_sample["pred"] == per_sample["label"]
    assert summary["test_acc"] == pytest.approx(float(correct.mean()), abs=1e-7)
    assert round(summary["test_acc"] * 125) == int(correct.sum())  # a count over 125, not over 126
    for k in range(10):
        of_class = per_sample["label"] == k
        if of_class.any():
            assert summary["test_metrics"][f"test/acc_class_{k}"] == pytest.approx(float(correct[of_class].mean()), abs=1e-7)


def test_a_whole_number_of_batches_stays_a_count_whatever_the_parser_made_of_it() -> None:
    """On some installs (seen on a GPU machine) ``--trainer.limit_train_batches 20`` reaches the Trainer
    as 20.0, which Lightning rejects as a fraction above 1; the CLI makes it the count it was written as."""
    from jsonargparse import Namespace

    trainer = Namespace(limit_train_batches=20.0, limit_val_batches=1.0, limit_test_batches=0.25, val_check_interval=50.0,
                        overfit_batches=0.0, limit_predict_batches=None)  # fmt: skip
    whole_batch_counts(trainer)
    assert trainer.limit_train_batches == 20 and isinstance(trainer.limit_train_batches, int)
    assert trainer.val_check_interval == 50 and isinstance(trainer.val_check_interval, int)
    assert trainer.limit_val_batches == 1.0 and isinstance(trainer.limit_val_batches, float)  # 1.0 = every batch
    assert trainer.limit_test_batches == 0.25 and trainer.overfit_batches == 0.0 and trainer.limit_predict_batches is None
