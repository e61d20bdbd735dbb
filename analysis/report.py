"""``<out>/report.md`` and one W&B run (``job_type="analyze"``) with the same tables and images.

The report: a banner when ``--allow-incomplete`` let half-done runs in; how populations, PIEs,
intervals and the noise floor are computed; the paper's findings F1–F4 judged against these runs
(:mod:`analysis.findings`); warnings; every table and figure with one line on how it was computed;
what could not be drawn; which paper reference numbers exist and which of our cells have none.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis import reference
from analysis.figures import Figure, FigureSet
from analysis.findings import Finding
from analysis.runs import Study
from analysis.stats import METHOD_TEXT
from analysis.tables import Table
from analysis.uncertainty import StudyStats

TIE_TEXT = {
    "lowest": "a tie in the mode goes to the lowest class index (the authors' code, REFERENCE §3)",
    "disjoint": "tied modal classes form a set; a sample is a PIE only if the dense and pruned sets share no class",
}


def _banner(study: Study, show: Any) -> list[str]:
    """The --allow-incomplete banner: runs included anyway and runs left out, with why."""
    if not study.included_anyway and not study.left_out:
        return []
    lines = [
        "> **Warning: analysed with `--allow-incomplete`.** Some runs below are half-done or inconsistent; numbers "
        "that include them are not the study's final numbers.",
        ">",
    ]
    if study.included_anyway:
        lines.append("> Runs included anyway:")
        lines += [f"> - `{show(p.path)}`: {p.what}" for p in study.included_anyway]
    if study.left_out:
        lines.append("> Runs left out (could not be read):")
        lines += [f"> - `{show(p.path)}`: {p.what}" for p in study.left_out]
    return [*lines, ""]


def _reference_lines(study: Study) -> list[str]:
    lines = [
        "## Paper reference numbers",
        "",
        f"Source: {reference.PAPER}; the paper states {reference.MODELS_PER_CELL} models per cell for accuracy and PIEs "
        f"and PD averaged over {reference.PD_MODELS_PER_CELL} models. What is available here (REFERENCE.md §4):",
        "",
        *[f"- {text}" for text in reference.AVAILABLE.values()],
        "- The appendix numbers (95%, 99% sparsity) and the paper's full tables are **not available** (no full text "
        "was reachable); nothing is filled in for them.",
        "",
    ]
    others = [d for d in study.datasets if not reference.matches(d)]
    if others:
        lines += [f"No paper numbers for {', '.join(others)}: the paper reports {reference.DATASET} only.", ""]
    if reference.DATASET in study.datasets:
        cells = [(s.dataset, s.method, s.pruning, s.percent) for s in study.of(reference.DATASET)]
        for table, title in (("table1", "Table 1"), ("table4_5", "Tables 4/5"), ("table6", "Table 6")):
            missing = reference.unavailable(table, cells)
            if missing:
                lines.append(f"- {title}: no reference number for {len(missing)} of our cells — {'; '.join(missing)}.")
        lines.append("")
    return lines


def _stats_lines(study: Study, stats: StudyStats | None) -> list[str]:
    if stats is None:
        return []
    no_floor = [s.label() for s, p in study.populations.items() if s.is_dense and s not in stats.floors]
    lines = [
        f"- **Uncertainty**: every interval is a {METHOD_TEXT} — what is resampled is the models, never the test "
        "images; its coverage at 5, 10 and 30 models was measured on populations drawn from a known process "
        "(`python scripts/coverage.py`; the percentile bootstrap printed before covered less than it claimed). A "
        "statistic of several populations (SCL's drop − Sup's) leaves out each model of each of them.",
        "- **PIEs beside a floor of their size**: the mode of fewer models flips more often, so a PIE count is compared "
        "with noise only at one population size h = min((dense − 1) // 2, pruned − 1): PIEs of h pruned vs h dense models "
        "beside the **noise floor**, PIEs of h dense vs h other dense models (disjoint subsets without replacement, "
        f"every subset when there are few, else {stats.n_splits} random matched splits, seed {stats.seed}). "
        "**A cell's PIEs mean something only when the excess over its floor has an interval above 0.** The PIE set of all "
        "models (the paper's count, what Table 6 and the figures split by) has no floor of its own size.",
    ]
    if no_floor:
        lines.append(f"  No noise floor (fewer than 3 dense models): {'; '.join(no_floor)}.")
    return lines


def render_report(
    study: Study,
    tables: Sequence[Table],
    figures: FigureSet,
    *,
    command: str,
    tie: str,
    stats: StudyStats | None = None,
    findings: dict[str, list[Finding]] | None = None,
    show: Any = str,
    seconds_so_far: float | None = None,
) -> str:
    """The Markdown report (figures are linked as ``figures/<name>``)."""
    n_pop = len(study.populations)
    lines = [
        "# Population analysis: PIEs, tables, figures",
        "",
        *_banner(study, show),
        f"Made by `{command}` on {time.strftime('%Y-%m-%d %H:%M:%S')}: {len(study.runs)} runs in {n_pop} populations "
        f"(datasets: {', '.join(study.datasets)}).",
        "",
        "- **Populations** group runs by (dataset, method, pruning schedule, target sparsity) from `run.json`; "
        "a run without pruning (or with target 0) is dense. Every cell says how many models it aggregates (n). "
        "Only runs whose `run.json` status is `complete` are read"
        + (" (here some were included anyway, see the banner)." if study.included_anyway else "."),
        f"- **PIE** (Hooker et al. 2019): a test image whose modal prediction over the pruned models differs from "
        f"the modal prediction over the dense models of the same method; the true label is not used. Tie rule "
        f"`{tie}`: {TIE_TEXT[tie]}.",
        *_stats_lines(study, stats),
        f"- **Table 6** averages PD over the first {study.pd_models} seeds of each population (`--pd-models`; the "
        f"paper: {reference.PD_MODELS_PER_CELL}).",
        f"- **Paper numbers** ({reference.PAPER}) appear beside ours only where the setting matches "
        f"(dataset {reference.DATASET}, same method, schedule and sparsity); the paper used "
        f"{reference.MODELS_PER_CELL} models per cell. PIE counts depend on the population size: the mode of a few "
        f"models is noisier (and tied more often), so small populations count more PIEs than 30 models would.",
        "- Accuracy comes from `per_sample/test.npz` (pred == label over every test image), so it is exact "
        "even when the run was tested on several devices.",
        "",
    ]
    if findings:
        lines += ["## Findings of the paper against these runs", ""]
        lines += [
            "Each sub-claim is judged by the 95% interval over models of the difference it predicts *and* by its size: "
            "*supported* when the interval lies on the predicted side of 0 and the estimate is of the order of the paper's "
            f"own effect (within {reference.ORDER:g}× of it, either way; the paper's CIFAR-10 numbers, on every dataset); "
            "*direction only* when the direction is resolved but the size is not of that order or the paper prints no "
            "number; *contradicted* when the interval lies on the other side; *cannot resolve* when it contains 0, when "
            "a PIE count is not above its noise floor, or when populations are missing. Small or short-trained "
            "populations mostly cannot resolve the paper's findings; that is the honest answer, not a failure.",
            "",
        ]
        for dataset, items in findings.items():
            lines += [f"### {dataset}", ""]
            for item in items:
                lines += item.markdown()
            lines.append("")
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
    lines += _reference_lines(study)
    if seconds_so_far is not None:
        lines += [f"*Runs loaded, PIEs, statistics, tables and figures computed in {seconds_so_far:.1f} s (before W&B logging).*", ""]
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
                    for name in ("acc_diff", "acc_diff_low", "acc_diff_high", "h", "pies_h", "noise_floor_mean", "excess", "excess_low", "excess_high"):
                        if row.get(name) is not None:
                            run.summary[f"{name}/{key}"] = _wandb_value(row[name])
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
