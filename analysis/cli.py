"""``python cli.py analyze --runs <globs or folders...> --out <dir>``: run folders -> PIEs, tables, figures, report.

Steps (one progress line each): find the run folders, load and check the populations, PIEs, tables,
figures, report, W&B. Everything is written into a temporary folder beside ``--out`` and renamed to
``--out`` at the very end, so an error never leaves a half-written ``--out``. An existing ``--out``
is replaced only when it is an earlier ``analyze`` output (it has ``report.md``) or empty.

Bad input (a glob matching nothing, runs without per-sample files, half-done runs — status not
``complete``, sparsity target missed, unreadable/truncated per-sample files, a column the rest of
the population has — without ``--allow-incomplete``, mismatched test sets, a population of one
model without ``--allow-single``, ...) prints one ``error: ...`` line naming the offending run
folders and returns 2; nothing is written. ``--allow-incomplete`` turns the half-done refusals into
one ``warning:`` line each and a banner at the top of ``report.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from analysis.figures import all_figures
from analysis.findings import all_findings
from analysis.pairs import pair_children
from analysis.paper_figures import paper_figures
from analysis.pies import TIE_RULES, pies_per_setting, shared_pies
from analysis.report import log_to_wandb, render_report
from analysis.runs import PD_MODELS, AnalysisError, Study, load_study
from analysis.stats import METHOD
from analysis.tables import all_tables
from analysis.uncertainty import compute_stats

WANDB_MODES = ("offline", "online", "disabled")
WANDB_PROJECT = "contrastive-pruning"
STEPS = 8


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one ``error: ...`` line (exit 2), like the rest of the CLI."""

    def error(self, message: str) -> NoReturn:
        print(f"error: analyze: {message} (see python cli.py analyze --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python cli.py analyze",
        description=(
            "Turn finished run folders (run.json + per_sample/test.npz) into the paper's tables and figures: "
            "PIEs per population, Table 1, Tables 4/5, Table 6, scatter/PIE/UMAP figures, <out>/report.md and one "
            "W&B run (job_type=analyze)."
        ),
    )
    parser.add_argument(
        "--runs", nargs="+", required=True, metavar="GLOB_OR_FOLDER",
        help="run folders, folders holding run folders (searched recursively), or globs of either ('runs/**' recurses); quote globs",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="output folder (created; an earlier analyze output there is replaced)")
    parser.add_argument(
        "--wandb-mode", choices=WANDB_MODES, default=None,
        help="W&B mode of the analyze run (default: $WANDB_MODE, else offline; files in <out>/wandb)",
    )  # fmt: skip
    parser.add_argument("--wandb-project", default=WANDB_PROJECT, help=f"W&B project (default {WANDB_PROJECT})")
    parser.add_argument(
        "--pie-tie", choices=TIE_RULES, default="lowest",
        help="tie rule of the modal label: 'lowest' class index (authors' code, default) or 'disjoint' (PIE only if the tied sets share no class)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-single", action="store_true",
        help="accept populations of one model (their accuracy std is reported as '–' with n=1) instead of refusing them",
    )  # fmt: skip
    parser.add_argument(
        "--allow-incomplete", action="store_true",
        help="analyse runs that are not complete (status, sparsity target, unreadable or short per-sample files) "
             "instead of refusing them: one warning per problem and a banner in report.md",
    )  # fmt: skip
    parser.add_argument(
        "--pd-models", type=int, default=PD_MODELS,
        help=f"Table 6 / Figure 3 average PD over the first N seeds of each population (default {PD_MODELS}, as the paper)",
    )  # fmt: skip
    parser.add_argument(
        "--noise-splits", type=int, default=20,
        help="random matched splits for the PIE noise floor when a population has too many h-subsets to enumerate (default 20)",
    )  # fmt: skip
    parser.add_argument("--stats-seed", type=int, default=0, help="seed of the random splits (default 0)")
    parser.add_argument(
        "--umap-samples", type=int, default=2000,
        help="test samples per UMAP cell when computing UMAP from saved features (0 = no UMAP grid; default 2000)",
    )  # fmt: skip
    parser.add_argument(
        "--gallery-images", type=int, default=16,
        help="PIE images per Figure 6 gallery (0 = no galleries; default 16); needs the dataset of the runs' config.yaml",
    )  # fmt: skip
    return parser


def _show(path: Path) -> str:
    """A run folder as the user would type it: relative to the working directory when below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _progress(step: int, text: str) -> None:
    print(f"analyze [{step}/{STEPS}] {text}", flush=True)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise AnalysisError(f"--out {str(out)!r} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.md").is_file():
        raise AnalysisError(
            f"--out {str(out)!r} exists, is not empty and is not an earlier analyze output (no report.md); "
            "give a new or empty folder"
        )


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` folder to ``out`` (replacing an earlier output or an empty folder)."""
    old: Path | None = None
    if out.is_dir():
        if any(out.iterdir()):
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _summary_config(args: argparse.Namespace, study: Study, mode: str) -> dict[str, Any]:
    return {
        "runs": list(args.runs),
        "out": str(args.out),
        "pie_tie": args.pie_tie,
        "allow_single": bool(args.allow_single),
        "allow_incomplete": bool(args.allow_incomplete),
        "pd_models": args.pd_models,
        "noise_splits": args.noise_splits,
        "stats_seed": args.stats_seed,
        "included_anyway": sorted({_show(p.path) for p in study.included_anyway}),
        "wandb_mode": mode,
        "n_runs": len(study.runs),
        "populations": {s.label(): p.n for s, p in study.populations.items()},
        "run_dirs": [_show(r.path) for r in study.runs],
    }


def run_analysis(args: argparse.Namespace, *, command: str) -> Path:
    """Do the work of ``main``; raises :class:`AnalysisError` for bad input. Returns the output folder."""
    start = time.perf_counter()
    out = Path(args.out)
    mode = args.wandb_mode or os.environ.get("WANDB_MODE", "offline")
    mode = "offline" if mode == "dryrun" else mode
    if mode not in WANDB_MODES:
        raise AnalysisError(f"WANDB_MODE={mode!r} is not allowed here; use one of {', '.join(WANDB_MODES)}")
    if args.umap_samples < 0 or 0 < args.umap_samples < 3:
        raise AnalysisError(f"--umap-samples {args.umap_samples} is out of range; it must be 0 (off) or >= 3")
    for flag, value, low in (("--pd-models", args.pd_models, 1), ("--noise-splits", args.noise_splits, 1),
                             ("--gallery-images", args.gallery_images, 0)):  # fmt: skip
        if value < low:
            raise AnalysisError(f"{flag} {value} is out of range; it must be >= {low}")
    _check_out(out)

    _progress(1, f"finding run folders in {len(args.runs)} pattern(s)")
    study = load_study(
        args.runs, allow_single=args.allow_single, allow_incomplete=args.allow_incomplete, pd_models=args.pd_models, show=_show
    )
    _progress(
        2,
        f"loaded {len(study.runs)} runs (run.json + per_sample/test.npz) into {len(study.populations)} populations: "
        + ", ".join(f"{s.label()} n={p.n}" for s, p in study.populations.items()),
    )
    pairs, pair_warnings = pair_children(study, show=_show)
    study.warnings += pair_warnings
    for warning in study.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        pies = pies_per_setting(study.populations, tie=args.pie_tie)
        shared = shared_pies(pies)
        _progress(
            3,
            f"PIEs (tie rule '{args.pie_tie}') for {len(pies)} pruned populations: "
            + (", ".join(f"{s.label()}={r.count}" for s, r in pies.items()) or "none (no pruned population with a dense one)"),
        )
        stats = compute_stats(study, pies, n_splits=args.noise_splits, seed=args.stats_seed, tie=args.pie_tie)
        findings = all_findings(study, pies, stats)
        verdicts = "; ".join(f"{d}: " + ", ".join(f"{f.key} {f.verdict.split(' (')[0]}" for f in items) for d, items in findings.items())
        _progress(
            4,
            f"statistics: intervals over models ({METHOD}), PIEs beside noise floors of their size for {len(stats.cells)} "
            f"cell(s), {sum(len(c.pairs) for c in pairs.values())} One-Shot child/parent "
            f"pair(s); findings {verdicts}",
        )
        tables = all_tables(study, pies, shared, stats, pairs, show=_show)
        for table in tables:
            table.write(tmp / "tables")
        _progress(5, f"tables: {', '.join(t.name for t in tables)} -> tables/*.md, tables/*.csv")
        figures = all_figures(study, pies, umap_samples=args.umap_samples, gallery_images=args.gallery_images)
        in_layout = paper_figures(study, pies)  # Figures 2, 3, 4, 7 as the paper lays them out
        figures.figures += in_layout.figures
        figures.missing += in_layout.missing
        for fig in figures.figures:
            fig.write(tmp / "figures")
        _progress(
            6,
            f"figures: {len(figures.figures)} PNG"
            + (f"; not drawn: {len(figures.missing)} (missing inputs, listed in the report)" if figures.missing else ""),
        )
        report = tmp / "report.md"
        text = render_report(
            study, tables, figures, command=command, tie=args.pie_tie, stats=stats, findings=findings, show=_show,
            seconds_so_far=time.perf_counter() - start,
        )  # fmt: skip
        report.write_text(text, encoding="utf-8")
        _progress(7, f"report: {out / 'report.md'}")
        folder = log_to_wandb(
            tmp, study, tables, figures.figures, mode=mode, project=args.wandb_project,
            config=_summary_config(args, study, mode), report=report,
        )  # fmt: skip
        if folder is None:
            _progress(8, "W&B: disabled")
        else:
            where = out / folder.relative_to(tmp)
            hint = f" (upload: wandb sync {where})" if mode == "offline" else ""
            _progress(8, f"W&B ({mode}, job_type=analyze): {where}{hint}")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"analyze: done in {time.perf_counter() - start:.1f} s -> {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python cli.py analyze ...``; returns the exit status (0 ok, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    command = "python cli.py analyze " + shlex.join(argv)
    try:
        run_analysis(args, command=command)
    except AnalysisError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


__all__ = ["build_parser", "main", "run_analysis"]
