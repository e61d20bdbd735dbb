"""Prediction depth at the paper's size: its cost against one eval pass, split, and checked exact.

WRN-16-2 (random init, ``channels_last``, eval mode) on random uint8 images shaped like CIFAR-10,
served by the real datamodule (per-sample eval transform; the k-NN bank with the ``supervised``
crop + flips by default, as the authors fit it). In one run it measures

(a) one plain eval pass over the training + test images: ``_eval_step`` (encoder + classifier,
    what ``test_step`` runs) under ``torch.inference_mode()``, batch ``--batch-size`` — once before
    and once after (b), the ratio uses their mean (other processes on a shared machine skew any
    single pass; the 1-minute load average is printed, and this process's CPU seconds too);
(b) the real :class:`~callbacks.metrics.PredictionDepth` callback in ``Trainer.test`` (the test
    probes come from ``test_step``; one forward pass over the training images; one k-NN per probe):
    ``pd_seconds`` split into ``pd_seconds_forward`` and ``pd_seconds_knn`` as in ``run.json``;
(c) that the callback's k-NN predictions equal the all-float64 k-NN of before
    (:func:`~callbacks.metrics.prediction_depth.knn_predict_float64`) on the very same embeddings,
    probe by probe (its time is the old k-NN cost), and scikit-learn on ``--sklearn-queries``
    queries of the first and last probe;

and prints ``ratio_pd_vs_eval=<pd_seconds / eval pass>`` as its last line (``pd_seconds`` as the
callback reports it, the definition under which the old code measured 169 s = 1.4x; the test
images' probes cost only their pooling, inside the test loop, as in a real run).

``--knn-sweep`` instead times the k-NN alone on random Gaussian data (``--train`` x ``--test``,
D in 16, 32, 64, 128): the fast exact path, the old float64 path and scikit-learn's
``KNeighborsClassifier``, checking all three agree.

    python benchmarks/prediction_depth.py                               # small: 5000 / 1000
    python benchmarks/prediction_depth.py --train 50000 --test 10000    # the paper's size, minutes on 2 cores
    python benchmarks/prediction_depth.py --knn-sweep --train 50000 --test 10000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from callbacks.metrics.per_sample import read_npz  # noqa: E402
from callbacks.metrics.prediction_depth import knn_predict, knn_predict_float64, prediction_depth  # noqa: E402
from callbacks.metrics.prediction_depth_callback import PredictionDepth  # noqa: E402
from datamodules.synthetic import SyntheticDataModule  # noqa: E402
from lightning_modules import SupervisedClassifier  # noqa: E402


class RandomImages(SyntheticDataModule):
    """Uniform random uint8 ``[n, 3, 32, 32]`` images with random labels (CIFAR-10's shapes)."""

    name = "random"

    def load_arrays(self, train: bool):
        gen = torch.Generator().manual_seed(self.seed * 2 + int(train))
        n = self.train_size if train else self.test_size
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
        return images, torch.randint(0, self.num_classes, (n,), generator=gen)


class CapturingPD(PredictionDepth):
    """The real callback, keeping what its k-NN saw and predicted (for the exactness check)."""

    def _knn_predictions(self, trainer, bank, bank_y, queries, device):
        predictions = super()._knn_predictions(trainer, bank, bank_y, queries, device)
        self.captured = (bank, bank_y, queries, predictions)
        return predictions

    def on_test_epoch_end(self, trainer, pl_module):
        cpu = time.process_time()
        super().on_test_epoch_end(trainer, pl_module)
        self.cpu_seconds = time.process_time() - cpu  # training bank + k-NN (all but the per-batch collection)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def eval_pass(model: SupervisedClassifier, loader, device: torch.device, dm: RandomImages) -> tuple[float, float, int]:
    """Wall seconds, this process's CPU seconds and images of one inference pass (``_eval_step``): each
    batch transferred and finished by the datamodule as Lightning does (``augment_on: device``: the
    images gathered and eval-transformed on the device)."""
    images = 0
    start, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            batch = dm.on_after_batch_transfer(batch, 0)
            model._eval_step(batch)
            images += len(batch["index"])
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu, images


def eval_passes(model: SupervisedClassifier, dm: RandomImages, device: torch.device, label: str) -> tuple[float, float, float]:
    """One eval pass over train + test: (wall s, CPU s, test-part wall s), printed."""
    t_train, c_train, n_train = eval_pass(model, dm.probe_train_dataloader(augmentation="none"), device, dm)
    t_test, c_test, n_test = eval_pass(model, dm.test_dataloader(), device, dm)
    wall, cpu = t_train + t_test, c_train + c_test
    print(f"(a) eval pass {label}: {wall:.1f} s for {n_train + n_test} images ({t_train:.1f} s train + {t_test:.1f} s test, "
          f"{1000 * wall / (n_train + n_test):.2f} ms/image; {cpu:.1f} CPU-s), load average {_load()}", flush=True)
    return wall, cpu, t_test


def knn_sweep(args: argparse.Namespace) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    device = torch.device(args.device)
    print(f"k-NN alone: {args.train} training x {args.test} query points, k={args.k}, 10 classes, device {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'D':>4} {'fast s':>8} {'float64 s':>10} {'sklearn s':>10} {'fast==float64':>14} {'fast==sklearn':>14}")
    gen = torch.Generator().manual_seed(args.seed)
    for d in (16, 32, 64, 128):
        x = torch.randn(args.train, d, generator=gen)
        q = torch.randn(args.test, d, generator=gen)
        y = torch.randint(0, 10, (args.train,), generator=gen)
        xd, qd, yd = x.to(device), q.to(device), y.to(device)
        knn_predict(xd[:1000], yd[:1000], qd[:10], k=args.k)  # warm-up
        sync(device)
        start = time.perf_counter()
        fast = knn_predict(xd, yd, qd, k=args.k).cpu()
        sync(device)
        t_fast = time.perf_counter() - start
        start = time.perf_counter()
        old = knn_predict_float64(xd, yd, qd, k=args.k).cpu()
        sync(device)
        t_old = time.perf_counter() - start
        start = time.perf_counter()
        ref = KNeighborsClassifier(n_neighbors=args.k).fit(x.numpy(), y.numpy()).predict(q.numpy())
        t_sk = time.perf_counter() - start
        print(f"{d:>4} {t_fast:>8.3f} {t_old:>10.3f} {t_sk:>10.3f} {str(torch.equal(fast, old)):>14} "
              f"{str(bool(np.array_equal(fast.numpy(), ref))):>14}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=5000, help="training images (paper: 50000)")
    parser.add_argument("--test", type=int, default=1000, help="test images (paper: 10000)")
    parser.add_argument("--batch-size", type=int, default=512, help="eval batch size = PD bank_batch_size")
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--train-augmentation", default="supervised", choices=("supervised", "none"))
    parser.add_argument("--num-workers", type=int, default=None, help="loader workers (default: cores - 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sklearn-queries", type=int, default=1000, help="queries checked against sklearn (0 = skip)")
    parser.add_argument("--progress", action="store_true", help="show the trainer's progress bar (and PD's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--knn-sweep", action="store_true", help="time the k-NN alone on random data instead")
    args = parser.parse_args()
    if args.knn_sweep:
        knn_sweep(args)
        return

    pl.seed_everything(args.seed, verbose=False)
    device = torch.device(args.device)
    dm = RandomImages(
        train_size=args.train, test_size=args.test, seed=args.seed, batch_size=args.batch_size,
        eval_batch_size=args.batch_size, num_workers=args.num_workers,
    )
    dm.setup("fit")
    model = SupervisedClassifier(backbone="wrn16_2", channels_last=True).to(device).eval()
    print(f"WRN-16-2 (random init, channels_last), {args.train} train + {args.test} test random uint8 images, "
          f"batch {args.batch_size}, k={args.k}, bank augmentation {args.train_augmentation!r}, device {device}, "
          f"{torch.get_num_threads()} threads, {dm.num_workers} loader workers, load average {_load()}")

    # (a) one plain eval pass over train + test (again after (b): other load on the machine shows)
    before = eval_passes(model, dm, device, "before PD")

    # (b) the callback in Trainer.test
    with tempfile.TemporaryDirectory() as root:
        pd_cb = CapturingPD(k=args.k, train_augmentation=args.train_augmentation, bank_batch_size=args.batch_size)
        trainer = pl.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, default_root_dir=root, logger=False,
            callbacks=[pd_cb], enable_checkpointing=False, enable_model_summary=False,
            enable_progress_bar=args.progress,
        )
        start = time.perf_counter()
        trainer.test(model, datamodule=dm, verbose=False)
        t_test_call = time.perf_counter() - start
        stored = read_npz(Path(root) / "per_sample" / "test.npz")
    summary = pd_cb.run_summary(trainer, model)
    pd_s, fwd_s, knn_s = summary["pd_seconds"], summary["pd_seconds_forward"], summary["pd_seconds_knn"]
    bank, bank_y, queries, predictions = pd_cb.captured
    dims = [b.shape[1] for b in bank]
    print(f"(b) PD callback: pd_seconds={pd_s:.1f} (forward {fwd_s:.1f} s = training bank + probe collection, "
          f"k-NN {knn_s:.1f} s, rest {pd_s - fwd_s - knn_s:.1f} s); trainer.test incl. the test loop: {t_test_call:.1f} s")
    print(f"    {len(bank)} probes, D = {dims}")
    print("    k-NN s per probe: " + " ".join(f"{s:.2f}" for s in pd_cb.knn_probe_seconds) + f"; load average {_load()}")
    model.to(device)  # Trainer.test's teardown moves the model back to the CPU
    after = eval_passes(model, dm, device, "after PD")
    t_eval = (before[0] + after[0]) / 2
    cpu_eval = (before[1] + after[1]) / 2
    t_test = (before[2] + after[2]) / 2

    # (c) the same predictions as the old float64 k-NN (and sklearn on a subset)
    old_seconds = []
    same = True
    for p in range(len(bank)):
        start = time.perf_counter()
        old = knn_predict_float64(bank[p].to(device), bank_y.to(device), queries[p].to(device), k=args.k,
                                  num_classes=int(bank_y.max()) + 1).cpu()
        sync(device)
        old_seconds.append(time.perf_counter() - start)
        same &= torch.equal(old, predictions[p])
    # one process, sequential test loader: the k-NN rows are the test samples in index order
    depth_ok = np.array_equal(stored["index"], np.arange(args.test)) and np.array_equal(
        stored["pd_score"], prediction_depth(predictions, dm._arrays["test"][1].long()).numpy()
    )
    line = f"(c) k-NN predictions == old float64 k-NN on all {len(bank)} probes: {same}; pd_score file consistent: {depth_ok}"
    if args.sklearn_queries:
        from sklearn.neighbors import KNeighborsClassifier

        m = min(args.sklearn_queries, len(queries[0]))
        agree = all(
            np.array_equal(
                KNeighborsClassifier(n_neighbors=args.k).fit(bank[p].numpy(), bank_y.numpy()).predict(queries[p][:m].numpy()),
                predictions[p][:m].numpy(),
            )
            for p in (0, len(bank) - 1)
        )
        line += f"; == sklearn on {m} queries of probes 0 and {len(bank) - 1}: {agree}"
    print(line)
    print("    old float64 k-NN s per probe: " + " ".join(f"{s:.2f}" for s in old_seconds) + f" (total {sum(old_seconds):.1f} s)")
    old_estimate = fwd_s + t_test + sum(old_seconds)
    print(f"    old code path, estimated from this run's parts (bank forward + second test forward + float64 k-NN): "
          f"{old_estimate:.1f} s = {old_estimate / t_eval:.2f}x the eval pass")
    print(f"    trainer.test with PD (test loop + PD) / eval pass: {t_test_call / t_eval:.2f}; "
          f"PD CPU-s / eval-pass CPU-s: {pd_cb.cpu_seconds:.1f} / {cpu_eval:.1f} = {pd_cb.cpu_seconds / cpu_eval:.3f}")
    if not (same and depth_ok):
        print("MISMATCH: the fast k-NN differs from the float64 reference", file=sys.stderr)
        sys.exit(1)
    print(f"pd_seconds / eval pass (mean of before and after, {t_eval:.1f} s):")
    print(f"ratio_pd_vs_eval={pd_s / t_eval:.3f}")


def _load() -> str:
    """1-minute load average (other processes on the machine skew every timing here)."""
    try:
        import os

        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # pragma: no cover
        return "n/a"


if __name__ == "__main__":
    main()
