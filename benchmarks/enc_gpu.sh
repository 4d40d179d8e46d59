#!/usr/bin/env bash
# Issue #12 goals 1-2 (MiniLM-L6 bf16 offline >= 20,000 pairs/s; bf16 >= 1.6x true float32), session 7: what gpu runs
# for encspeed in the MAIN window, ALONE on the GPU (timed rows), from the repository root after `gpu_run.sh setup`.
#   OUT=$OUT BUDGET_S=90 bash benchmarks/enc_gpu.sh
#   DRY=1 bash benchmarks/enc_gpu.sh      a tiny CPU trial (a tiny BERT built under a temp folder, 3 queries)
# Steps, in priority order (each under timeout, cut to end the script within BUDGET_S; each writes its JSON into
# $OUT after every setting, so a cut step keeps what it measured; each file records the env it ran with). MLX's CUDA
# settings are the library's (graphs, MLX_MAX_OPS_PER_BUFFER=2): the session-7 DIAG saw no gain without graphs.
#   ab-offline  enc_chunks.py, MiniLM-L6 bf16, the harness offline scenario's calls (43 queries, batch 1,024), ONE
#               process: 'auto' (this commit's defaults: 64-pair first piece spread over the tokenizer threads, 12
#               threads on 16 cores, all tokenizer tasks queued at a call's start, fused q/k/v) vs session 6's path
#               (S6) and single changes
#               (AB_SETTINGS, in priority order) -> pairs/s per pass, peak MB, max |score diff| vs the first row
#   timeline    enc_timeline.py of the defaults (host/GPU per chunk, CUPTI GPU busy fraction)
#   fp32        offline float32 (true float32), auto -> the bf16 / fp32 ratio (goal 1.6x; the harness rows say it too)
#   sq-fp32     single_query (43 calls of 100 pairs), float32, auto: MLX peak (torch's: the harness rows, 561 MB)
#   sq-bf16     the same in bfloat16 (torch 301 MB)
# Files: $OUT/enc-*.json and $OUT/enc-gpu.log (rc and stderr tail of each step). Nothing else is written.
NAME=enc LOG_NAME=enc-gpu BUDGET_S=${BUDGET_S:-90} OUT=${OUT:-/tmp/enc-out}
. "$(dirname "$0")/enc_steps.sh"
REPEATS=3
BF16=bfloat16
# tiny CPU trial: bfloat16 matmuls are slow on this CPU; the code path is the same
[ -n "${DRY:-}" ] && REPEATS=1 BF16=float32
# session 6's code path: 256-pair first piece, 16 tokenizer threads, three q/k/v projections, each piece tokenized
# when it is prepared
S6=auto:first=256:threads=16:qkv=0:tahead=0:tspread=0
AB1=auto,$S6,auto:first=256,auto:threads=16,auto:tspread=0,auto:threads=8,auto:qkv=0,auto:tahead=0,auto:first=32,32768
AB=${AB_SETTINGS:-$AB1,auto:switch=0.0005,auto} # auto again last: the drift within the process
OFF="--batch-size 1024 --repeats $REPEATS"
SQ="--batch-size 1024 --scenario single_query --repeats 2"
step ab-offline 36 - enc_chunks.py $OFF --dtype $BF16 --chunk-tokens "$AB"
step timeline 22 - enc_timeline.py --dtype $BF16 --chunk-tokens auto --kernels auto --repeats 2
step fp32 12 - enc_chunks.py $OFF --dtype float32 --chunk-tokens auto
step sq-fp32 14 - enc_chunks.py $SQ --dtype float32 --chunk-tokens auto
step sq-bf16 10 - enc_chunks.py $SQ --dtype $BF16 --chunk-tokens auto
enc_done
