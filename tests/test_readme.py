"""The README's examples say what the code does: every `$ python cli.py ...` line of its "Bad input"
block, run as written, prints exactly the `error:` line shown under it (and exits 2, writing nothing)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO, run_cli


def readme_bad_input_examples() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("### Bad input", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    lines = block.strip().splitlines()
    pairs = [(lines[i].removeprefix("$ "), lines[i + 1]) for i in range(0, len(lines), 2)]
    assert pairs and all(cmd.startswith("python cli.py ") and err.startswith("error: ") for cmd, err in pairs), lines
    return pairs


@pytest.mark.parametrize("command,message", readme_bad_input_examples(), ids=lambda v: v[-40:])
def test_the_readme_bad_input_examples_print_what_the_readme_shows(command: str, message: str, tmp_path: Path) -> None:
    args = shlex.split(command.removeprefix("python cli.py "))
    # the configs' relative paths are the repository's; the runs (there must be none) go to tmp_path
    args = [str(REPO / a) if a.startswith("configs/") else a for a in args]
    done = run_cli(*args, "--run.root", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "wandb").exists()
