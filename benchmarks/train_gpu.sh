#!/usr/bin/env bash
# The GPU training rows of issue 12 item 6 (MLX vs torch trainers, each alone), for gpu's main window:
#
#   OUT=DIR BUDGET_S=200 bash benchmarks/train_gpu.sh        # from the repository root, on the H200
#   DRY=1 OUT=/tmp/x BUDGET_S=400 bash benchmarks/train_gpu.sh  # the same steps on this CPU with tiny models
#
# Steps in priority order, each under `timeout` cut to what is left of BUDGET_S (a step is skipped when fewer than
# MIN_S seconds, default 15, are left); benchmarks/gpu_train.py writes its JSON after every trainer, so a cut step
# keeps the rows that finished. Writes only $OUT/ts-<step>.json, $OUT/ts-<step>.log and $OUT/train-gpu.log.
#   full   MiniLM-L6 full fine-tuning: mlx (the first MLX trainer of the call: cold kernel cache), torch, mlx again
#          (warm cache: the kernels the first built); 40 updates, the first 10 excluded from the steady figures
#   lora   MiniLM-L6 LoRA r8: mlx, torch; 40 updates, 10 excluded
#   qwen3  Qwen3-0.6B-shape LoRA r16, bf16, batch 8: mlx (its own kernels cold), torch, mlx again (warm);
#          QWEN_STEPS (default 30) updates, 10 excluded
#   extra  EXTRA_ARGS (gpu_train.py options, e.g. "--jobs minilm-full --backends mlx-nographs --steps 30"), if set
#   profile  benchmarks/train_step_profile.py: where a MiniLM-L6 full step spends its time, MLX (the GPU default
#          step 'eager', and 'plain') vs torch, interleaved in one process, 3 + PROFILE_STEPS (default 10) steps
# The Qwen3 shape should be built before (gpu_run.sh's build step), or its first child builds it inside the budget.
set -u
: "${OUT:?set OUT}"
BUDGET_S=${BUDGET_S:-200}
MIN_S=${MIN_S:-15}
end=$(($(date +%s) + BUDGET_S))
PY=python3
if [ -n "${DRY:-}" ]; then
  export GPU_TRAIN_TINY=1
  PY=${PY_DRY:-.venv/bin/python}
fi
mkdir -p "$OUT"
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$OUT/train-gpu.log"; }

step() {  # step NAME CAP_S SCRIPT args...: benchmarks/SCRIPT args --json $OUT/ts-NAME.json
  local name=$1 cap=$2 script=$3 left
  shift 3
  left=$((end - $(date +%s)))
  [ "$left" -gt "$cap" ] && left=$cap
  if [ "$left" -lt "$MIN_S" ]; then
    log "$name skipped: ${left} s left"
    return
  fi
  log "$name start (cap ${left} s)"
  timeout "$left" "$PY" "benchmarks/$script" "$@" --json "$OUT/ts-$name.json" > "$OUT/ts-$name.log" 2>&1
  log "$name rc $?"
}

step full 75 gpu_train.py --jobs minilm-full --backends mlx,torch,mlx --steps 40 --warmup 10 --timeout 30
step lora 55 gpu_train.py --jobs minilm-lora --backends mlx,torch --steps 40 --warmup 10 --timeout 30
step qwen3 120 gpu_train.py --jobs qwen3-0.6b-lora --backends mlx,torch,mlx --steps "${QWEN_STEPS:-30}" --warmup 10 \
  --timeout 50
if [ -n "${EXTRA_ARGS:-}" ]; then
  # shellcheck disable=SC2086  # EXTRA_ARGS is a list of options
  step extra 60 gpu_train.py $EXTRA_ARGS --timeout 30
fi
if [ -n "${DRY:-}" ]; then
  step profile 45 train_step_profile.py --steps 2 --warmup 1 --mlx-modes eager,plain --batch-size 8 --max-length 64
else
  step profile 45 train_step_profile.py --steps "${PROFILE_STEPS:-10}" --warmup 3 --mlx-modes eager,plain
fi
for f in "$OUT"/ts-*.log; do
  [ -f "$f" ] && tail -n 6 "$f" | grep -E '^\||ratio' | tail -n 4
done
log "done"
