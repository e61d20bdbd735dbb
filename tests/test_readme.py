"""The README and the pages of docs/ say what the code does and point at what exists.

* Every bad-input block — a fenced block of `$ python cli.py ...` lines, each followed by the `error:`
  line it prints, as under "Bad input" in docs/training.md — run as written, prints exactly that line
  (and exits 2, writing nothing).
* Every relative link resolves to a file or folder of the repository (and a `#anchor` into a page to
  one of its headings), and every `configs/...yaml` path the pages name exists.
"""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO, run_cli

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CONFIG = re.compile(r"configs/[\w./{},*<>-]+?\.yaml")


def _name(page: Path) -> str:
    return str(page.relative_to(REPO))


def _prose(text: str) -> str:
    """The text outside fenced blocks and inline code spans (where a `[x](y)` is not a link)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def bad_input_examples() -> list[tuple[str, str, str]]:
    """(page, command, error line) of every block made of `$ python cli.py ...` / `error: ...` pairs."""
    examples = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text()):
            lines = block.strip().splitlines()
            if not lines or not lines[0].startswith("$ python cli.py "):
                continue
            pairs = [(lines[i].removeprefix("$ "), lines[i + 1] if i + 1 < len(lines) else "") for i in range(0, len(lines), 2)]
            assert all(cmd.startswith("python cli.py ") and err.startswith("error: ") for cmd, err in pairs), (page, lines)
            examples += [(_name(page), cmd, err) for cmd, err in pairs]
    return examples


def test_the_bad_input_section_is_collected() -> None:
    """The "Bad input" section (whichever page holds it) is among the blocks the examples come from."""
    holders = [p for p in PAGES if re.search(r"^#+ Bad input$", p.read_text(), re.M)]
    assert holders, "no page has a 'Bad input' section"
    section = holders[0].read_text().split("Bad input", 1)[1]
    first = re.search(r"^\$ (python cli\.py .*)$", section, re.M).group(1)
    assert first in {cmd for _, cmd, _ in bad_input_examples()}


@pytest.mark.parametrize("page,command,message", bad_input_examples(), ids=lambda v: v[-40:])
def test_the_bad_input_examples_print_what_the_page_shows(page: str, command: str, message: str, tmp_path: Path) -> None:
    args = shlex.split(command.removeprefix("python cli.py "))
    # the configs' relative paths are the repository's; the runs (there must be none) go to tmp_path
    args = [str(REPO / a) if a.startswith("configs/") else a for a in args]
    done = run_cli(*args, "--run.root", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "wandb").exists()


def github_anchors(page: Path) -> set[str]:
    """The `#anchor` of each heading of a page, as GitHub makes them (repeats get `-1`, `-2`, ...)."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.*)$", FENCE.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchor = next(a for a in (slug if i == 0 else f"{slug}-{i}" for i in itertools.count()) if a not in anchors)
        anchors.add(anchor)
    return anchors


def test_github_anchors_are_made_like_githubs() -> None:
    """The slug rule the link test relies on, on headings of the kinds the pages have."""
    assert github_anchors(REPO / "docs" / "pruning.md") >= {
        "table-1-as-the-authors-trained-it",
        "one-shot-callbackspruningoneshotpruning",
        "δgmp-later-pruning",
        "resume-ddp-runjson-wb",
    }


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_points_at_something_that_exists(page: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file or folder")
        elif anchor and file.suffix == ".md" and anchor not in github_anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
    assert not broken, f"{_name(page)}: " + "; ".join(broken)


def _expand_braces(path: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", path)
    if match is None:
        return [path]
    return [p for alt in match.group(1).split(",") for p in _expand_braces(path[: match.start()] + alt + path[match.end() :])]


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_config_path_the_page_names_exists(page: Path) -> None:
    """`configs/x.yaml`, `configs/data/{a,b}.yaml`, `configs/experiments/*.yaml` (placeholders such as
    `configs/<experiment>.yaml` are not paths)."""
    missing = []
    for mention in sorted(set(CONFIG.findall(page.read_text()))):
        if "<" in mention or ">" in mention:
            continue
        for path in _expand_braces(mention):
            if not (list(REPO.glob(path)) if "*" in path else (REPO / path).is_file()):
                missing.append(path)
    assert not missing, f"{_name(page)} names configs that do not exist: {missing}"
