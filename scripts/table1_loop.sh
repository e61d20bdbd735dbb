#!/usr/bin/env bash
# The Table 1 population without W&B online: the resumable population runner on
# configs/populations/table1.yaml (dense -> GMP/ΔGMP -> One-Shot children of the dense runs), the same
# commands and run folders as the W&B sweeps in configs/sweeps/. Stop it at any moment; run it again to
# continue (complete runs are skipped, killed ones resume from their last checkpoint).
#
#   scripts/table1_loop.sh                         # the paper's grid: 30 seeds (very long)
#   scripts/table1_loop.sh --jobs 2                # two runs at a time
#   scripts/table1_loop.sh --devices auto --runs-per-device 4   # 4 runs on each visible GPU
#   scripts/table1_loop.sh --dry-run               # status and command of every run
#   scripts/table1_loop.sh -- --trainer.max_epochs 3  # arguments after -- go to every run
#   python cli.py analyze --runs runs --out reports/table1
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
exec "$PYTHON" cli.py population --plan configs/populations/table1.yaml "$@"
