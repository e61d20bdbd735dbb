"""``<out>/report.md`` (every table and figure, one line on how each was computed, the paper beside
ours where the setting matches) and one W&B run (``job_type="analyze"``) with the same tables and images.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis import reference
from analysis.figures import Figure, FigureSet
from analysis.runs import Study
from analysis.tables import Table

TIE_TEXT = {
    "lowest": "a tie in the mode goes to the lowest class index (the authors' code, REFERENCE §3)",
    "disjoint": "tied modal classes form a set; a sample is a PIE only if the dense and pruned sets share no class",
}


def render_report(
    study: Study,
    tables: Sequence[Table],
    figures: FigureSet,
    *,
    command: str,
    tie: str,
    seconds_so_far: float | None = None,
) -> str:
    """The Markdown report (figures are linked as ``figures/<name>``)."""
    n_pop = len(study.populations)
    lines = [
        "# Population analysis: PIEs, tables, figures",
        "",
        f"Made by `{command}` on {time.strftime('%Y-%m-%d %H:%M:%S')}: {len(study.runs)} runs in {n_pop} populations "
        f"(datasets: {', '.join(study.datasets)}).",
        "",
        f"- **Populations** group runs by (dataset, method, pruning schedule, target sparsity) from `run.json`; "
        f"a run without pruning (or with target 0) is dense. Every cell says how many models it aggregates (n).",
        f"- **PIE** (Hooker et al. 2019): a test image whose modal prediction over the pruned models differs from "
        f"the modal prediction over the dense models of the same method; the true label is not used. Tie rule "
        f"`{tie}`: {TIE_TEXT[tie]}.",
        f"- **Paper numbers** ({reference.PAPER}) appear beside ours only where the setting matches "
        f"(dataset {reference.DATASET}, same method, schedule and sparsity); the paper used "
        f"{reference.MODELS_PER_CELL} models per cell. PIE counts depend on the population size: the mode of a few "
        f"models is noisier (and tied more often), so small populations count more PIEs than 30 models would.",
        f"- Accuracy comes from `per_sample/test.npz` (pred == label over every test image), so it is exact "
        f"even when the run was tested on several devices.",
        "",
    ]
    if study.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in study.warnings] + [""]
    for table in tables:
        lines.append(table.markdown(level=2))
        lines.append(f"Files: `tables/{table.name}.md`, `tables/{table.name}.csv`.")
        lines.append("")
    lines += ["## Figures", ""]
    if not figures.figures:
        lines += ["*(no figure could be drawn)*", ""]
    for fig in figures.figures:
        lines += [f"### {fig.title}", "", f"*How:* {fig.how}", "", f"![{fig.title}](figures/{fig.name})", ""]
    if figures.missing:
        lines += ["### Not drawn (missing inputs)", ""] + [f"- {m}" for m in figures.missing] + [""]
    lines += ["## What the paper found (to check against the tables above)", ""]
    lines += [f"- **{key}**: {text}" for key, text in reference.FINDINGS.items()]
    lines.append("")
    if seconds_so_far is not None:
        lines += [f"*Runs loaded, PIEs, tables and figures computed in {seconds_so_far:.1f} s (before W&B logging).*", ""]
    return "\n".join(lines)


def _wandb_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def log_to_wandb(
    out_dir: Path,
    study: Study,
    tables: Sequence[Table],
    figures: Sequence[Figure],
    *,
    mode: str,
    project: str,
    config: dict[str, Any],
    report: Path,
) -> Path | None:
    """Log the tables (``wandb.Table``), figures (``wandb.Image``), PIE counts and the report to one W&B run.

    The run has ``job_type="analyze"`` and lives in ``<out_dir>/wandb`` (offline: ``wandb sync
    <out>/wandb/offline-run-*`` uploads it later). Returns the run's folder, or None when disabled.
    """
    if mode == "disabled":
        return None
    import wandb

    run = wandb.init(
        project=project,
        job_type="analyze",
        dir=str(out_dir),
        mode=mode,
        config=config,
        name=f"analyze-{time.strftime('%Y%m%d-%H%M%S')}",
        tags=["analyze", *study.datasets],
        settings=wandb.Settings(console="off", silent=True),
    )
    try:
        payload: dict[str, Any] = {}
        for table in tables:
            data = [[_wandb_value(row.get(c)) for c in table.csv_columns] for row in table.csv_rows]
            payload[f"tables/{table.name}"] = wandb.Table(columns=list(table.csv_columns), data=data, allow_mixed_types=True)
        for fig in figures:
            payload[f"figures/{Path(fig.name).stem}"] = wandb.Image(str(out_dir / "figures" / fig.name), caption=fig.title)
        run.log(payload)
        for table in tables:
            if table.name == "table1":
                for row in table.csv_rows:
                    key = f"{row['dataset']}/{row['method']}/{row['pruning']}/{row['sparsity']:g}"
                    run.summary[f"acc_mean/{key}"] = _wandb_value(row["acc_mean"])
                    run.summary[f"n_models/{key}"] = row["n_models"]
                    if row.get("pies") is not None:
                        run.summary[f"pies/{key}"] = row["pies"]
        artifact = wandb.Artifact(name="analysis-report", type="analysis")
        artifact.add_file(str(report), name="report.md")
        for table in tables:
            artifact.add_file(str(out_dir / "tables" / f"{table.name}.csv"), name=f"tables/{table.name}.csv")
        run.log_artifact(artifact)
        folder = Path(run.dir).parent
    finally:
        run.finish()
    return folder


__all__ = ["TIE_TEXT", "log_to_wandb", "render_report"]
