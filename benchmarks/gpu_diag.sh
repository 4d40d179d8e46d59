#!/usr/bin/env bash
# Issue 12, session 7: the early diagnostic call on the lent H200, after `bash benchmarks/gpu_run.sh setup`, from the
# repository root (session 6's version, with part1/part2: `git show 2a46064:benchmarks/gpu_diag.sh`). Runs the DIAG
# REQUESTs the other roles logged in /work/coord/LOG.md by 14:55, as they wrote them, ALONE on the GPU, one after
# the other (every step is timed), each under its own cap and cut to end by DIAG_END (epoch seconds; default now +
# 400). Steps, in this order:
#   build     the Qwen3-0.6B shape and the MiniLM folder (harness.localmodels), outside every timed step
#   baseline  the harness MiniLM-L6 bf16 rows (offline + single_query, MLX and torch) at this commit's defaults:
#             `gpu_run.sh minilm` with RESULTS_TAG=diag-s7, ONLY="minilm-bf16-mlx minilm-bf16-torch" (cap 90 s)
#             -> $OUT/minilm-diag-s7-h200.json (+ its MFU table in the log)
#   enc       encspeed's request (LOG 14:29): `OUT=... BUDGET_S=150 bash benchmarks/enc_diag.sh`
#   train     trainspeed's request (LOG 14:25, the line that replaces the first): gpu_train.py MiniLM full
#             mlx,mlx,mlx-nographs (cold then warm NVRTC kernel cache, no CUDA graphs) and Qwen3-0.6B-shape LoRA
#             r16 torch,mlx-nographs (cap 90 s)
# Usage: bash benchmarks/gpu_diag.sh [STEP...] (default: all four). The roles' outputs go to /tmp/diag/<step>/,
# packed into $OUT/diag.tgz after every step (a cut call keeps what finished); a summary on stdout.
set -u
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
OUT_ROOT=${OUT:-/tmp/gpu-out}
DIAG_END=${DIAG_END:-$(($(date +%s) + 400))}
export CALL_DEADLINE=$DIAG_END  # gpu_run.sh cuts its steps' timeouts to this
D=/tmp/diag
mkdir -p "$D" "$OUT_ROOT"
# the cap, cut to end 5 s before DIAG_END (at least 1 s)
cap() { local d=$((DIAG_END - $(date +%s) - 5)); [ "$1" -lt "$d" ] && d=$1; [ "$d" -lt 1 ] && d=1; echo "$d"; }
steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(build baseline enc train)
for step in "${steps[@]}"; do
  start=$SECONDS
  mkdir -p "$D/$step"
  case $step in
    build)
      BUILD_SPECS="local:minilm-l6-seeded-head local:qwen3-reranker-0.6b-shape" OUT=$OUT_ROOT bash benchmarks/gpu_run.sh build ;;
    baseline)
      RESULTS_TAG=diag-s7 ONLY="minilm-bf16-mlx minilm-bf16-torch" STEP_TIMEOUT=$(cap 90) OUT=$OUT_ROOT \
        bash benchmarks/gpu_run.sh minilm ;;
    enc)
      OUT=$D/enc BUDGET_S=$(cap 150) timeout $(($(cap 150) + 5)) bash benchmarks/enc_diag.sh > "$D/enc/stdout.log" 2>&1
      echo "enc rc $?"; tail -n 30 "$D/enc/enc-diag.log" 2>/dev/null | cut -c1-300 ;;
    train)
      c=$(cap 90)
      OUT=$D/train timeout "$c" bash -c 'G="python3 benchmarks/gpu_train.py"; $G --jobs minilm-full --backends mlx,mlx,mlx-nographs --steps 30 --warmup 10 --timeout 20 --json $OUT/ts-diag-full.json > $OUT/ts-diag-full.log 2>&1; $G --jobs qwen3-0.6b-lora --backends torch,mlx-nographs --steps 20 --warmup 8 --timeout 40 --json $OUT/ts-diag-qwen3.json > $OUT/ts-diag-qwen3.log 2>&1; tail -q -n 5 $OUT/ts-diag-full.log $OUT/ts-diag-qwen3.log'
      echo "train rc $? (cap $c s)"; tail -q -n 6 "$D"/train/ts-diag-*.log 2>/dev/null | cut -c1-300 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
  echo "== $step took $((SECONDS - start)) s ($((DIAG_END - $(date +%s))) s left)"
  tar -czf "$OUT_ROOT/diag.tgz" -C /tmp diag 2>/dev/null
done
