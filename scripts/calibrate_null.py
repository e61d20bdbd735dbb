"""What ``analyze`` says about populations where pruning changes nothing, and whether it finds a planted effect.

Builds simulated studies (:func:`analysis.simulation.simulated_study`: Sup dense and GMP 90 %, SCL
dense, GMP 90 % and ΔGMP 90 %, each of ``n`` models drawn from a known process) and runs on each the
statistics and findings ``analyze`` runs (:func:`analysis.uncertainty.compute_stats`,
:func:`analysis.findings.all_findings`), then counts the verdicts:

* **null** — every pruned population is drawn from its method's dense process: every "above the
  floor" and every "supported" is a false positive; a 95% interval should keep each at or below
  2.5% one-sided (5% two-sided);
* **planted** — the :class:`analysis.simulation.Scenario`'s effects (SCL loses ~8.7 accuracy points
  and its Q-Score 16.7 % under GMP, Sup ~2.1 points and 2.1 %, SCL's PIEs on the fragile images,
  ΔGMP half-way): how often each is found.

    python scripts/calibrate_null.py                      # 200 studies of 5 and of 10 models per cell (~5 min on 2 cores)
    python scripts/calibrate_null.py --sizes 5 --reps 50  # a quick look
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from analysis.simulation import Calibration, Process, Scenario, calibrate, expected_accuracy, make_samples  # noqa: E402

#: the planted ΔGMP: between SCL's dense and GMP processes
LATER = Process(ability=1.95, ability_sd=0.3, q=0.66, pd_noise=2.0, fragile_shift=0.8, pd_shift=0.5)


def report(name: str, cal: Calibration) -> list[str]:
    lines = [f"### {name}, n = {cal.n_models} models per cell, {cal.reps} studies", ""]
    lines += ["| cell | PIEs above the floor |", "|---|---|"]
    lines += [f"| {cell} | {100 * cal.rate(k):.1f} % |" for cell, k in sorted(cal.above_floor.items())]
    lines += ["", "| sub-claim | supported | direction only | contradicted | cannot resolve |", "|---|---|---|---|---|"]
    for claim, tally in cal.claims.items():
        cells = [f"{100 * cal.rate(tally.get(v, 0)):.1f} %" for v in ("supported", "direction only", "contradicted", "cannot resolve")]
        lines.append(f"| {claim} | " + " | ".join(cells) + " |")
    lines += ["", "| finding | verdicts |", "|---|---|"]
    for key, tally in cal.findings.items():
        lines.append(f"| {key} | " + "; ".join(f"{v} {100 * cal.rate(k):.1f} %" for v, k in sorted(tally.items(), key=lambda kv: -kv[1])) + " |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10], help="models per cell (default 5 10)")
    parser.add_argument("--reps", type=int, default=200, help="simulated studies per size and scenario (default 200)")
    parser.add_argument("--samples", type=int, default=1000, help="test images per study (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.sizes) < 3 or args.reps < 1:
        parser.error("--sizes must be >= 3 (a noise floor needs 3 dense models) and --reps >= 1")
    start = time.perf_counter()
    scenario = Scenario()
    test = make_samples(args.samples, seed=args.seed)
    acc = {k: expected_accuracy(getattr(scenario, k), test) for k in ("sup_dense", "sup_pruned", "scl_dense", "scl_pruned")}
    acc["scl_later"] = expected_accuracy(LATER, test)
    print(
        f"Planted effects (expected accuracy %, {args.samples} test images): Sup {acc['sup_dense']:.2f} → {acc['sup_pruned']:.2f} "
        f"({acc['sup_pruned'] - acc['sup_dense']:+.2f}), SCL {acc['scl_dense']:.2f} → GMP {acc['scl_pruned']:.2f} "
        f"({acc['scl_pruned'] - acc['scl_dense']:+.2f}), ΔGMP {acc['scl_later']:.2f} ({acc['scl_later'] - acc['scl_dense']:+.2f}); "
        f"SCL's drop − Sup's {(acc['scl_dense'] - acc['scl_pruned']) - (acc['sup_dense'] - acc['sup_pruned']):+.2f} points; "
        f"Q-Score SCL {100 * (scenario.scl_pruned.q / scenario.scl_dense.q - 1):+.1f} %, Sup "
        f"{100 * (scenario.sup_pruned.q / scenario.sup_dense.q - 1):+.1f} %\n"
    )
    for n in args.sizes:
        for name, sc, later in (("null (pruning changes nothing)", scenario.null(), None), ("planted effects", scenario, LATER)):
            cal = calibrate(
                sc, n, reps=args.reps, samples=args.samples, seed=args.seed, later=later,
                progress=lambda text: print(f"  {text} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True),
            )  # fmt: skip
            print("\n".join(report(name, cal)))
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
