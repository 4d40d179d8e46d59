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
NAME=enc-diag LOG_NAME=enc-diag BUDGET_S=${BUDGET_S:-150} OUT=${OUT:-/tmp/enc-diag-out}
. "$(dirname "$0")/enc_steps.sh"
NOG=MLX_USE_CUDA_GRAPHS=0
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
enc_done
