"""Read a W&B offline run back, for tests that assert on what a user would see in W&B.

wandb 0.31 has no Python reader for the ``.wandb`` transaction log any more (the old
``wandb.sdk.internal.datastore`` is gone); its CLI does it: ``wandb leet inspect --json <run>``
prints one JSON object per record, and ``--summary --json`` the final state. This module runs that
CLI (the one next to the current Python interpreter) and returns plain dicts.

    run = read_offline_run(find_offline_run(tmp_path))
    run["config"]      # dict, the run's config (nested as logged)
    run["history"]     # list of dicts, one per logged step; media values are dicts with "_type"
    run["summary"]     # dict, last value of every key
    run["files"]       # sorted media file names saved with the run (e.g. "media/images/x.png")
    run["artifacts"]   # list of {"name", "type", "files"} of logged artifacts
    history_keys(run)  # every key ever logged
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def _wandb_cli() -> str:
    beside = Path(sys.executable).with_name("wandb")
    if beside.exists():
        return str(beside)
    found = shutil.which("wandb")
    if found is None:
        raise RuntimeError("the `wandb` command is not installed next to this Python; cannot read offline runs")
    return found


def find_offline_run(root: str | Path) -> Path:
    """The single ``offline-run-*`` folder under ``root`` (searched recursively)."""
    runs = sorted(p for p in Path(root).rglob("offline-run-*") if p.is_dir())
    if len(runs) != 1:
        raise AssertionError(f"expected one W&B offline run under {root}, found {[str(r) for r in runs]}")
    return runs[0]


def _inspect(run_dir: Path, *extra: str) -> str:
    done = subprocess.run(
        [_wandb_cli(), "leet", "inspect", "--json", *extra, str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wandb leet inspect failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def _unflatten_media(item: dict[str, Any]) -> dict[str, Any]:
    """History items store media as flat ``key.field`` entries next to ``key._type``; regroup them."""
    media = {k[: -len("._type")] for k in item if k.endswith("._type")}
    out: dict[str, Any] = {}
    for key, value in item.items():
        owner = next((m for m in media if key.startswith(m + ".")), None)
        if owner is None:
            out[key] = value
        else:
            out.setdefault(owner, {})[key[len(owner) + 1 :]] = value
    return out


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """``config``, ``history``, ``summary``, ``files``, ``artifacts`` (and ``state``) of an offline run folder."""
    run_dir = Path(run_dir)
    history: list[dict[str, Any]] = []
    files: set[str] = set()
    artifacts: list[dict[str, Any]] = []
    for line in _inspect(run_dir).splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        kind = record.get("type")
        if kind == "history":
            history.append(_unflatten_media(record["history"].get("item", {})))
        elif kind == "files":
            files.update(f["path"] for f in record["files"].get("files", []) if f["path"].startswith("media/"))
        elif kind == "artifact":
            art = record["artifact"]
            artifacts.append(
                {
                    "name": art.get("name"),
                    "type": art.get("type"),
                    "files": [c["path"] for c in art.get("manifest", {}).get("contents", [])],
                }
            )
    state = json.loads(_inspect(run_dir, "--summary"))
    return {
        "config": state.get("config", {}),
        "history": history,
        "summary": state.get("summary", {}),
        "files": sorted(files),
        "artifacts": artifacts,
        "state": state.get("state"),
    }


def history_keys(run: dict[str, Any]) -> set[str]:
    """Every key logged in any history step."""
    return {key for item in run["history"] for key in item}
