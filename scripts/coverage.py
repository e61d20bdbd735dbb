"""How often the 95% intervals ``analyze`` prints cover the truth, before and after issue 30.

Draws populations of 5, 10 and 30 models from the known processes of :mod:`analysis.simulation`
(Sup and SCL, each dense and pruned), computes each reported statistic's interval by the method
``analyze`` used before (percentile bootstrap over models; over test images for ρ and the PD gap;
the PIE count of all models with its bootstrap interval) and by the one it uses now (the jackknife
over models with a Student-t quantile, :func:`analysis.intervals.over_models`), and prints the share
of draws whose interval contains the truth, with the mean width, as a Markdown table.

    python scripts/coverage.py                       # the full table: 400 draws per size (~15 min on 2 cores)
    python scripts/coverage.py --sizes 5 --reps 100  # a quick look

A coverage below 95% means the interval claims more certainty than it has. With ``--reps`` draws a
coverage's own standard error is about sqrt(0.95 * 0.05 / reps) (1.1 points at 400).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from analysis.simulation import STATISTICS, CoverageRow, coverage  # noqa: E402


def table(rows: list[CoverageRow], sizes: list[int]) -> str:
    out = [
        "| statistic | method (resamples) | " + " | ".join(f"n = {n}: coverage (mean width)" for n in sizes) + " | truth at each n |",
        "|---|---|" + "---|" * len(sizes) + "---|",
    ]
    for stat in STATISTICS:
        for method in ("percentile bootstrap", "jackknife-t"):
            mine = [r for r in rows if r.statistic == stat and r.method == method]
            if not mine:
                continue
            by_n = {r.n_models: r for r in mine}
            cells = [
                f"{100 * by_n[n].coverage:.1f} % ({np.mean(by_n[n].widths):.3g})" if n in by_n and by_n[n].defined else "–" for n in sizes
            ]
            truths = ", ".join(
                f"{by_n[n].truth:.4g}" + (f" ± {by_n[n].truth_se:.2g}" if by_n[n].truth_se else "") for n in sizes if n in by_n
            )
            label = "before: " if method == "percentile bootstrap" else "after: "
            out.append(f"| {stat} | {label}{method} ({mine[0].resamples}) | " + " | ".join(cells) + f" | {truths} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 30], help="models per population (default 5 10 30)")
    parser.add_argument("--reps", type=int, default=400, help="simulated studies per size (default 400)")
    parser.add_argument("--samples", type=int, default=1000, help="test images per study (default 1000)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of the 'before' method (default 1000)")
    parser.add_argument("--truth-draws", type=int, default=2000, help="Monte-Carlo draws for the size-dependent truths (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.sizes) < 3 or args.reps < 1:
        parser.error("--sizes must be >= 3 (a noise floor needs 3 dense models) and --reps >= 1")
    start = time.perf_counter()
    rows = coverage(
        args.sizes, reps=args.reps, samples=args.samples, n_boot=args.boot, truth_draws=args.truth_draws, seed=args.seed,
        progress=lambda text: print(f"  {text} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True),
    )  # fmt: skip
    print(
        f"Coverage of nominal 95% intervals: {args.reps} simulated studies per size, {args.samples} test images, "
        f"{args.boot} bootstrap resamples, truths from {args.truth_draws} draws (seed {args.seed}; "
        f"{time.perf_counter() - start:.0f} s)\n"
    )
    print(table(rows, args.sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
