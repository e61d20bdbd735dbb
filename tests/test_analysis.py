"""`python cli.py analyze`: PIE maths against hand-made examples, an end-to-end population of tiny real
runs (Sup and SupCon x dense and GMP 50% x 3 seeds on synthetic data) checked against an independent
NumPy/SciPy computation, the W&B record read back, and every bad input with its exact message."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SUP, TINY_SUPCON
from scipy import stats

from analysis.cli import main as analyze
from analysis.pies import modal_labels, modal_sets, overlap, pie_flags
from wandb_offline import find_offline_run, history_keys, read_offline_run

SEEDS = (0, 1, 2)
GMP = [
    "--pruning.class_path", "callbacks.pruning.GradualMagnitudePruning",
    "--pruning.init_args.final_sparsity", "0.5",
    "--pruning.init_args.begin_step", "1",
    "--pruning.init_args.end_step", "4",
    "--pruning.init_args.frequency", "1",
]  # fmt: skip
# shorter than TINY_*: 2 steps per epoch, 2 epochs (4 optimiser steps = the whole GMP schedule),
# no validation loop or checkpoint, cheap two-view augmentation for SupCon; PD on a 128-image bank
FAST = [
    "--data.init_args.train_size", "128",
    "--trainer.max_epochs", "2",
    "--trainer.limit_val_batches", "0",
    "--trainer.enable_checkpointing", "false",
    "--run.wandb_mode", "disabled",
    "--trainer.callbacks+=callbacks.metrics.PredictionDepth",
    "--trainer.callbacks.init_args.train_subset_size", "128",
]  # fmt: skip
EXPERIMENTS = {
    "sup_dense": [*TINY_SUP],
    "sup_gmp": [*TINY_SUP, *GMP],
    "supcon_dense": [*TINY_SUPCON, "--data.init_args.augmentation", "supervised"],
    "supcon_gmp": [*TINY_SUPCON, "--data.init_args.augmentation", "supervised", *GMP],
}
SETTINGS = {"sup_dense": "Sup · dense", "sup_gmp": "Sup · GMP 50%", "supcon_dense": "SCL · dense", "supcon_gmp": "SCL · GMP 50%"}
TABLES = ("populations", "table1", "table4_5", "table6", "pies_shared", "pies_per_class")


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 finished run folders ``<root>/runs/<experiment>/s<seed>``, trained in this process."""
    import cli
    import torch

    root = tmp_path_factory.mktemp("population")
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
                for seed in SEEDS:
                    run_dir = root / "runs" / name / f"s{seed}"
                    cli.main(["fit", *args, *FAST, "--seed_everything", str(seed), "--run.dir", str(run_dir)])
                    mp.delenv(cli.RUN_DIR_ENV, raising=False)
    finally:
        torch.set_num_threads(threads)
    return root


# -- an independent reading of the run folders (no analysis.* code) -----------------------------
def _load(population: Path, name: str) -> list[dict[str, np.ndarray]]:
    out = []
    for seed in SEEDS:
        with np.load(population / "runs" / name / f"s{seed}" / "per_sample" / "test.npz") as data:
            out.append({k: data[k] for k in data.files})
    return out


def _preds(population: Path, name: str) -> np.ndarray:
    return np.stack([r["pred"] for r in _load(population, name)])


def _scipy_pies(population: Path, method: str) -> np.ndarray:
    # scipy.stats.mode returns the smallest of the tied values: the "lowest class index" rule
    dense = stats.mode(_preds(population, f"{method}_dense"), axis=0, keepdims=False).mode
    pruned = stats.mode(_preds(population, f"{method}_gmp"), axis=0, keepdims=False).mode
    return dense != pruned


def _acc_cell(population: Path, name: str) -> str:
    acc = np.array([np.mean(r["pred"] == r["label"]) * 100 for r in _load(population, name)])
    return f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f} (n=3)"


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
def test_analyze_population_end_to_end(population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert analyze(["--runs", str(population / "runs"), "--out", str(out), "--wandb-mode", "offline"]) == 0
    printed = capsys.readouterr()
    assert [line.split("]")[0] for line in printed.out.splitlines() if line.startswith("analyze [")] == [
        f"analyze [{i}/7" for i in range(1, 8)
    ]
    assert "analyze: done in" in printed.out
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]  # no temporary folder left

    for name in TABLES:
        assert (out / "tables" / f"{name}.md").is_file() and (out / "tables" / f"{name}.csv").is_file()
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == [
        "pies_per_class_synthetic_gmp.png",
        "scatter_pd_score_synthetic_sup_gmp.png",
        "scatter_pd_score_synthetic_supcon_gmp.png",
        "scatter_q_score_synthetic_sup_gmp.png",
        "scatter_q_score_synthetic_supcon_gmp.png",
    ]
    report = (out / "report.md").read_text()
    for name in figures:
        assert f"(figures/{name})" in report
    assert "UMAP grid for synthetic: no run has test representations saved" in report

    # PIE counts = an independent SciPy computation over the npz predictions
    pies = {m: _scipy_pies(population, m) for m in ("sup", "supcon")}
    rows = {(r["method"], r["pruning"]): r for r in _csv(out / "tables" / "table1.csv")}
    assert set(rows) == {("sup", "dense"), ("sup", "gmp"), ("supcon", "dense"), ("supcon", "gmp")}
    for method, flags in pies.items():
        assert int(rows[(method, "gmp")]["pies"]) == int(flags.sum())
        assert rows[(method, "dense")]["pies"] == ""
        assert rows[(method, "gmp")]["n_models"] == rows[(method, "gmp")]["n_dense"] == "3"
        assert rows[(method, "gmp")]["seeds"] == "0 1 2"
    # every expected Table 1 cell, in the report and in tables/table1.md
    table1_md = (out / "tables" / "table1.md").read_text()
    header = "| sparsity | Sup/GMP acc (%) | Sup/GMP PIEs | SCL/GMP acc (%) | SCL/GMP PIEs |"
    row0 = f"| 0% | {_acc_cell(population, 'sup_dense')} | – | {_acc_cell(population, 'supcon_dense')} | – |"
    row50 = (
        f"| 50% | {_acc_cell(population, 'sup_gmp')} | {int(pies['sup'].sum())} (n=3 dense / 3 pruned) | "
        f"{_acc_cell(population, 'supcon_gmp')} | {int(pies['supcon'].sum())} (n=3 dense / 3 pruned) |"
    )
    for text in (report, table1_md):
        assert header in text and row0 in text and row50 in text
    # shared vs unique PIEs (Sup ∩ SCL at GMP 50 %)
    shared = _csv(out / "tables" / "pies_shared.csv")
    assert len(shared) == 1
    both = pies["sup"] & pies["supcon"]
    assert (int(shared[0]["shared"]), int(shared[0]["only_a"]), int(shared[0]["only_b"])) == (
        int(both.sum()), int((pies["sup"] & ~pies["supcon"]).sum()), int((pies["supcon"] & ~pies["sup"]).sum())
    )  # fmt: skip
    # per-class distribution
    labels = _load(population, "sup_dense")[0]["label"]
    per_class = {(r["method"], int(r["class"])): int(r["pies"]) for r in _csv(out / "tables" / "pies_per_class.csv")}
    for method, flags in pies.items():
        expected = np.bincount(labels[flags], minlength=10)
        assert [per_class[(method, c)] for c in range(10)] == expected.tolist()
    # Tables 4/5, every cell: per-sample mean over the models, then mean ± std over the test samples
    for name, setting in SETTINGS.items():
        cells = []
        for array in ("q_score", "z_score", "l1_norm"):
            v = np.stack([r[array] for r in _load(population, name)]).astype(np.float64).mean(0)
            cells.append(f"{v.mean():.2f} ± {v.std():.2f} (n=3)")
        assert f"| {setting} | {' | '.join(cells)} |" in report
    for name, setting in SETTINGS.items():  # rows of populations, table4_5 (+ table6, pies_per_class if pruned)
        assert report.count(f"| {setting} | ") == (4 if name.endswith("gmp") else 2)
    # Table 6, every cell: PD of PIEs vs non-PIEs, from the pruned and from the dense models
    for method, flags in pies.items():
        cells = [str(int(flags.sum()))]
        for name in (f"{method}_gmp", f"{method}_dense"):
            pd = np.stack([r["pd_score"] for r in _load(population, name)]).astype(np.float64).mean(0)
            for part in (flags, ~flags):
                cells.append(f"{pd[part].mean():.2f} ± {pd[part].std():.2f} (n=3, {int(part.sum())} samples)")
        assert f"| {SETTINGS[f'{method}_gmp']} | {' | '.join(cells)} |" in report
    assert "no paper numbers: the paper reports cifar10 only, this is synthetic" in report

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
    assert record["config"]["pie_tie"] == "lowest" and record["config"]["n_runs"] == 12
    assert record["summary"]["pies/synthetic/sup/gmp/0.5"] == int(pies["sup"].sum())
    assert any(a["type"] == "analysis" and "report.md" in a["files"] for a in record["artifacts"])


def test_disjoint_tie_rule_and_rerun_replaces_output(population: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["--runs", str(population / "runs" / "sup_*"), "--out", str(out), "--wandb-mode", "disabled"]
    assert analyze(args) == 0
    (out / "stale.txt").write_text("from the first analysis")
    assert analyze([*args, "--pie-tie", "disjoint"]) == 0
    assert not (out / "stale.txt").exists()  # an earlier analyze output is replaced as a whole
    dense, pruned = _preds(population, "sup_dense"), _preds(population, "sup_gmp")

    def modes(preds: np.ndarray) -> list[set[int]]:
        votes = [np.bincount(col, minlength=10) for col in preds.T]
        return [set(np.flatnonzero(v == v.max()).tolist()) for v in votes]

    expected = sum(1 for d, p in zip(modes(dense), modes(pruned)) if not d & p)
    rows = {r["pruning"]: r for r in _csv(out / "tables" / "table1.csv")}
    assert int(rows["gmp"]["pies"]) == expected <= int(_scipy_pies(population, "sup").sum())
    assert "Tie rule `disjoint`" in (out / "report.md").read_text()


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


def test_paper_numbers_beside_matching_cifar10_settings(population: Path, tmp_path: Path) -> None:
    """Relabel copies as CIFAR-10 at 90 %: the paper's Table 1/4-5/6 numbers appear beside ours."""
    runs = tmp_path / "runs"
    _copy_runs(population, runs, {"sup_dense": SEEDS, "sup_gmp": SEEDS})
    for path in runs.glob("*/*/run.json"):
        summary = json.loads(path.read_text())
        summary["dataset"] = "cifar10"
        if "pruning" in summary:
            summary["target_sparsity"] = summary["achieved_sparsity"] = 0.9
        path.write_text(json.dumps(summary))
    out = tmp_path / "report"
    assert analyze(["--runs", str(runs), "--out", str(out), "--wandb-mode", "disabled"]) == 0
    report = (out / "report.md").read_text()
    assert f"| 0% | {_acc_cell(population, 'sup_dense')} · paper 90.58 ± 0.38 | – |" in report
    assert f"| 90% | {_acc_cell(population, 'sup_gmp')} · paper 89.47 ± 0.36 | " in report
    assert f"{int(_scipy_pies(population, 'sup').sum())} (n=3 dense / 3 pruned) · paper 273 |" in report
    assert "| 1.44 / 5.73 / 4.15 |" in report and "| 1.39 / 5.66 / 4.21 |" in report
    assert "≈14.9 vs ≈10.9" in report
    row = next(r for r in _csv(out / "tables" / "table1.csv") if r["pruning"] == "gmp")
    assert (row["paper_acc_mean"], row["paper_acc_std"], row["paper_pies"]) == ("89.47", "0.36", "273")

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
    assert f"| 0% | {acc:.2f} ± – (n=1) | – |" in (tmp_path / "report" / "report.md").read_text()


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


def test_run_json_records_of_the_population(population: Path) -> None:
    """The fixture really made what the analysis groups on (guards the test's own assumptions)."""
    for name in EXPERIMENTS:
        for seed in SEEDS:
            summary = json.loads((population / "runs" / name / f"s{seed}" / "run.json").read_text())
            assert summary["seed"] == seed and summary["dataset"] == "synthetic"
            assert summary["method"] == name.split("_")[0]
            if name.endswith("gmp"):
                assert summary["pruning"] == "gmp" and summary["achieved_sparsity"] == pytest.approx(0.5, abs=1e-3)
            else:
                assert "pruning" not in summary


# -- the Table 1 population: W&B sweep grid and the plain loop ------------------------------------------
def _agent_command(sweep: dict, point: dict[str, object]) -> list[str]:
    """The command line `wandb agent` runs for one grid point (wandb's own expansion of ${args})."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    expanded = {"env": [], "interpreter": [], "program": [], **create_sweep_command_args({"args": {k: {"value": v} for k, v in point.items()}})}
    command: list[str] = []
    for token in sweep["command"]:
        command += expanded[token[2:-1]] if token.startswith("${") else [token]
    return command


def test_table1_sweeps_parse_and_match_the_loop(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import cli
    import yaml

    monkeypatch.setattr(sys, "argv", ["cli.py"])
    repo = Path(cli.__file__).resolve().parent
    grids = {}
    for name in ("table1", "table1_dense"):
        sweep = yaml.safe_load((repo / "configs" / "sweeps" / f"{name}.yaml").read_text())
        assert sweep["program"] == "cli.py" and sweep["method"] == "grid"
        params = {k: v["values"] for k, v in sweep["parameters"].items()}
        assert params["seed_everything"] == list(range(30))
        for config in params["config"]:
            assert (repo / config).is_file(), config
        grids[name] = params
        # the last grid point, as the agent would run it, resolves to the intended config
        point = {k: v[-1] for k, v in params.items()}
        command = _agent_command(sweep, point)
        assert command[0] == "fit" and command[1].startswith("--config=")
        with pytest.raises(SystemExit):
            cli.main([*command, "--print_config"])
        resolved = yaml.safe_load(capsys.readouterr().out)
        assert resolved["seed_everything"] == 29 and resolved["run"]["wandb_mode"] == "online"
        if "pruning.init_args.final_sparsity" in point:
            assert resolved["pruning"]["init_args"]["final_sparsity"] == 0.9
        else:
            assert resolved.get("pruning") is None
    assert grids["table1"]["pruning.init_args.final_sparsity"] == [0.3, 0.5, 0.7, 0.9]
    assert len(grids["table1"]["config"]) == 5 and len(grids["table1_dense"]["config"]) == 2
    # the shell loop runs the same grid: 30 x (2 dense + 5 x 4 pruned) = 660 commands
    done = subprocess.run([str(repo / "scripts" / "table1_loop.sh")], env={**os.environ, "DRY_RUN": "1"},
                          capture_output=True, text=True, check=True)  # fmt: skip
    lines = done.stdout.splitlines()
    assert len(lines) == 30 * (len(grids["table1_dense"]["config"]) + 5 * 4)
    configs = {line.split("--config ")[1].split()[0] for line in lines}
    assert configs == {*grids["table1"]["config"], *grids["table1_dense"]["config"]}
