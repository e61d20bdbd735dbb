"""What a referee reads in an ``analyze`` output, checked on the committed Fashion-MNIST study's report
(``studies/fashion_mnist/report``, rebuilt by ``python cli.py analyze --runs studies/fashion_mnist/runs
--out studies/fashion_mnist/report --wandb-mode disabled``) and, from ``tests/test_analysis.py``, on
the output of a freshly trained population: every printed interval contains its estimate, every PIE
count compared with a noise floor is at the floor's population size, and the interval headers say
what they resample."""

from __future__ import annotations

import csv
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STUDY_REPORT = REPO / "studies" / "fashion_mnist" / "report"

#: ``estimate [low, high]`` as Interval.fmt prints it (signed or not, any number of digits)
INTERVAL = re.compile(r"(?<![\w.\]])([+-]?\d+(?:\.\d+)?) \[([+-]?\d+(?:\.\d+)?), ([+-]?\d+(?:\.\d+)?)\]")
#: a PIE count beside a floor: ``h vs h: 534.6 · floor 414.5`` (Table 1) or ``h vs h: 534.6 vs floor 414.5`` (set tables)
BESIDE_FLOOR = re.compile(r"(\d+) vs (\d+): [\d.]+ (?:·|vs) floor ")


def intervals_in(text: str) -> list[tuple[float, float, float]]:
    return [(float(e), float(lo), float(hi)) for e, lo, hi in INTERVAL.findall(text)]


def check_output(folder: Path) -> int:
    """Every ``x [lo, hi]`` of ``report.md`` and ``tables/*.md`` has ``lo <= x <= hi``; every CSV
    ``<name>, <name>_low, <name>_high`` triple too; every "h vs h … floor" pairs two equal sizes.
    Returns how many intervals were checked (so a caller can tell the check was not empty)."""
    checked = 0
    for path in [folder / "report.md", *sorted((folder / "tables").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for estimate, low, high in intervals_in(text):
            assert low <= estimate <= high, f"{path.name}: {estimate} [{low}, {high}] misses its estimate"
            checked += 1
        for a, b in BESIDE_FLOOR.findall(text):
            assert a == b, f"{path.name}: a PIE count of {a} vs {b} models beside a floor"
    for path in sorted((folder / "tables").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        names = [c[: -len("_low")] for c in (rows[0] if rows else {}) if c.endswith("_low") and f"{c[:-4]}_high" in rows[0]]
        for row in rows:
            for name in names:
                if row.get(name) and row[f"{name}_low"] and row[f"{name}_high"]:
                    low, estimate, high = float(row[f"{name}_low"]), float(row[name]), float(row[f"{name}_high"])
                    assert low - 1e-9 <= estimate <= high + 1e-9, f"{path.name}: {name} {estimate} [{low}, {high}]"
                    checked += 1
    return checked


def test_the_pattern_reads_what_the_report_prints() -> None:
    assert intervals_in("difference +7.70 [+3.88, +11.52]; Δ -1.44 [-1.62, -1.25] and 404 [425, 675]") == [
        (7.70, 3.88, 11.52), (-1.44, -1.62, -1.25), (404.0, 425.0, 675.0)
    ]  # fmt: skip
    assert BESIDE_FLOOR.findall("2 vs 2: 534.6 · floor 414.5 · all 5 vs 5: 404; 404 (all 5 vs 5) · 2 vs 2: 534.6 vs floor 414.5") == [
        ("2", "2"), ("2", "2")
    ]  # fmt: skip


def test_a_bootstrap_pie_interval_that_misses_its_estimate_is_caught(tmp_path: Path) -> None:
    """The check bites: the report committed before this issue printed "404 [425, 675]"."""
    (tmp_path / "tables").mkdir()
    (tmp_path / "report.md").write_text("| Sup · GMP 90% | 404 [425, 675] |\n")
    try:
        check_output(tmp_path)
    except AssertionError as err:
        assert "404.0 [425.0, 675.0] misses its estimate" in str(err)
    else:
        raise AssertionError("an interval missing its estimate passed the check")
    (tmp_path / "report.md").write_text("404 (all 5 vs 5) · 5 vs 2: 534.6 vs floor 414.5\n")
    try:
        check_output(tmp_path)
    except AssertionError as err:
        assert "a PIE count of 5 vs 2 models beside a floor" in str(err)
    else:
        raise AssertionError("a count beside a floor of another size passed the check")


def test_the_committed_study_report_prints_intervals_that_contain_their_estimates() -> None:
    assert check_output(STUDY_REPORT) > 50
    report = (STUDY_REPORT / "report.md").read_text(encoding="utf-8")
    # every interval says what it resamples; none resamples test images
    assert "what is resampled is the models, never the test images" in report
    assert "bootstrap" not in report.split("## Findings")[1].split("## Populations")[0]
    # the PIE table compares counts only at one size, beside the floor of that size
    with open(STUDY_REPORT / "tables" / "pies_uncertainty.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    for row in rows:
        assert abs(float(row["excess"]) - (float(row["pies_h_mean"]) - float(row["noise_floor_mean"]))) < 0.01  # 6 digits in the CSV
        assert row["h"] == "2" and (row["n_dense"], row["n_pruned"]) == ("5", "5")
