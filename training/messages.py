"""What the training command says: the lines a finished fit prints, and one line for bad input."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.exceptions import MisconfigurationException

from callbacks.run_summary import RUN_JSON, read_run_json
from common.errors import ConfigError
from common.parser_errors import condense_parser_error
from common.run_folder import METRICS_CSV_FILE, PER_SAMPLE_TEST, WANDB_DIR


def end_summary(run_dir: Path, status: str, wandb_mode: str) -> str:
    """The lines a finished fit prints: what it reached, where it is, how to look at it."""
    summary = read_run_json(run_dir) or {}
    parts = []
    if isinstance(summary.get("test_acc"), (int, float)):
        parts.append(f"test accuracy {float(summary['test_acc']):.4f}")
    if isinstance(summary.get("achieved_sparsity"), (int, float)):
        parts.append(f"sparsity {float(summary['achieved_sparsity']):.4f} (target {summary.get('target_sparsity')})")
    if isinstance(summary.get("q_score_mean"), (int, float)):
        parts.append(f"mean Q-Score {float(summary['q_score_mean']):.3f}")
    lines = [f"run {status}: {run_dir}" + (f" ({summary.get('status_reason')})" if status != "complete" else "")]
    if parts:
        lines.append("  " + " | ".join(parts))
    offline = sorted((run_dir / WANDB_DIR).glob("offline-run-*"))
    if wandb_mode == "offline" and offline:
        lines.append(f"  W&B offline: wandb sync {offline[-1]}   (browse: wandb leet {run_dir / WANDB_DIR})")
    lines.append(f"  files: {run_dir / RUN_JSON}, {run_dir / PER_SAMPLE_TEST}, {run_dir / METRICS_CSV_FILE}")
    return "\n".join(lines)


def progress_text(summary: dict[str, Any]) -> str:
    epochs, total = summary.get("epochs_trained"), summary.get("max_epochs")
    test = summary.get("test_acc")
    text = f"{epochs}/{total} epochs" if epochs is not None else "trained"
    return text + (f", test_acc {float(test):.4f}" if isinstance(test, (int, float)) else "")


def user_error_message(exc: BaseException) -> str | None:
    """One line for an error the user caused (a :class:`ConfigError`, a parser error, Lightning's
    ``MisconfigurationException``), found through wrapping exceptions; ``None`` for bugs."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConfigError):
            return one_line(str(current))
        if isinstance(current, MisconfigurationException):
            return one_line(str(current))
        if isinstance(current, argparse.ArgumentError):
            return condense_parser_error(str(current))
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines) if len(lines) <= 3 else lines[0]
