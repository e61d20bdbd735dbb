"""`python cli.py analyze`: PIE maths against hand-made examples, an end-to-end population of tiny real
runs (Sup and SupCon x dense and GMP 50% x 3 seeds on synthetic data) checked against an independent
NumPy/SciPy computation, the W&B record read back, and every bad input with its exact message."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SUP, TINY_SUPCON
from scipy import stats
from test_analysis_report import check_output
from wandb_offline import find_offline_run, history_keys, read_offline_run

from analysis.cli import main as analyze
from analysis.pies import modal_labels, modal_sets, overlap, pie_flags

SEEDS = (0, 1, 2)  # pruned populations
DENSE_SEEDS = (0, 1, 2, 3)  # dense populations: 4 models, so each has a PIE noise floor (1 vs 1 with any one left out)
GMP = [
    "--pruning.class_path", "callbacks.pruning.GradualMagnitudePruning",
    "--pruning.init_args.final_sparsity", "0.5",
    "--pruning.init_args.begin_step", "1",
    "--pruning.init_args.end_step", "4",
    "--pruning.init_args.frequency", "1",
]  # fmt: skip
# shorter than TINY_*: 2 steps per epoch, 2 epochs (4 optimiser steps = the whole GMP schedule),
# no validation loop, cheap two-view augmentation for SupCon; PD on a 128-image bank
FAST = [
    "--data.init_args.train_size", "128",
    "--trainer.max_epochs", "2",
    "--trainer.limit_val_batches", "0",
    "--run.wandb_mode", "disabled",
    "--trainer.callbacks+=callbacks.metrics.PredictionDepth",
    "--trainer.callbacks.init_args.train_subset_size", "128",
]  # fmt: skip
NO_CKPT = ["--trainer.enable_checkpointing", "false"]
# One-Shot children of the Sup dense runs (their final checkpoint): prune once, fine-tune 1 epoch
ONESHOT_CHILD = [
    "--pruning.class_path", "callbacks.pruning.OneShotPruning",
    "--pruning.init_args.targets", "network",  # the paper's pool: classifier included
    "--pruning.init_args.min_layer_density", "0.02",  # at 95 % the tiny classifier would lose every weight
    "--pruning.init_args.finetune_epochs", "1",
    "--pruning.init_args.finetune_batch_size", "64",
]  # fmt: skip
EXPERIMENTS = {
    "sup_dense": [*TINY_SUP],  # checkpointed: the One-Shot parents
    "sup_gmp": [*TINY_SUP, *GMP, *NO_CKPT],
    "supcon_dense": [*TINY_SUPCON, "--data.init_args.augmentation", "supervised", *NO_CKPT],
    # SupCon prunes in its contrastive phase only (1 epoch x 2 steps here): the schedule must end there
    "supcon_gmp": [*TINY_SUPCON, "--data.init_args.augmentation", "supervised", *GMP, "--pruning.init_args.end_step", "2", *NO_CKPT],
    "sup_oneshot": [*TINY_SUP, *ONESHOT_CHILD, "--pruning.init_args.final_sparsity", "0.5", *NO_CKPT],
    # the paper's appendix sparsity: flows through every table like the others
    "sup_oneshot95": [*TINY_SUP, *ONESHOT_CHILD, "--pruning.init_args.final_sparsity", "0.95", *NO_CKPT],
}
CHILDREN = ("sup_oneshot", "sup_oneshot95")
SEEDS_OF = {name: DENSE_SEEDS if name.endswith("dense") else SEEDS for name in EXPERIMENTS}
SETTINGS = {
    "sup_dense": "Sup · dense", "sup_gmp": "Sup · GMP 50%", "supcon_dense": "SCL · dense", "supcon_gmp": "SCL · GMP 50%",
    "sup_oneshot": "Sup · One-Shot 50%", "sup_oneshot95": "Sup · One-Shot 95%",
}  # fmt: skip
TABLES = ("populations", "table1", "pies_uncertainty", "oneshot_pairs", "table4_5", "table6", "pies_shared", "pies_per_class")


def build_population(root: Path) -> Path:
    """Train the population under ``<root>/runs/<experiment>/s<seed>`` in this process; returns ``root``."""
    import torch

    import cli

    threads = torch.get_num_threads()
    # one intra-op thread: these models are tiny, and on a shared 2-core machine two threads per
    # process run about 3x slower than one
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv(cli.RUN_DIR_ENV, raising=False)
            mp.setenv("WANDB_MODE", "disabled")
            mp.setattr(sys, "argv", ["cli.py"])  # LightningCLI warns when pytest's argv sits beside args=
            for name, args in EXPERIMENTS.items():
                for seed in SEEDS_OF[name]:
                    run_dir = root / "runs" / name / f"s{seed}"
                    extra = ["--pruning.init_args.parent", str(root / "runs" / "sup_dense" / f"s{seed}")] if name in CHILDREN else []
                    if name in CHILDREN:  # the child's whole fit is its fine-tuning
                        extra += ["--trainer.max_epochs", "1"]
                    cli.main(["fit", *args, *FAST, *extra, "--seed_everything", str(seed), "--run.dir", str(run_dir)])
                    mp.delenv(cli.RUN_DIR_ENV, raising=False)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 finished run folders ``<root>/runs/<experiment>/s<seed>``, trained in this process."""

    return build_population(tmp_path_factory.mktemp("population"))


# -- an independent reading of the run folders (no analysis.* code) -----------------------------
N_SPLITS = 20  # analyze's default (random splits are not used here: these populations are enumerated)


def _load(population: Path, name: str, seeds: tuple[int, ...] | None = None) -> list[dict[str, np.ndarray]]:
    out = []
    for seed in SEEDS_OF[name] if seeds is None else seeds:
        with np.load(population / "runs" / name / f"s{seed}" / "per_sample" / "test.npz") as data:
            out.append({k: data[k] for k in data.files})
    return out


def _preds(population: Path, name: str) -> np.ndarray:
    return np.stack([r["pred"] for r in _load(population, name)])


def _accs(population: Path, name: str) -> np.ndarray:
    return np.array([np.mean(r["pred"] == r["label"]) * 100 for r in _load(population, name)])


def _mode(preds: np.ndarray) -> np.ndarray:
    # scipy.stats.mode returns the smallest of the tied values: the "lowest class index" rule
    return stats.mode(preds, axis=0, keepdims=False).mode


def _scipy_pies(population: Path, method: str, pruned: str = "gmp") -> np.ndarray:
    return _mode(_preds(population, f"{method}_dense")) != _mode(_preds(population, f"{method}_{pruned}"))


def _acc_cell(population: Path, name: str) -> str:
    acc = _accs(population, name)
    std = f"{acc.std(ddof=1):.2f}" if len(acc) > 1 else "–"
    return f"{acc.mean():.2f} ± {std} (n={len(acc)})"


def _t_half(variances: list[float], sizes: list[int]) -> float:
    """Student-t half-width of a sum of variance components (Welch–Satterthwaite df), with scipy."""
    total = sum(variances)
    df = total**2 / sum(v**2 / (n - 1) for v, n in zip(variances, sizes))
    return float(stats.t.ppf(0.975, df) * np.sqrt(total))


def _jackknife(statistic, sizes: list[int]) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(estimate, low, high): each model of each population left out once, Student-t quantile."""
    full = [list(range(n)) for n in sizes]
    estimate = statistic(full)
    variances = []
    for g, n in enumerate(sizes):
        reps = np.array([statistic([k if j != g else [m for m in k if m != i] for j, k in enumerate(full)]) for i in range(n)])
        variances.append((n - 1) / n * float(((reps - reps.mean()) ** 2).sum()))
    half = _t_half(variances, sizes)
    return estimate, estimate - half, estimate + half


def _pies_between(a: np.ndarray, b: np.ndarray) -> int:
    return int((_mode(a) != _mode(b)).sum())


def _h_vs_h(dense: np.ndarray, pruned: np.ndarray, h: int, keep_d: list[int], keep_p: list[int]) -> tuple[list[int], list[int]]:
    """PIEs of every (dense h-subset, pruned h-subset) pair and of every ordered pair of disjoint dense h-subsets."""
    sd, sp = list(combinations(keep_d, h)), list(combinations(keep_p, h))
    cross = [_pies_between(dense[list(a)], pruned[list(b)]) for a in sd for b in sp]
    floor = [_pies_between(dense[list(a)], dense[list(b)]) for a in sd for b in sd if not set(a) & set(b)]
    return cross, floor


def _expected_cell(population: Path, method: str, name: str) -> dict[str, object]:
    """Table 1 / pies_uncertainty numbers of one pruned cell, computed here from the npz files alone."""
    dense_name = f"{method}_dense"
    dense, pruned = _preds(population, dense_name), _preds(population, name)
    acc_d, acc_p = _accs(population, dense_name), _accs(population, name)
    nd, npr = len(acc_d), len(acc_p)
    half = _t_half([acc_p.var(ddof=1) / npr, acc_d.var(ddof=1) / nd], [npr, nd])  # Welch
    h = min((nd - 1) // 2, npr - 1)
    cross, floor = _h_vs_h(dense, pruned, h, list(range(nd)), list(range(npr)))

    def excess(keep: list[list[int]]) -> float:
        c, f = _h_vs_h(dense, pruned, h, keep[0], keep[1])
        return float(np.mean(c) - np.mean(f))

    est, low, high = _jackknife(excess, [nd, npr])
    return {
        "count": int((_mode(dense) != _mode(pruned)).sum()), "h": h, "nd": nd, "np": npr,
        "acc_diff": acc_p.mean() - acc_d.mean(), "acc_low": acc_p.mean() - acc_d.mean() - half,
        "acc_high": acc_p.mean() - acc_d.mean() + half, "cross": np.array(cross), "floor": np.array(floor),
        "excess": est, "excess_low": low, "excess_high": high,
    }  # fmt: skip


def _floor_text(floor: np.ndarray) -> str:
    return f"{floor.mean():.1f} ({floor.min()}–{floor.max()})"


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- pie_flags -------------------------------------------------------------------------------------
# columns = test samples; dense: 3 models, pruned: 4 models
DENSE = np.array(
    [
        [1, 2, 0, 3, 4, 1, 6],
        [1, 3, 2, 3, 4, 2, 7],
        [2, 1, 2, 5, 4, 0, 6],
    ]
)
PRUNED = np.array(
    [
        [1, 3, 2, 5, 4, 2, 7],
        [2, 3, 0, 3, 4, 1, 8],
        [2, 0, 0, 4, 4, 7, 9],
        [2, 1, 2, 9, 4, 7, 9],
    ]
)
# sample: dense votes            -> modes     | pruned votes           -> modes
# 0: 1,1,2 -> {1}                              | 1,2,2,2 -> {2}                      PIE under both rules
# 1: 2,3,1 -> {1,2,3} (lowest 1)               | 3,3,0,1 -> {3}                      lowest: 1 != 3 PIE; disjoint: share 3 -> no
# 2: 0,2,2 -> {2}                              | 2,0,0,2 -> {0,2} (lowest 0)         lowest: 2 != 0 PIE; disjoint: share 2 -> no
# 3: 3,3,5 -> {3}                              | 5,3,4,9 -> {3,4,5,9} (lowest 3)     no PIE under both
# 4: 4,4,4 -> {4}                              | 4,4,4,4 -> {4}                      no PIE
# 5: 1,2,0 -> {0,1,2} (lowest 0)               | 2,1,7,7 -> {7}                      PIE under both (disjoint)
# 6: 6,7,6 -> {6}                              | 7,8,9,9 -> {9}                      PIE under both
EXPECTED_LOWEST = np.array([True, True, True, False, False, True, True])
EXPECTED_DISJOINT = np.array([True, False, False, False, False, True, True])


def test_pie_flags_hand_made_example_with_ties() -> None:
    np.testing.assert_array_equal(modal_labels(DENSE), [1, 1, 2, 3, 4, 0, 6])
    np.testing.assert_array_equal(modal_labels(PRUNED), [2, 3, 0, 3, 4, 7, 9])
    assert modal_sets(PRUNED, 10)[3].nonzero()[0].tolist() == [3, 4, 5, 9]
    np.testing.assert_array_equal(pie_flags(DENSE, PRUNED), EXPECTED_LOWEST)
    np.testing.assert_array_equal(pie_flags(DENSE, PRUNED, tie="lowest"), EXPECTED_LOWEST)
    np.testing.assert_array_equal(pie_flags(DENSE, PRUNED, tie="disjoint"), EXPECTED_DISJOINT)
    # the "lowest" rule is scipy's mode; the dense/pruned roles are symmetric
    lowest = stats.mode(DENSE, axis=0, keepdims=False).mode != stats.mode(PRUNED, axis=0, keepdims=False).mode
    np.testing.assert_array_equal(pie_flags(DENSE, PRUNED), lowest)
    np.testing.assert_array_equal(pie_flags(PRUNED, DENSE, tie="disjoint"), EXPECTED_DISJOINT)
    # one model per population: its predictions are the modes
    np.testing.assert_array_equal(pie_flags(DENSE[0], PRUNED[0]), DENSE[0] != PRUNED[0])
    parts = overlap(EXPECTED_LOWEST, np.array([True, False, False, True, False, True, False]))
    assert parts.counts == (2, 3, 1)


def test_pie_flags_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"tie='first' is not allowed; choose one of 'lowest', 'disjoint'"):
        pie_flags(DENSE, PRUNED, tie="first")
    with pytest.raises(ValueError, match="dense_preds covers 7 samples and pruned_preds 6"):
        pie_flags(DENSE, PRUNED[:, :6])
    with pytest.raises(ValueError, match="must hold integer class indices"):
        pie_flags(DENSE.astype(float), PRUNED)
    with pytest.raises(ValueError, match="negative class index -1"):
        pie_flags(DENSE - 1, PRUNED)


# -- end to end ------------------------------------------------------------------------------------
FIGURES = [
    "figure3_pd_synthetic.png",
    "figure6_flips_synthetic_sup_gmp_50.png",
    "figure6_flips_synthetic_sup_oneshot_95.png",
    "figure6_flips_synthetic_supcon_gmp_50.png",
    "paper_figure4_pies_oneshot_synthetic.png",  # the paper's layouts with a cell here (2 and 3 need 90 %)
    "paper_figure7_pie_classes_synthetic.png",
    "pies_per_class_synthetic_gmp.png",
    "pies_per_class_synthetic_oneshot.png",
    "scatter_pd_score_synthetic_sup_gmp.png",
    "scatter_pd_score_synthetic_sup_oneshot.png",
    "scatter_pd_score_synthetic_supcon_gmp.png",
    "scatter_q_score_synthetic_sup_gmp.png",
    "scatter_q_score_synthetic_sup_oneshot.png",
    "scatter_q_score_synthetic_supcon_gmp.png",
]
PRUNED_CELLS = {  # run folder name -> (method, analysis slug)
    "sup_gmp": ("sup", "synthetic_sup_gmp_50"),
    "sup_oneshot": ("sup", "synthetic_sup_oneshot_50"),
    "sup_oneshot95": ("sup", "synthetic_sup_oneshot_95"),
    "supcon_gmp": ("supcon", "synthetic_supcon_gmp_50"),
}


def test_analyze_population_end_to_end(population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert analyze(["--runs", str(population / "runs"), "--out", str(out), "--wandb-mode", "offline"]) == 0
    printed = capsys.readouterr()
    assert [line.split("]")[0] for line in printed.out.splitlines() if line.startswith("analyze [")] == [
        f"analyze [{i}/8" for i in range(1, 9)
    ]
    assert "analyze: done in" in printed.out
    assert not [line for line in printed.err.splitlines() if line.startswith("warning:")], printed.err
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]  # no temporary folder left

    for name in TABLES:
        assert (out / "tables" / f"{name}.md").is_file() and (out / "tables" / f"{name}.csv").is_file()
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == FIGURES
    report = (out / "report.md").read_text()
    for name in figures:
        assert f"(figures/{name})" in report
    assert "UMAP grid for synthetic: no run has test representations saved" in report
    assert "--allow-incomplete" not in report.split("Made by")[0]  # no banner: every run is complete

    # every Table 1 cell, from an independent computation over the npz files: accuracy, its change vs
    # dense with Welch's interval, the PIEs of h vs h beside the floor of h vs h, the excess with its
    # jackknife interval over models, and the PIE set of all models
    cells = {name: _expected_cell(population, method, name) for name, (method, _) in PRUNED_CELLS.items()}

    def acc(name: str) -> str:
        e = cells[name]
        return f"{_acc_cell(population, name)} · Δ {e['acc_diff']:+.2f} [{e['acc_low']:+.2f}, {e['acc_high']:+.2f}]"

    def pie(name: str) -> str:
        e = cells[name]
        return (
            f"1 vs 1: {e['cross'].mean():.1f} · floor {e['floor'].mean():.1f} · excess {e['excess']:+.1f} "
            f"[{e['excess_low']:+.1f}, {e['excess_high']:+.1f}] · all 4 vs 3: {e['count']}"
        )

    dense_floor = {m: f"floor {_floor_text(cells[f'{m}_gmp']['floor'])} (1 vs 1 models)" for m in ("sup", "supcon")}
    header = "| sparsity | Sup/GMP acc (%) | Sup/GMP PIEs | Sup/One-Shot acc (%) | Sup/One-Shot PIEs | SCL/GMP acc (%) | SCL/GMP PIEs |"
    row0 = (
        f"| 0% | {_acc_cell(population, 'sup_dense')} | {dense_floor['sup']} | {_acc_cell(population, 'sup_dense')} | "
        f"{dense_floor['sup']} | {_acc_cell(population, 'supcon_dense')} | {dense_floor['supcon']} |"
    )
    row50 = (
        f"| 50% | {acc('sup_gmp')} | {pie('sup_gmp')} | {acc('sup_oneshot')} | {pie('sup_oneshot')} | "
        f"{acc('supcon_gmp')} | {pie('supcon_gmp')} |"
    )
    row95 = f"| 95% | (no runs) |  | {acc('sup_oneshot95')} | {pie('sup_oneshot95')} | (no runs) |  |"  # appendix sparsity
    table1_md = (out / "tables" / "table1.md").read_text()
    for text in (report, table1_md):
        assert header in text and row0 in text and row50 in text and row95 in text, text
    assert "has no floor of its size (that would need twice as many dense models)" in table1_md
    rows = {(r["method"], r["pruning"], r["sparsity"]): r for r in _csv(out / "tables" / "table1.csv")}
    assert set(rows) == {("sup", "dense", "0"), ("sup", "gmp", "0.5"), ("sup", "oneshot", "0.5"), ("sup", "oneshot", "0.95"),
                         ("supcon", "dense", "0"), ("supcon", "gmp", "0.5")}  # fmt: skip
    pies = {m: _scipy_pies(population, m) for m in ("sup", "supcon")}
    for method, flags in pies.items():
        row = rows[(method, "gmp", "0.5")]
        e = cells[f"{method}_gmp"]
        assert int(row["pies"]) == int(flags.sum()) == e["count"]
        assert rows[(method, "dense", "0")]["pies"] == "" and rows[(method, "dense", "0")]["h"] == "1"
        assert (row["n_models"], row["n_dense"], row["seeds"], row["h"]) == ("3", "4", "0 1 2", "1")
        assert float(row["noise_floor_mean"]) == pytest.approx(e["floor"].mean(), abs=1e-3)  # the CSV keeps 6 digits
        assert float(row["acc_diff_low"]) == pytest.approx(e["acc_low"], abs=1e-4)
        assert (float(row["excess_low"]), float(row["excess_high"])) == pytest.approx((e["excess_low"], e["excess_high"]), abs=1e-3)
    # the like-for-like comparison: h pruned vs h dense models beside the floor of h vs h, the excess's interval
    uncertainty = {(r["method"], r["pruning"], r["sparsity"]): r for r in _csv(out / "tables" / "pies_uncertainty.csv")}
    for name, (method, slug) in PRUNED_CELLS.items():
        e = cells[name]
        row = uncertainty[(method, slug.split("_")[2], str(float(slug.split("_")[3]) / 100))]
        assert float(row["pies_h_mean"]) == pytest.approx(e["cross"].mean(), abs=1e-3)
        assert (int(row["h"]), float(row["noise_floor_max"])) == (1, float(e["floor"].max()))
        assert row["above_floor"] == str(bool(e["excess_low"] > 0)) and row["subsets"] == "every subset"
        assert int(row["pies_all"]) == e["count"]
    assert "A cell's PIEs mean something only when the excess over its floor has an interval above 0" in report
    assert check_output(out) > 20  # every printed interval contains its estimate; counts beside floors of their size

    # One-Shot children paired with their parents: paired accuracy change, the paired t-interval
    pairs = {r["sparsity"]: r for r in _csv(out / "tables" / "oneshot_pairs.csv")}
    assert set(pairs) == {"0.5", "0.95"}
    parents = _accs(population, "sup_dense")[: len(SEEDS)]
    for name, key in (("sup_oneshot", "0.5"), ("sup_oneshot95", "0.95")):
        deltas = _accs(population, name) - parents
        low, high = stats.t.interval(0.95, 2, loc=deltas.mean(), scale=stats.sem(deltas))
        row = pairs[key]
        assert (row["n_pairs"], row["n_children"], row["seeds"]) == ("3", "3", "0 1 2")
        assert float(row["delta_mean"]) == pytest.approx(deltas.mean(), abs=1e-4)
        assert (float(row["delta_low"]), float(row["delta_high"])) == pytest.approx((low, high), abs=1e-4)
        assert f"| {SETTINGS[name]} | 3 of 3 | " in report and f"{deltas.mean():+.2f} [{low:+.2f}, {high:+.2f}] | 0 |" in report

    # shared vs unique PIEs (Sup ∩ SCL at GMP 50 %)
    shared = _csv(out / "tables" / "pies_shared.csv")
    assert len(shared) == 1
    both = pies["sup"] & pies["supcon"]
    assert (int(shared[0]["shared"]), int(shared[0]["only_a"]), int(shared[0]["only_b"])) == (
        int(both.sum()), int((pies["sup"] & ~pies["supcon"]).sum()), int((pies["supcon"] & ~pies["sup"]).sum())
    )  # fmt: skip
    # per-class distribution
    labels = _load(population, "sup_dense")[0]["label"]
    per_class = {(r["method"], r["pruning"], int(r["class"])): int(r["pies"]) for r in _csv(out / "tables" / "pies_per_class.csv") if r["sparsity"] == "0.5"}
    for method, flags in pies.items():
        expected = np.bincount(labels[flags], minlength=10)
        assert [per_class[(method, "gmp", c)] for c in range(10)] == expected.tolist()
    # Tables 4/5, every cell: per-sample mean over the models, then mean ± std over the test samples
    for name, setting in SETTINGS.items():
        cells45 = []
        for array in ("q_score", "z_score", "l1_norm"):
            v = np.stack([r[array] for r in _load(population, name)]).astype(np.float64).mean(0)
            cells45.append(f"{v.mean():.2f} ± {v.std():.2f} (n={len(SEEDS_OF[name])})")
        assert f"| {setting} | {' | '.join(cells45)} |" in report
    for name, setting in SETTINGS.items():  # populations, pies_uncertainty, oneshot_pairs, table4_5, table6, pies_per_class
        assert report.count(f"| {setting} | ") == (2 if name.endswith("dense") else 5), setting
    # Table 6, every cell: PD of PIEs vs non-PIEs, from the pruned and from the dense models (all <= 5 seeds)
    assert "## Table 6 — prediction depth of PIEs vs non-PIEs (PD over the first 5 seeds per cell)" in report
    for method, flags in pies.items():
        e = cells[f"{method}_gmp"]
        cells6 = [f"{int(flags.sum())} (all 4 vs 3) · 1 vs 1: {e['cross'].mean():.1f} vs floor {e['floor'].mean():.1f}"]
        for name in (f"{method}_gmp", f"{method}_dense"):
            pd = np.stack([r["pd_score"] for r in _load(population, name)]).astype(np.float64).mean(0)
            for part in (flags, ~flags):
                cells6.append(f"{pd[part].mean():.2f} ± {pd[part].std():.2f} (n={len(SEEDS_OF[name])}, {int(part.sum())} samples)")
        cells6.append("pruned 3 (0, 1, 2); dense 4 (0, 1, 2, 3)")
        assert f"| {SETTINGS[f'{method}_gmp']} | {' | '.join(cells6)} |" in report
    assert "no paper numbers: the paper reports cifar10 only, this is synthetic" in report

    # the findings F1-F4, with the numbers (F1: 50% is below the high sparsity the claim is about)
    assert "- **F1** — at high sparsity SCL loses more accuracy and has more PIEs than Sup: **cannot resolve**." in report
    assert "GMP: *cannot resolve* — the highest sparsity both methods reached is 50%, below the 70% the claim is about" in report
    assert "- **F2** — early pruning (GMP) hurts SCL more than later pruning (ΔGMP, One-Shot): **cannot resolve**." in report
    assert "  - needs SCL pruned with GMP and with ΔGMP and/or One-Shot (SCL schedules here: GMP)" in report
    q = {n: np.mean([r["q_score"].astype(np.float64).mean() for r in _load(population, n)]) for n in ("supcon_dense", "supcon_gmp")}
    assert f"SCL {q['supcon_dense']:.3f} → {q['supcon_gmp']:.3f} (" in report
    assert "- **F4** — PD-Score of a sample predicts its pruned PD-Score well for Sup but not for SCL" in report
    assert "The appendix numbers (95%, 99% sparsity) and the paper's full tables are **not available**" in report

    # the W&B run (offline, job_type analyze) holds the same tables and images
    offline = find_offline_run(out / "wandb")
    inspected = subprocess.run([str(Path(sys.executable).with_name("wandb")), "leet", "inspect", "--json", str(offline)],
                               capture_output=True, text=True, check=True, timeout=120).stdout  # fmt: skip
    records = [json.loads(line) for line in inspected.splitlines() if line.strip()]
    run_records = [r["run"] for r in records if r.get("type") == "run"]
    assert run_records and run_records[0]["job_type"] == "analyze"
    record = read_offline_run(offline)
    keys = history_keys(record)
    assert {f"tables/{t}" for t in TABLES} <= keys
    assert {f"figures/{Path(f).stem}" for f in figures} <= keys
    assert record["config"]["pie_tie"] == "lowest" and record["config"]["n_runs"] == 20
    assert (record["config"]["pd_models"], record["config"]["noise_splits"]) == (5, 20) and "bootstrap" not in record["config"]
    assert record["summary"]["pies/synthetic/sup/gmp/0.5"] == int(pies["sup"].sum())
    assert record["summary"]["noise_floor_mean/synthetic/sup/gmp/0.5"] == pytest.approx(cells["sup_gmp"]["floor"].mean())
    assert record["summary"]["excess_low/synthetic/sup/gmp/0.5"] == pytest.approx(cells["sup_gmp"]["excess_low"], abs=1e-4)
    assert any(a["type"] == "analysis" and "report.md" in a["files"] for a in record["artifacts"])


def test_disjoint_tie_rule_pd_models_and_rerun_replaces_output(population: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["--runs", str(population / "runs" / "sup_*"), "--out", str(out), "--wandb-mode", "disabled"]
    assert analyze(args) == 0
    (out / "stale.txt").write_text("from the first analysis")
    assert analyze([*args, "--pie-tie", "disjoint", "--pd-models", "2", "--gallery-images", "0"]) == 0
    assert not (out / "stale.txt").exists()  # an earlier analyze output is replaced as a whole
    dense, pruned = _preds(population, "sup_dense"), _preds(population, "sup_gmp")

    def modes(preds: np.ndarray) -> list[set[int]]:
        votes = [np.bincount(col, minlength=10) for col in preds.T]
        return [set(np.flatnonzero(v == v.max()).tolist()) for v in votes]

    flags = np.array([not d & p for d, p in zip(modes(dense), modes(pruned))])
    rows = {(r["pruning"], r["sparsity"]): r for r in _csv(out / "tables" / "table1.csv")}
    assert int(rows[("gmp", "0.5")]["pies"]) == int(flags.sum()) <= int(_scipy_pies(population, "sup").sum())
    report = (out / "report.md").read_text()
    assert "Tie rule `disjoint`" in report
    assert "Figure 6 galleries: disabled (--gallery-images 0)" in report
    # Table 6 with --pd-models 2: PD over exactly seeds 0 and 1 of the pruned and of the dense population
    # h = 1: one model's "mode" is its prediction, never tied, so h vs h is the same under both tie rules
    cross = [int((dense[a] != pruned[b]).sum()) for a in range(4) for b in range(3)]
    floor = [int((dense[a] != dense[b]).sum()) for a in range(4) for b in range(4) if a != b]
    cells = [f"{int(flags.sum())} (all 4 vs 3) · 1 vs 1: {np.mean(cross):.1f} vs floor {np.mean(floor):.1f}"]
    for name in ("sup_gmp", "sup_dense"):
        pd = np.stack([r["pd_score"] for r in _load(population, name, (0, 1))]).astype(np.float64).mean(0)
        for part in (flags, ~flags):
            cells.append(f"{pd[part].mean():.2f} ± {pd[part].std():.2f} (n=2, {int(part.sum())} samples)" if part.any() else "– (0 samples)")
    cells.append("pruned 2 (0, 1); dense 2 (0, 1)")
    assert f"| Sup · GMP 50% | {' | '.join(cells)} |" in report
    assert "| setting | PIEs: set of all models · h vs h beside its floor | PD of PIEs (pruned models, first 2 seeds) |" in report
    table6 = {(r["pruning"], r["sparsity"]): r for r in _csv(out / "tables" / "table6.csv")}
    assert (table6[("gmp", "0.5")]["pd_seeds_pruned"], table6[("gmp", "0.5")]["pd_seeds_dense"]) == ("0 1", "0 1")


def test_umap_grid_from_the_umap_callback_files(population: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name in ("sup_dense", "sup_gmp"):
        shutil.copytree(population / "runs" / name, runs / name)
    rng = np.random.default_rng(0)
    for folder in sorted(runs.glob("sup_dense/s*")):  # what UMAPPlot writes: index, label, 2-D coordinates
        (folder / "figures").mkdir(exist_ok=True)
        np.savez(folder / "figures" / "umap_test.npz", index=np.arange(128), label=np.arange(128) % 10, umap=rng.random((128, 2)))
    out = tmp_path / "report"
    assert analyze(["--runs", str(runs), "--out", str(out), "--wandb-mode", "disabled"]) == 0
    assert (out / "figures" / "umap_synthetic.png").is_file()
    report = (out / "report.md").read_text()
    assert "UMAP grid for synthetic: blank cells, no saved representations for synthetic · Sup · GMP 50%" in report


def test_umap_grid_from_representations_exported_small(population: Path, tmp_path: Path) -> None:
    """A committed study keeps no checkpoint: scripts/export_representations.py saves a fixed subset of
    the test representations in float16 beside the per-sample file, and the UMAP grid embeds those."""
    runs = tmp_path / "runs"
    shutil.copytree(population / "runs" / "sup_dense", runs / "sup_dense")
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "export_representations.py"),
                           str(runs / "sup_dense" / "s0"), "--subset", "64"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(runs / "sup_dense" / "s0" / "per_sample" / "representations.npz") as saved:
        index, features, labels = saved["index"], saved["features"], saved["label"]
    assert np.array_equal(index, np.sort(np.random.default_rng(0).choice(128, size=64, replace=False)))
    assert features.dtype == np.float16 and features.shape[0] == 64 and np.isfinite(features).all()
    assert np.array_equal(labels, _load(population, "sup_dense", (0,))[0]["label"][index])
    out = tmp_path / "report"
    assert analyze(["--runs", str(runs), "--out", str(out), "--wandb-mode", "disabled", "--umap-samples", "64"]) == 0
    assert (out / "figures" / "umap_synthetic.png").stat().st_size > 10_000
    assert "no run has test representations saved" not in (out / "report.md").read_text()


def test_umap_grid_says_why_a_cell_is_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell with no population says "no runs"; a population without saved representations "no
    features saved" (the two read alike before, so a study missing a schedule looked unexported)."""
    import matplotlib.axes

    from analysis.umap_grid import umap_grid_png

    written: list[str] = []
    original = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, x, y, s, *a, **k: (written.append(s), original(self, x, y, s, *a, **k))[1])
    coords = np.random.default_rng(0).random((20, 2))
    png = umap_grid_png({(0, 0): (coords, np.arange(20) % 10, "seed 0")}, ["Sup", "SCL"], ["dense", "GMP 90%"], title="t",
                        no_runs=frozenset({(1, 1)}))  # fmt: skip
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(written) == ["no features saved", "no features saved", "no runs"]


def _relabel(folder: Path, sparsity: float | None) -> None:
    """A copied run as a CIFAR-10 run (at ``sparsity`` when pruned)."""
    path = folder / "run.json"
    summary = json.loads(path.read_text())
    summary["dataset"] = "cifar10"
    if sparsity is not None:
        summary["target_sparsity"] = summary["achieved_sparsity"] = summary["achieved_sparsity_targets"] = sparsity
    path.write_text(json.dumps(summary))


def test_paper_numbers_beside_matching_cifar10_settings(population: Path, tmp_path: Path) -> None:
    """A CIFAR-10-shaped set of run folders — Sup and SCL dense, GMP at 30/50/70/90 % (copies of the
    GMP runs relabelled), the 95 % One-Shot children at 99 % — puts the paper's value beside ours in
    every cell the paper prints (Tables 1, 4/5, 6, with our difference and its interval), judges F3/F4
    against the paper's magnitudes, and names the cells the paper has no number for."""
    runs = tmp_path / "runs"
    _copy_runs(population, runs, {"sup_dense": DENSE_SEEDS, "supcon_dense": DENSE_SEEDS, "sup_oneshot95": SEEDS})
    for path in runs.glob("*/*/run.json"):
        _relabel(path.parent, 0.99 if "oneshot" in path.parent.parent.name else None)
    for name in ("sup_gmp", "supcon_gmp"):
        for pct in (30, 50, 70, 90):
            for seed in SEEDS:
                dest = runs / f"{name}{pct}" / f"s{seed}"
                shutil.copytree(population / "runs" / name / f"s{seed}", dest)
                _relabel(dest, pct / 100)
    out = tmp_path / "report"
    assert analyze(["--runs", str(runs), "--out", str(out), "--wandb-mode", "disabled", "--gallery-images", "0"]) == 0
    report = (out / "report.md").read_text()
    # Table 1
    assert f"| 0% | {_acc_cell(population, 'sup_dense')} · paper 90.58 ± 0.38 | floor " in report
    row90 = next(line for line in report.splitlines() if line.startswith("| 90% | "))
    assert row90.startswith(f"| 90% | {_acc_cell(population, 'sup_gmp')} · Δ ")
    assert " · paper 89.47 ± 0.36 | 1 vs 1: " in row90
    assert row90.split(" | ")[2].endswith(f" · all 4 vs 3: {int(_scipy_pies(population, 'sup').sum())} · paper (all 30 vs 30) 273")
    assert next(line for line in report.splitlines() if line.startswith("| 99% | ")).startswith("| 99% | (no runs) |  | ")
    assert "appendix Table 3, Sup/GMP PIEs of Hooker et al. 2019 (ResNet) vs the paper (WRN-16-2): 30%: 114 vs 188, 50%: 144 vs 179" in report
    row = next(r for r in _csv(out / "tables" / "table1.csv") if r["pruning"] == "gmp" and r["method"] == "sup" and r["sparsity"] == "0.9")
    assert (row["paper_acc_mean"], row["paper_acc_std"], row["paper_pies"]) == ("89.47", "0.36", "273")
    # Tables 4/5: the paper's Q / Z / ‖ĥ‖₁ ± std in every printed cell, and our Q − the paper's (independently computed)
    q = {(r["method"], r["pruning"], r["sparsity"]): r for r in _csv(out / "tables" / "table4_5.csv")}
    paper_q = {("sup", "gmp", "0.3"): (1.43, 0.3), ("sup", "gmp", "0.5"): (1.41, 0.29), ("sup", "gmp", "0.7"): (1.39, 0.28),
               ("sup", "gmp", "0.9"): (1.39, 0.27), ("supcon", "gmp", "0.3"): (0.69, 0.16), ("supcon", "gmp", "0.5"): (0.66, 0.16),
               ("supcon", "gmp", "0.7"): (0.62, 0.15), ("supcon", "gmp", "0.9"): (0.56, 0.13), ("sup", "dense", "0"): (1.44, 0.29),
               ("supcon", "dense", "0"): (0.72, 0.17)}  # fmt: skip
    for key, (value, std) in paper_q.items():
        r = q[key]
        assert (float(r["paper_q"]), float(r["paper_q_std"])) == (value, std), key
        name = f"{key[0]}_{key[1]}"
        ours = float(np.mean(np.stack([a["q_score"] for a in _load(population, name)]).mean(axis=0)))
        assert float(r["q_minus_paper"]) == pytest.approx(ours - value, abs=1e-5), key  # the CSV keeps 6 digits
        assert float(r["q_minus_paper_low"]) <= float(r["q_minus_paper"]) <= float(r["q_minus_paper_high"]), key
    assert q[("sup", "oneshot", "0.99")]["paper_q"] == ""  # the appendix: no number
    assert "| 1.44 ± 0.29 / 5.73 ± 0.68 / 4.15 ± 0.40 |" in report and "| 0.56 ± 0.13 / 4.47 ± 0.57 / 8.14 ± 0.82 |" in report
    # Table 6: the paper's PD of PIEs / non-PIEs ± std at every sparsity, our PIE PD − the paper's
    pd = {(r["method"], r["sparsity"]): r for r in _csv(out / "tables" / "table6.csv") if r["pruning"] == "gmp"}
    paper_pd = {("sup", "0.3"): (14.87, 1.01, 10.98, 2.75), ("sup", "0.5"): (14.89, 1.1, 10.84, 2.94), ("sup", "0.7"): (15.03, 1.2, 11.01, 2.86),
                ("sup", "0.9"): (15.1, 1.13, 11.03, 2.91), ("supcon", "0.3"): (14.95, 1.91, 10.35, 4.15),
                ("supcon", "0.5"): (15.09, 1.64, 10.36, 4.2), ("supcon", "0.7"): (15.14, 1.81, 10.44, 4.23),
                ("supcon", "0.9"): (15.15, 1.71, 10.48, 4.29)}  # fmt: skip
    for key, cell in paper_pd.items():
        r = pd[key]
        got = tuple(float(r[c]) for c in ("paper_pd_pies", "paper_pd_pies_std", "paper_pd_non_pies", "paper_pd_non_pies_std"))
        assert got == cell, key
        flags = _scipy_pies(population, key[0])
        per_sample = np.stack([a["pd_score"] for a in _load(population, f"{key[0]}_gmp")]).mean(axis=0)
        if flags.any():
            assert float(r["pd_pies_minus_paper"]) == pytest.approx(float(per_sample[flags].mean()) - cell[0], abs=1e-5), key
        assert float(r["pd_non_pies_minus_paper"]) == pytest.approx(float(per_sample[~flags].mean()) - cell[2], abs=1e-5), key
    assert "| 15.10 ± 1.13 / 11.03 ± 2.91 |" in report
    # F3 and F4 against the paper's own magnitudes
    assert "against the paper's numbers, GMP 90%: SCL's relative Q-Score change: *" in report
    assert "paper 0.72 → 0.56 (-22.2 %); ours " in report and "paper 1.44 → 1.39 (-3.5 %); ours " in report
    assert "against the paper's numbers, Sup · GMP 90%: PD of PIEs − non-PIEs: *" in report or not _scipy_pies(population, "sup").any()
    # what the paper lacks, said once per table; what is available, said in full
    appendix = "Sup · One-Shot 99% (99% is in the paper's appendix, whose numbers are not available here)"
    for title in ("Table 1", "Tables 4/5", "Table 6"):
        assert f"- {title}: no reference number for 1 of our cells — {appendix}." in report
    assert "Tables 4/5 in full (Q-Score, Z-score, ‖ĥ‖₁ ± std; Sup and SCL, GMP and One-Shot at 0, 30, 50, 70, 90%; no ΔGMP column)" in report
    assert "the paper states 30 models per cell for accuracy and PIEs and PD averaged over 5 models" in report
    # the paper's figures in its layout: every panel drawn, the missing cells as labelled empty panels
    for name in ("paper_figure2_q_cifar10.png", "paper_figure3_pd_cifar10.png", "paper_figure7_pie_classes_cifar10.png"):
        assert (out / "figures" / name).stat().st_size > 10_000, name
    assert "paper Figure 2 for cifar10: empty panels: Sup · One-Shot 90%\nno runs" not in report
    assert "paper Figure 2 for cifar10: empty panels: Sup · One-Shot 90%; SCL · One-Shot 90%" in report
    assert "paper Figure 7 for cifar10: 8 of 16 panels empty (no runs)" in report
    assert not (out / "figures" / "paper_figure4_pies_oneshot_cifar10.png").exists()  # no One-Shot 30/50/90 % cell at all
    # the children still find their parents by run id + seed after the copy, at 99 % like any sparsity
    pairs = _csv(out / "tables" / "oneshot_pairs.csv")
    assert [(r["sparsity"], r["n_pairs"]) for r in pairs] == [("0.99", "3")]
    assert "3 pair(s) found by the parent's run id and seed" in report


# -- bad input -------------------------------------------------------------------------------------
def _copy_runs(population: Path, dest: Path, names: dict[str, tuple[int, ...]]) -> None:
    for name, seeds in names.items():
        for seed in seeds:
            shutil.copytree(population / "runs" / name / f"s{seed}", dest / name / f"s{seed}")


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], out: Path) -> str:
    assert analyze(argv) == 2
    err = capsys.readouterr().err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_glob_matching_nothing_via_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Through cli.py's own dispatch (`python cli.py analyze ...` = cli.main(["analyze", ...]), in-process)."""
    import cli

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["analyze", "--runs", "nothing/*", "--out", "report"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --runs 'nothing/*' matches no run folder (no run.json at or below it)"
    ]
    assert not (tmp_path / "report").exists()


def test_runs_without_per_sample_files(population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _copy_runs(population, tmp_path / "runs", {"sup_dense": SEEDS, "sup_gmp": (0, 1)})
    for seed in (0, 1):
        (tmp_path / "runs" / "sup_gmp" / f"s{seed}" / "per_sample" / "test.npz").unlink()
    line = _refused(["--runs", "runs/*/*", "--out", "report"], capsys, tmp_path / "report")
    assert line == (
        "error: 2 run folder(s) have no per-sample file per_sample/test.npz (train with the "
        "callbacks.metrics.PerSamplePredictions callback and let the test stage finish): runs/sup_gmp/s0, runs/sup_gmp/s1"
    )


def test_mismatched_test_sets(population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _copy_runs(population, tmp_path / "runs", {"sup_dense": SEEDS, "sup_gmp": SEEDS})
    short = tmp_path / "runs" / "sup_gmp" / "s1" / "per_sample" / "test.npz"
    with np.load(short) as data:
        np.savez(short, **{k: data[k][:64] for k in data.files})
    shuffled = tmp_path / "runs" / "sup_dense" / "s2" / "per_sample" / "test.npz"
    with np.load(shuffled) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["index"] = arrays["index"][::-1].copy()
    np.savez(shuffled, **arrays)
    line = _refused(["--runs", "runs", "--out", "report"], capsys, tmp_path / "report")
    assert line == (
        "error: runs of dataset 'synthetic' do not share one test set (4 of 6 runs have 128 samples, e.g. "
        "runs/sup_dense/s0); differing: runs/sup_dense/s2 (different sample indices/order), runs/sup_gmp/s1 (64 samples)"
    )


def test_population_of_one_model(population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _copy_runs(population, tmp_path / "runs", {"sup_dense": (0,), "sup_gmp": SEEDS})
    line = _refused(["--runs", "runs", "--out", "report", "--wandb-mode", "disabled"], capsys, tmp_path / "report")
    assert line == (
        "error: 1 population(s) have only one model, so the accuracy std over models is undefined "
        "(synthetic · Sup · dense: runs/sup_dense/s0); add runs with other seeds, or pass --allow-single "
        "to report them with n=1 and std '–'"
    )
    assert analyze(["--runs", "runs", "--out", "report", "--wandb-mode", "disabled", "--allow-single"]) == 0
    assert "warning: population(s) of one model, reported with n=1 and std '–'" in capsys.readouterr().err
    acc = np.mean(_load(population, "sup_dense")[0]["pred"] == _load(population, "sup_dense")[0]["label"]) * 100
    assert f"| 0% | {acc:.2f} ± – (n=1) | – (noise floor needs ≥ 3 dense models) |" in (tmp_path / "report" / "report.md").read_text()


def test_out_folder_errors_and_nothing_half_written(population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert analyze(["--runs", str(population / "runs"), "--out", "mine"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --out 'mine' exists, is not empty and is not an earlier analyze output (no report.md); "
        "give a new or empty folder"
    )
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # a failure half-way leaves neither --out nor the temporary folder behind
    import analysis.cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("figure failure")

    monkeypatch.setattr(analysis.cli, "all_figures", broken)
    with pytest.raises(RuntimeError, match="figure failure"):
        analyze(["--runs", str(population / "runs"), "--out", "report", "--wandb-mode", "disabled"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    # argparse errors are one line too
    with pytest.raises(SystemExit) as exit_info:
        analyze(["--runs", "runs"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: analyze: the following arguments are required: --out (see python cli.py analyze --help)"
    )


def test_half_done_runs_are_refused_in_one_line_then_allowed_loudly(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _copy_runs(population, tmp_path / "runs", {name: SEEDS_OF[name] for name in EXPERIMENTS})
    runs = tmp_path / "runs"

    def edit(name: str, **changes: object) -> None:
        path = runs / name / "run.json"
        summary = json.loads(path.read_text())
        summary.update(changes)
        summary = {k: v for k, v in summary.items() if v is not REMOVE}
        path.write_text(json.dumps(summary))

    edit("sup_gmp/s1", status="incomplete", status_reason="trained 1 of trainer.max_epochs=2 epochs (2 of 4 optimiser steps)")
    edit("supcon_dense/s3", status=REMOVE)  # made before run.json had a status
    edit("supcon_gmp/s2", achieved_sparsity=0.31, achieved_sparsity_targets=0.31)
    # killed during its Q-Score callback: the predictions are there, q_score/z_score/l1_norm are not
    npz = runs / "sup_oneshot" / "s0" / "per_sample" / "test.npz"
    with np.load(npz) as data:
        np.savez(npz, **{k: data[k] for k in data.files if k not in ("q_score", "z_score", "l1_norm")})
    truncated = runs / "sup_dense" / "s3" / "per_sample" / "test.npz"
    truncated.write_bytes(truncated.read_bytes()[:700])
    line = _refused(["--runs", "runs", "--out", "report", "--wandb-mode", "disabled"], capsys, tmp_path / "report")
    one_shot = "synthetic · Sup · One-Shot 50%"
    assert line == (
        "error: 5 run(s) are not complete or not usable, so nothing was analysed: "
        "runs/sup_dense/s3 (per_sample/test.npz unreadable or truncated: BadZipFile); "
        "runs/sup_gmp/s1 (status incomplete: trained 1 of trainer.max_epochs=2 epochs (2 of 4 optimiser steps)); "
        f"runs/sup_oneshot/s0 (per_sample/test.npz has no l1_norm, which 2 other run(s) of {one_shot} have); "
        f"runs/sup_oneshot/s0 (per_sample/test.npz has no q_score, which 2 other run(s) of {one_shot} have); "
        f"runs/sup_oneshot/s0 (per_sample/test.npz has no z_score, which 2 other run(s) of {one_shot} have); "
        "runs/supcon_dense/s3 (no status in run.json (made before the run-status contract)); "
        "runs/supcon_gmp/s2 (achieved sparsity 0.310, target 0.5 (schedule did not finish?)); "
        "finish them (python cli.py fit ... --run.resume auto), leave them out of --runs, or pass --allow-incomplete "
        "to analyse them anyway"
    )
    assert analyze(["--runs", "runs", "--out", "report", "--wandb-mode", "disabled", "--allow-incomplete"]) == 0
    warnings = [w for w in capsys.readouterr().err.splitlines() if w.startswith("warning: runs/")]
    assert len(warnings) == 7  # one per problem
    assert "warning: runs/sup_dense/s3: per_sample/test.npz unreadable or truncated: BadZipFile; left out" in warnings
    assert (
        "warning: runs/sup_gmp/s1: status incomplete: trained 1 of trainer.max_epochs=2 epochs (2 of 4 optimiser steps); "
        "included anyway (--allow-incomplete)"
    ) in warnings
    report = (tmp_path / "report" / "report.md").read_text()
    banner = report.split("Made by")[0]
    assert "> **Warning: analysed with `--allow-incomplete`.**" in banner
    for folder in ("runs/sup_gmp/s1", "runs/sup_oneshot/s0", "runs/supcon_dense/s3", "runs/supcon_gmp/s2"):
        assert f"> - `{folder}`: " in banner.split("> Runs left out")[0]
    assert "> Runs left out (could not be read):\n> - `runs/sup_dense/s3`: per_sample/test.npz unreadable or truncated" in banner
    populations = {(r["method"], r["pruning"], r["sparsity"]): r for r in _csv(tmp_path / "report" / "tables" / "populations.csv")}
    assert populations[("sup", "dense", "0")]["seeds"] == "0 1 2"  # the unreadable run is not in
    assert populations[("sup", "gmp", "0.5")]["status"] == "complete 2, incomplete 1"
    assert populations[("supcon", "dense", "0")]["status"] == "complete 3, no status 1"
    assert "| Sup · One-Shot 50% | " + " | ".join(
        f"{v.mean():.2f} ± {v.std():.2f} (n=2)"
        for v in (np.stack([r[a] for r in _load(population, "sup_oneshot", (1, 2))]).astype(np.float64).mean(0)
                  for a in ("q_score", "z_score", "l1_norm"))
    ) + " |" in report  # fmt: skip


REMOVE = object()


def test_pd_score_is_needed_only_from_the_models_table6_uses(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The paper runs PD on 5 models of 30: a run past the first --pd-models seeds may lack pd_score."""
    monkeypatch.chdir(tmp_path)
    _copy_runs(population, tmp_path / "runs", {"sup_dense": DENSE_SEEDS, "sup_gmp": SEEDS})
    npz = tmp_path / "runs" / "sup_dense" / "s3" / "per_sample" / "test.npz"
    with np.load(npz) as data:
        np.savez(npz, **{k: data[k] for k in data.files if k != "pd_score"})
    args = ["--runs", "runs", "--out", "report", "--wandb-mode", "disabled", "--gallery-images", "0"]
    assert analyze([*args, "--pd-models", "3"]) == 0
    assert "| Sup · GMP 50% | " in (tmp_path / "report" / "report.md").read_text()
    line = _refused([*args[:3], "report2", *args[4:], "--pd-models", "4"], capsys, tmp_path / "report2")
    assert line.startswith(
        "error: 1 run(s) are not complete or not usable, so nothing was analysed: runs/sup_dense/s3 (per_sample/test.npz "
        "has no pd_score, which Table 6 needs from the first 4 seeds of synthetic · Sup · dense (3 of 4 runs have it)); "
    )


def test_oneshot_children_whose_parents_are_missing_or_wrong_are_named(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _copy_runs(population, tmp_path / "runs", {"sup_oneshot": SEEDS, "sup_dense": (1, 2, 3), "supcon_dense": (1,)})
    runs = tmp_path / "runs"
    child = runs / "sup_oneshot" / "s1" / "run.json"  # its parent_run now names a SupCon run
    summary = json.loads(child.read_text())
    summary["parent_run"]["path"] = str((runs / "supcon_dense" / "s1").resolve())
    child.write_text(json.dumps(summary))
    assert analyze(["--runs", "runs", "--out", "report", "--wandb-mode", "disabled", "--gallery-images", "0", "--allow-single"]) == 0
    err = capsys.readouterr().err.splitlines()
    prefix = "warning: synthetic · Sup · One-Shot 50%: One-Shot child"
    assert f"{prefix} runs/sup_oneshot/s0 is not paired: its parent {population / 'runs' / 'sup_dense' / 's0'} is not among the loaded runs (add it to --runs)" in err
    assert f"{prefix} runs/sup_oneshot/s1 is not paired: its parent runs/supcon_dense/s1 is synthetic · SCL · dense, not synthetic · Sup · dense" in err
    row = _csv(tmp_path / "report" / "tables" / "oneshot_pairs.csv")[0]
    assert (row["n_pairs"], row["n_children"], row["seeds"]) == ("1", "3", "2")
    assert row["unpaired"] == "runs/sup_oneshot/s0 runs/sup_oneshot/s1"
    assert "| Sup · One-Shot 50% | 1 of 3 | " in (tmp_path / "report" / "report.md").read_text()


def test_figure6_labels_and_what_happens_without_the_dataset(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datamodules

    runs = tmp_path / "runs"
    _copy_runs(population, runs, {"sup_dense": DENSE_SEEDS, "sup_gmp": SEEDS})
    names = [f"class{c}" for c in range(10)]
    monkeypatch.setattr(datamodules.SyntheticDataModule, "class_names", names, raising=False)
    out = tmp_path / "report"
    assert analyze(["--runs", str(runs), "--out", str(out), "--wandb-mode", "disabled", "--gallery-images", "5"]) == 0
    report = (out / "report.md").read_text()
    dense, pruned = _mode(_preds(population, "sup_dense")), _mode(_preds(population, "sup_gmp"))
    labels = _load(population, "sup_dense")[0]["label"]
    count = int((dense != pruned).sum())
    right = int(((dense != pruned) & (pruned == labels) & (dense != labels)).sum())  # the paper's selection, at 50 % here
    assert (out / "figures" / "figure6_flips_synthetic_sup_gmp_50.png").is_file()
    if right:
        how = f"*How:* pruned models right, dense models wrong, at 50% — the paper shows 30%, which these runs do not have; {min(5, right)} of the {count} PIEs"
    else:
        how = f"*How:* not the paper's selection: any flip at 50% (no PIE here has the pruned models right and the dense ones wrong); {min(5, count)} of the {count} PIEs"
    assert how in report, report
    assert "labels: class names of datamodules.SyntheticDataModule" in report
    # the class names label every per-class axis and column too
    assert "classes: class names of datamodules.SyntheticDataModule" in report
    assert "| setting | n | 0: class0 | 1: class1 |" in (out / "tables" / "pies_per_class.md").read_text()
    # the dataset cannot be built: the gallery is not drawn, the reason says why, the tables are all there
    for config in runs.glob("*/*/config.yaml"):
        config.write_text(config.read_text().replace("datamodules.SyntheticDataModule", "datamodules.NoSuchDataModule"))
    assert analyze(["--runs", str(runs), "--out", str(out), "--wandb-mode", "disabled"]) == 0
    report = (out / "report.md").read_text()
    assert not list((out / "figures").glob("figure6_*"))
    assert (
        f"- Figure 6 galleries for synthetic: the test images could not be loaded from {runs / 'sup_dense' / 's0' / 'config.yaml'}: "
        "cannot import datamodules.NoSuchDataModule (AttributeError: module 'datamodules' has no attribute 'NoSuchDataModule')"
    ) in report
    assert (out / "tables" / "table1.csv").is_file()
    # at 30 % (relabelled copies, the dataset back), the paper's own cell: its selection, or said that there is none
    runs30 = tmp_path / "runs30"
    shutil.copytree(runs, runs30)
    for run in runs30.glob("*/*"):
        _relabel(run, 0.3 if run.parent.name == "sup_gmp" else None)
        config = run / "config.yaml"
        config.write_text(config.read_text().replace("datamodules.NoSuchDataModule", "datamodules.SyntheticDataModule"))
    assert analyze(["--runs", str(runs30), "--out", str(out), "--wandb-mode", "disabled", "--gallery-images", "5"]) == 0
    report = (out / "report.md").read_text()
    if right:
        assert f"*How:* the paper's selection: 30%, pruned models right, dense models wrong; {min(5, right)} of the {count} PIEs" in report
    else:
        assert "*How:* not the paper's selection: any flip at 30% (no PIE here has the pruned models right" in report


def test_run_json_records_of_the_population(population: Path) -> None:
    """The fixture really made what the analysis groups on (guards the test's own assumptions)."""
    for name in EXPERIMENTS:
        for seed in SEEDS_OF[name]:
            summary = json.loads((population / "runs" / name / f"s{seed}" / "run.json").read_text())
            assert summary["seed"] == seed and summary["dataset"] == "synthetic" and summary["status"] == "complete"
            assert summary["method"] == name.split("_")[0]
            if name.endswith("gmp"):
                assert summary["pruning"] == "gmp" and summary["achieved_sparsity"] == pytest.approx(0.5, abs=1e-3)
            elif name in CHILDREN:
                assert summary["pruning"] == "oneshot" and summary["oneshot_mode"] == "child"
                target = 0.95 if name.endswith("95") else 0.5
                assert summary["achieved_sparsity_targets"] == pytest.approx(target, abs=1e-3)
            else:
                assert "pruning" not in summary


def test_oneshot_children_record_their_parent_run(population: Path) -> None:
    """The run-folder contract analyze pairs children by: the training CLI writes parent_run."""
    for name in CHILDREN:
        for seed in SEEDS:
            parent = json.loads((population / "runs" / name / f"s{seed}" / "run.json").read_text())["parent_run"]
            assert parent["path"] == str((population / "runs" / "sup_dense" / f"s{seed}").resolve()) and parent["seed"] == seed
# (the W&B sweep grids and the population runner are tested in tests/test_sweeps.py and tests/test_population.py)
