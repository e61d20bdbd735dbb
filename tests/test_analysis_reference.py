"""analysis/reference.py holds every cell of the paper's Tables 1, 3, 4, 5 and 6 exactly as docs/paper.md prints it.

The test reads the Markdown tables of docs/paper.md's "Results to compare against" cell by cell — value and
± — and compares each with the data the report uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

from analysis import reference

_PAGE = (REPO / "docs" / "paper.md").read_text()
SECTION = _PAGE[_PAGE.index("## Results to compare against") : _PAGE.index("## The findings")]
COLUMNS = {"Sup/GMP": ("sup", "gmp"), "Sup/One-Shot": ("sup", "oneshot"), "SCL/GMP": ("supcon", "gmp"),
           "SCL/ΔGMP": ("supcon", "delta_gmp"), "SCL/One-Shot": ("supcon", "oneshot")}  # fmt: skip


def _table(title: str) -> list[list[str]]:
    """The rows (cells as text) of the Markdown table under the line starting with ``title``."""
    lines = SECTION.split(title, 1)[1].splitlines()[1:]  # the lines after the title's
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[start:end]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]  # without header and rule


def _pm(text: str) -> tuple[float, float]:
    mean, std = text.split("±")
    return float(mean), float(std)


def _key(method: str, pruning: str, percent: int) -> tuple[str, str, int]:
    """Table 1 keeps its one dense row per method under ``dense``; Tables 4–6 keep each column's 0 % row."""
    return (method, "dense", 0) if percent == 0 else (method, pruning, percent)


def test_table1_every_cell() -> None:
    header = ["Sup/GMP", "Sup/One-Shot", "SCL/GMP", "SCL/ΔGMP", "SCL/One-Shot"]
    rows = _table("Table 1 — test accuracy")
    assert [int(r[0]) for r in rows] == [0, 30, 50, 70, 90]
    checked = 0
    for row in rows:
        percent = int(row[0])
        for i, column in enumerate(header):
            method, pruning = COLUMNS[column]
            cell = reference.TABLE1[_key(method, pruning, percent)]
            acc, pie = row[1 + 2 * i], row[2 + 2 * i]
            assert (cell.acc_mean, cell.acc_std) == _pm(acc), (column, percent)
            assert cell.pies == (None if pie == "–" else int(pie)), (column, percent)
            checked += 1
    assert checked == 25 and len(reference.TABLE1) == 2 + 20


@pytest.mark.parametrize("title,method", [("Table 4 — SCL", "supcon"), ("Table 5 — Sup", "sup")])
def test_tables_4_and_5_every_cell(title: str, method: str) -> None:
    rows = _table(title)
    assert [int(r[0]) for r in rows] == [0, 30, 50, 70, 90]
    for row in rows:
        percent = int(row[0])
        for offset, pruning in ((1, "gmp"), (4, "oneshot")):
            cell = reference.TABLE4_5[(method, pruning, percent)]
            got = [(cell.q, cell.q_std), (cell.z, cell.z_std), (cell.l1, cell.l1_std)]
            assert got == [_pm(row[offset + j]) for j in range(3)], (method, pruning, percent)
    assert not any(k[1] == "delta_gmp" for k in reference.TABLE4_5)  # the paper gives no ΔGMP column there
    assert reference.table4_5("cifar10", method, "dense", 0) == reference.TABLE4_5[(method, "gmp", 0)]


def test_table6_every_cell() -> None:
    rows = _table("Table 6 — mean PD-Score")
    header = ["Sup/GMP", "Sup/One-Shot", "SCL/GMP", "SCL/One-Shot"]
    assert [int(r[0]) for r in rows] == [0, 30, 50, 70, 90]
    for row in rows:
        percent = int(row[0])
        for i, column in enumerate(header):
            method, pruning = COLUMNS[column]
            cell = reference.TABLE6[(method, pruning, percent)]
            assert [(cell.pies, cell.pies_std), (cell.non_pies, cell.non_pies_std)] == [_pm(row[1 + 2 * i]), _pm(row[2 + 2 * i])]
    assert len(reference.TABLE6) == 4 * 5


def test_appendix_table3() -> None:
    line = SECTION.split("Appendix Table 3", 1)[1].split("\n\n", 1)[0]
    found = {int(p): (int(h), int(o)) for p, h, o in re.findall(r"(\d+) %: (\d+) vs\s+(\d+)", line)}
    assert found == reference.TABLE3 and len(found) == 4
    assert all(reference.TABLE1[("sup", "gmp", p)].pies == ours for p, (_, ours) in found.items())


def test_lookups_are_cifar10_only() -> None:
    assert reference.table6("cifar10", "supcon", "gmp", 90) == reference.TABLE6[("supcon", "gmp", 90)]
    assert reference.table4_5("fashion_mnist", "sup", "gmp", 90) is None
    missing = reference.unavailable("table6", [("cifar10", "supcon", "delta_gmp", 90), ("cifar10", "sup", "gmp", 95)])
    assert missing == ["SCL · ΔGMP 90% (the paper has no ΔGMP column in Tables 4–6)",
                       "Sup · GMP 95% (95% is in the paper's appendix, whose numbers are not available here)"]  # fmt: skip
    assert Path(reference.__file__).name == "reference.py"
