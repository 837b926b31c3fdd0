#!/usr/bin/env bash
# Issue 28's one prepared device script: the CUDA path end to end on the smoke world, then paper-scale throughput.
#
#   benchmarks/gpu_check.sh            on a lent GPU (sized for <= 8 min on one H100)
#   benchmarks/gpu_check.sh --dry-run  the same steps at toy sizes, on CPU, to check the script before a device run
#
# Steps (each timed and capped, so one hang cannot eat the device budget; results under $OUT, default
# benchmarks/out/gpu_check):
#   1. the whole DAG (backbone -> stage1 -> stage2 -> features -> every evaluation) on the smoke world, in a scratch
#      copy made exactly as the tests make it (tests/test_dag.py _copy_repo); stages pick CUDA themselves
#      (alertclip.train.distributed.context) and use bf16 autocast there (tune.precision / features.precision: auto);
#   2. benchmarks/reload_check.py: the device-trained checkpoints reload on CPU with equal outputs (bf16 tolerance);
#   3. benchmarks/bench_train_step.py and benchmarks/bench_features.py at ViT-L-14, 224 px, 32 clips x 8 frames.
# On the device machine there is no package index: bring the wheels the library describes and set PYTHON to that
# interpreter (default: this checkout's .venv/bin/python); ffmpeg must be on PATH for the smoke world.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
export PATH="$(dirname "$PY"):$PATH"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-$ROOT/benchmarks/out/gpu_check}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ $DRY = 1 ]; then
  ARCH=alertclip-tiny; SIZE=64; BATCH=4; FRAMES=2; STEPS=2; FEAT_BATCH=16; CAP_DAG=1200; CAP_BENCH=300
else
  ARCH=ViT-L-14; SIZE=224; BATCH=32; FRAMES=8; STEPS=10; FEAT_BATCH=512; CAP_DAG=240; CAP_BENCH=90
fi

step() {  # step NAME CAP_S COMMAND...: run, time, keep its log; a failure is recorded and the next step still runs
  local name=$1 cap=$2; shift 2
  local t0=$SECONDS rc=0
  timeout "$cap" "$@" > "$OUT/$name.log" 2>&1 || rc=$?
  echo "$name: rc $rc, $((SECONDS - t0)) s (cap $cap s)" | tee -a "$OUT/summary.txt"
  tail -n 15 "$OUT/$name.log"
}

: > "$OUT/summary.txt"
"$PY" - <<'PYEOF' | tee -a "$OUT/summary.txt"
import torch
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "| torch", torch.__version__)
PYEOF

# 1. the smoke world's DAG on the device
"$PY" -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from test_dag import _copy_repo; _copy_repo(Path(sys.argv[1]))" "$WORK/smoke"
ln -sfn "$(readlink -f "$ROOT/../shared")" "$WORK/shared"
step smoke_dag "$CAP_DAG" bash -c "cd '$WORK/smoke' && PYTHONPATH='$ROOT/src' snakemake --cores all --resources gpu=1 && dvc status"
cp "$WORK/smoke/dvc.lock" "$OUT/smoke_dvc.lock" 2>/dev/null || true
cp -r "$WORK/smoke/results" "$OUT/smoke_results" 2>/dev/null || true

# 2. checkpoints written on the device reload on CPU
step reload_check 120 env PYTHONPATH="$ROOT/src" "$PY" benchmarks/reload_check.py \
  "$WORK/smoke/data/models/stage1" "$WORK/smoke/data/models/full"

# 3. paper-scale throughput (random init: no weights are downloaded), the pipeline's step and frozen encoding
step train_step "$CAP_BENCH" env PYTHONPATH="$ROOT/src" "$PY" benchmarks/bench_train_step.py --arch "$ARCH" \
  --image-size "$SIZE" --frames "$FRAMES" --batch "$BATCH" --steps "$STEPS" --json "$OUT/train_step.json"
step train_step_ckpt "$CAP_BENCH" env PYTHONPATH="$ROOT/src" "$PY" benchmarks/bench_train_step.py --arch "$ARCH" \
  --image-size "$SIZE" --frames "$FRAMES" --batch "$BATCH" --steps "$STEPS" --grad-checkpointing \
  --json "$OUT/train_step_ckpt.json"
step features "$CAP_BENCH" env PYTHONPATH="$ROOT/src" "$PY" benchmarks/bench_features.py --arch "$ARCH" \
  --image-size "$SIZE" --batch "$FEAT_BATCH" --steps "$STEPS"

echo "results in $OUT (summary.txt, one log per step)"
! grep -q "rc [1-9]" "$OUT/summary.txt"
