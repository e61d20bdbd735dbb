#!/usr/bin/env bash
# The Table 1 population without W&B online: a plain loop, one run at a time, over the same grid as
# configs/sweeps/table1.yaml (pruned configs x sparsities x seeds) and configs/sweeps/table1_dense.yaml
# (dense configs x seeds). Not a scheduler: to use several GPUs, start one copy per GPU with disjoint
# SEEDS (e.g. CUDA_VISIBLE_DEVICES=1 SEEDS="15 16 ... 29" scripts/table1_loop.sh).
#
# Every cell gets a fixed run folder, $ROOT/<config>/sparsity<s>/seed<n> (dense: $ROOT/<config>/seed<n>),
# so the loop can be stopped and started again: a folder whose run.json has test_acc is skipped, an
# unfinished one is moved aside to <folder>.incomplete-<time> and the run starts over.
# Runs log to W&B offline (upload later with `wandb sync <run folder>/wandb/offline-run-*`).
#
#   scripts/table1_loop.sh                                   # the paper's grid: 30 seeds (very long)
#   SEEDS="0 1 2" SPARSITIES="0.9" PRUNED_CONFIGS="sup_gmp supcon_gmp" scripts/table1_loop.sh \
#       --data configs/data/fashion_mnist.yaml --trainer.max_epochs 3       # extra args go to every run
#   DRY_RUN=1 scripts/table1_loop.sh                         # print the commands only
#   python cli.py analyze --runs runs/table1 --out reports/table1
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
SEEDS=${SEEDS:-$(seq -s ' ' 0 29)}
SPARSITIES=${SPARSITIES:-"0.3 0.5 0.7 0.9"}
DENSE_CONFIGS=${DENSE_CONFIGS:-"sup_dense supcon_dense"}
PRUNED_CONFIGS=${PRUNED_CONFIGS:-"sup_gmp sup_oneshot supcon_gmp supcon_delta_gmp supcon_oneshot"}
ROOT=${ROOT:-runs/table1}
DRY_RUN=${DRY_RUN:-0}

run_cell() {  # run_cell <run folder> <cli args...>
    local dir=$1
    shift
    if [ -f "$dir/run.json" ] && grep -q '"test_acc"' "$dir/run.json"; then
        echo "skip (done): $dir"
        return
    fi
    local cmd=("$PYTHON" cli.py fit "$@" --run.dir "$dir")
    if [ "$DRY_RUN" = 1 ]; then
        printf '%q ' "${cmd[@]}"
        echo
        return
    fi
    if [ -e "$dir" ]; then
        mv "$dir" "$dir.incomplete-$(date +%Y%m%d-%H%M%S)"
    fi
    echo "run: $dir"
    "${cmd[@]}"
}

for seed in $SEEDS; do
    for config in $DENSE_CONFIGS; do
        run_cell "$ROOT/$config/seed$seed" --config "configs/experiments/$config.yaml" --seed_everything "$seed" "$@"
    done
    for config in $PRUNED_CONFIGS; do
        for sparsity in $SPARSITIES; do
            run_cell "$ROOT/$config/sparsity$sparsity/seed$seed" --config "configs/experiments/$config.yaml" \
                --pruning.init_args.final_sparsity "$sparsity" --seed_everything "$seed" "$@"
        done
    done
done
