#!/usr/bin/env bash
# Issue #12 goals 1-2 (MiniLM-L6 bf16 offline >= 20,000 pairs/s; bf16 >= 1.6x true float32), session 7: encspeed's
# EARLY DIAGNOSTIC on the H200, ALONE on the GPU (timed), from the repository root after `gpu_run.sh setup`.
#   OUT=$OUT BUDGET_S=150 bash benchmarks/enc_diag.sh
#   DRY=1 bash benchmarks/enc_diag.sh      a tiny CPU trial (a tiny BERT built under a temp folder, 3 queries)
# Question: session 6's profile says a pass is host-bound: the main thread spends ~3.5 ms per chunk inside
# mx.async_eval (~88 kernels: ~40 us of host per kernel). With mlx_cross_encoder's MLX_MAX_OPS_PER_BUFFER=2, MLX's
# CUDA backend records every kernel into a CUDA graph (each cuBLAS/cuDNN call by stream capture) and instantiates or
# updates + launches a graph every 2 operations. MLX_USE_CUDA_GRAPHS=0 launches each kernel directly. MLX reads these
# once per process, so every env variant is its own process (enc_chunks.py / enc_timeline.py write their JSON after
# each setting: a cut step keeps its rows; each file records the env it ran with).
# Steps, in priority order (each under timeout, all within BUDGET_S):
#   nog-offline   MLX_USE_CUDA_GRAPHS=0, MiniLM bf16, the harness offline calls (43 queries, batch 1,024), 3 passes:
#                 auto (this commit's defaults), qkv=0 (BERT's three q/k/v projections, not the fused one),
#                 tahead=0 (each 256-pair piece tokenized when prepared, not all of a call's tokenizer tasks queued
#                 at its start), 32768-token chunks, the memory bound off, 12 tokenizer threads -> pairs/s, peak MB
#   base-offline  with the graphs (2 ops per graph, session 6's env): auto, qkv=0:tahead=0 (= session 6's code),
#                 32768 -> the same-call baseline
#   nog-timeline  MLX_USE_CUDA_GRAPHS=0, enc_timeline.py of auto (+ CUPTI busy): where a pass goes without graphs
#   nog-sq-bf16   MLX_USE_CUDA_GRAPHS=0, single_query (43 calls of 100 pairs), bf16: auto, widths 16, widths none ->
#                 peak MB against torch's 301 (session 6 harness row) and the throughput cost of the memory bound
#   nog-sq-fp32   the same in float32: auto, widths none -> peak MB against torch's 561
#   nog-off-fp32  MLX_USE_CUDA_GRAPHS=0, offline float32 (true float32): auto -> the bf16 / fp32 ratio (goal 1.6x)
#   ops100-off    graphs with MLX's own H100/H200 default (MLX_MAX_OPS_PER_BUFFER=100): offline bf16 auto, 32768
#   nog-ops20-off MLX_USE_CUDA_GRAPHS=0 with MLX_MAX_OPS_PER_BUFFER=20 (commit, i.e. buffer release, every 20 ops)
# Files: $OUT/enc-diag-*.json and $OUT/enc-diag.log (rc and stderr tail of each step). Nothing else is written.
set -u
BUDGET=${BUDGET_S:-150}
END=$((SECONDS + BUDGET - 3))
left() { local d=$((END - SECONDS)); [ "$d" -gt "$1" ] && d=$1; [ "$d" -lt 1 ] && d=1; echo "$d"; }
OUT=${OUT:-/tmp/enc-diag-out}
mkdir -p "$OUT"
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
C=../shared/data/trec-dl/bm25_top100_dl19.json
MINILM=local:minilm-l6-seeded-head
Q=43
if [ -n "${DRY:-}" ]; then # tiny and CPU-only: a tiny BERT stands in for MiniLM
  [ -x .venv/bin/python ] && PY=.venv/bin/python
  TINY=$(mktemp -d /tmp/enc-diag-XXXXXX)
  $PY -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; import builders
builders.bert_cross_encoder(Path(sys.argv[1]), max_position_embeddings=512)" "$TINY/bert" > /dev/null 2>&1 || exit 1
  MINILM=$TINY/bert Q=3
fi
NOG=MLX_USE_CUDA_GRAPHS=0
step() { # name cap env-assignment|- script args...: one python run, rc + stderr tail into the log
  local name=$1 cap=$2 envs=$3 script=$4
  shift 4
  [ "$envs" = - ] && envs=
  [ $((END - SECONDS)) -gt 4 ] || { echo "$name skipped (budget)" | tee -a "$OUT/enc-diag.log"; return; }
  # shellcheck disable=SC2086  # envs: zero or more NAME=VALUE words
  timeout "$(left "$cap")" env $envs $PY "benchmarks/$script" "$MINILM" --candidates $C --queries $Q \
    --json "$OUT/enc-diag-$name.json" "$@" > /dev/null 2> "$OUT/$name.err"
  echo "$name [$envs] rc $? ($SECONDS s)" | tee -a "$OUT/enc-diag.log"
  grep -v "^\[enc_" "$OUT/$name.err" | tail -n 3 >> "$OUT/enc-diag.log"
  rm -f "$OUT/$name.err"
}
OFF="--dtype bfloat16 --batch-size 1024 --repeats 3"
SQ="--batch-size 1024 --scenario single_query --repeats 2"
NOGAB=auto:qkv=0,auto,auto:tahead=0,32768,auto:widths=none,auto:threads=12
step nog-offline 30 $NOG enc_chunks.py $OFF --chunk-tokens $NOGAB
step base-offline 18 - enc_chunks.py $OFF --chunk-tokens auto:qkv=0:tahead=0,auto,32768
step nog-timeline 25 $NOG enc_timeline.py --dtype bfloat16 --chunk-tokens auto --kernels auto --repeats 2
step nog-sq-bf16 18 $NOG enc_chunks.py $SQ --dtype bfloat16 --chunk-tokens auto,auto:widths=16,auto:widths=none
step nog-sq-fp32 14 $NOG enc_chunks.py $SQ --dtype float32 --chunk-tokens auto,auto:widths=none
step nog-off-fp32 12 $NOG enc_chunks.py $OFF --dtype float32 --chunk-tokens auto
step ops100-off 12 MLX_MAX_OPS_PER_BUFFER=100 enc_chunks.py $OFF --chunk-tokens auto,32768
step nog-ops20-off 10 "$NOG MLX_MAX_OPS_PER_BUFFER=20" enc_chunks.py $OFF --chunk-tokens auto
[ -n "${DRY:-}" ] && rm -rf "$TINY"
cat "$OUT/enc-diag.log"
