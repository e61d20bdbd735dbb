#!/usr/bin/env bash
# Everything the GPU speed and cluster work needs measured, in one call of the device machine (~9 minutes
# on one H200), each step with its own time cap, in priority order:
#   H  tests/test_cuda.py + the CUDA tests of tests/test_device_augment.py (no sync inside a step; the
#      CUDA-graph fast path trains the eager model)
#   S  benchmarks/speed.py --device cuda (the "Speed" table of docs/speed.md)
#   K  runs per GPU: K = 1, 2, 4, 8 Sup runs at once on GPU 0 through `population --devices 0
#      --runs-per-device K`, images/s per run and together (docs/populations.md "Populations on clusters")
#   PD benchmarks/prediction_depth.py on CUDA
# Results go to $OUT/summary.txt (logs: $OUT/logs.txt). On the device machine, from the repository root,
# with the wheels its image lacks in .gpu/whl (../shared/gpu/fetch_wheels.sh):
#   bash benchmarks/gpu_check.sh                       # GPU_BUDGET=540 by default
#   GPU_DRY=1 PY=.venv/bin/python bash benchmarks/gpu_check.sh   # here, on the CPU, at toy size: checks the script
set -u
T0=$(date +%s); BUDGET=${GPU_BUDGET:-540}
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"; S=$OUT/summary.txt; L=$OUT/logs.txt; : >"$S"; : >"$L"
DRY=${GPU_DRY:-0}
say() { echo "$*" | tee -a "$S"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
step() {  # step NAME CAP CMD...: CMD under a timeout of min(CAP, time left - 10); skipped under 20 s
  local name=$1 cap=$2; shift 2
  local l; l=$(left); local t=$(( l - 10 < cap ? l - 10 : cap ))
  if (( t < 20 )); then say "SKIP $name (time left ${l}s)"; return 0; fi
  local s=$(date +%s); echo "===== $name (cap ${t}s)" >>"$L"
  timeout -k 5 "$t" "$@" >>"$L" 2>&1; local rc=$?
  say "STEP $name rc=$rc wall=$(( $(date +%s) - s ))s"
}
export WANDB_MODE=offline WANDB_SILENT=true WANDB_DISABLE_GIT=true PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
if [[ $DRY == 1 ]]; then
  PY=${PY:-python3}; [[ $PY == */* ]] && PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
  SPEED="--device cpu --smoke"; DEV=""; N=600; LIMIT=5; PD="--train 600 --test 200 --device cpu"; RUNNER="--jobs"
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl >>"$L" 2>&1 || say "WHEELS FAILED"
  export PYTHONPATH=/tmp/site; PY=python3; SPEED="--device cuda"; DEV=", --config, configs/trainer/gpu.yaml"; N=50000; LIMIT=100
  PD="--train 50000 --test 10000 --device cuda"; RUNNER="--devices 0 --runs-per-device"
  nvidia-smi -L | tee -a "$S"
fi
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$S"

step H_cuda_tests 150 $PY -m pytest -q -p no:cacheprovider -s tests/test_cuda.py tests/test_device_augment.py -k "cuda or graph or never_waits"
grep -E "passed|failed|largest relative|^E  |FAILED" "$L" | tail -12 >>"$S"

step S_speed 240 $PY benchmarks/speed.py $SPEED
grep -E "^what |: (real fit|Lightning|plain|fast path)|^(GMP|projected|ratio_)|FAILED|^  fit " "$L" >>"$S"

D=/tmp/standin; $PY - "$D" "$N" <<'PY'
import sys; sys.path.insert(0, "."); from pathlib import Path
from benchmarks.speed_gpu import write_standin
write_standin(Path(sys.argv[1]), int(sys.argv[2]), 2000)
PY
for K in 1 2 4 8; do
  [[ $DRY == 1 && $K -gt 2 ]] && continue
  cat > /tmp/plan$K.yaml <<YAML
name: pack$K
root: /tmp/pack$K
seeds: 0-$((K - 1))
args: [--data, configs/data/fashion_mnist.yaml, --data.init_args.data_dir, $D, --trainer.max_epochs, "2", --trainer.limit_train_batches, "$LIMIT", --trainer.limit_val_batches, "0", --test_after_fit, "false", --run.wandb_mode, disabled, --trainer.enable_progress_bar, "false" $DEV]
cells:
  sup_dense: {config: configs/experiments/sup_dense.yaml}
YAML
  step K_pack_$K 60 $PY cli.py population --plan /tmp/plan$K.yaml $RUNNER $K
  $PY - "$K" "$LIMIT" <<'PY' | tee -a "$S"
import csv, glob, sys
k, limit = int(sys.argv[1]), int(sys.argv[2])
rates = []
for f in sorted(glob.glob(f"/tmp/pack{k}/sup_dense/*/csv/metrics.csv")):
    t = [float(r["train/epoch_train_time_s"]) for r in csv.DictReader(open(f)) if r.get("train/epoch_train_time_s")]
    if len(t) >= 2:
        rates.append(128 * limit / t[-1])  # the second epoch's training batches
print(f"PACK K={k}: {len(rates)} runs measured, img/s per run {[round(r) for r in rates]}, together {sum(rates):.0f}")
PY
done

step PD_benchmark 70 $PY benchmarks/prediction_depth.py $PD --sklearn-queries 0
grep -E "ratio_pd_vs_eval|Error|\(b\) PD" "$L" | tail -3 >>"$S"
say "total wall $(( $(date +%s) - T0 ))s"
