#!/usr/bin/env bash
# Issue 12, session 8: the early diagnostic call on the lent H200, after `bash benchmarks/gpu_run.sh setup`, from the
# repository root (session 7's version: `git show 55ddf03:benchmarks/gpu_diag.sh`). Runs the DIAG REQUESTs logged in
# /work/coord/LOG.md, as they were written, each under its own cap and cut to end by DIAG_END (epoch seconds; default
# now + 400). Steps, in this order:
#   build     the MiniLM folder now; the ModernBERT-base and BERT-large shapes in the background (harness.localmodels)
#   tf32      tf32's request (LOG 17:20), beside the background build (it measures precision and records, not speed):
#             benchmarks/tf32_check.py, one fresh process per (mlx|torch, float32|tf32) (cap 60 s)
#   enc       encspeed's request (LOG 17:27), ALONE after the build: `OUT=... BUDGET_S=195 bash benchmarks/enc_diag.sh`
#   baseline  the harness MiniLM-L6 rows at this commit's defaults, ALONE: `gpu_run.sh minilm` with RESULTS_TAG=diag-s8,
#             ONLY="minilm-bf16-mlx minilm-bf16-torch minilm-tf32-mlx" (cap 100 s) -> $OUT/minilm-diag-s8-h200.json
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
steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(build tf32 enc baseline)
for step in "${steps[@]}"; do
  start=$SECONDS
  mkdir -p "$D/$step"
  case $step in
    build)
      BUILD_SPECS="local:minilm-l6-seeded-head" OUT=$OUT_ROOT bash benchmarks/gpu_run.sh build
      BUILD_BG=1 BUILD_SPECS="local:modernbert-base-shape local:bert-large-shape" OUT=$OUT_ROOT \
        bash benchmarks/gpu_run.sh build ;;
    tf32)
      timeout "$(cap 60)" python3 benchmarks/tf32_check.py --timeout 14 --out "$D/tf32/tf32-check.json" \
        > "$D/tf32/tf32-check.log" 2>&1
      echo "tf32 rc $?"; tail -n 30 "$D/tf32/tf32-check.log" | cut -c1-300 ;;
    enc)
      OUT=$OUT_ROOT bash benchmarks/gpu_run.sh build-wait | tail -n 4
      OUT=$D/enc BUDGET_S=$(cap 195) timeout $(($(cap 195) + 5)) bash benchmarks/enc_diag.sh > "$D/enc/stdout.log" 2>&1
      echo "enc rc $?"; tail -n 40 "$D/enc/enc-diag.log" 2>/dev/null | cut -c1-300 ;;
    baseline)
      RESULTS_TAG=diag-s8 ONLY="minilm-bf16-mlx minilm-bf16-torch minilm-tf32-mlx" STEP_TIMEOUT=$(cap 100) \
        OUT=$OUT_ROOT bash benchmarks/gpu_run.sh minilm ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
  echo "== $step took $((SECONDS - start)) s ($((DIAG_END - $(date +%s))) s left)"
  tar -czf "$OUT_ROOT/diag.tgz" -C /tmp diag 2>/dev/null
done
