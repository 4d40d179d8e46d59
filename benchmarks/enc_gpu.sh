#!/usr/bin/env bash
# Issue #12 goal 1 (MiniLM-L6 bf16 offline >= 20,000 pairs/s RELIABLY), session 8: what the lead runs for encspeed in
# the MAIN window, ALONE on the GPU (timed rows), from the repository root after `gpu_run.sh setup`.
#   OUT=$OUT BUDGET_S=105 bash benchmarks/enc_gpu.sh
#   DRY=1 bash benchmarks/enc_gpu.sh      a tiny CPU trial (a tiny BERT built under a temp folder, 3 queries)
# Steps, in priority order (each under timeout, cut to end the script within BUDGET_S; each writes its JSON into
# $OUT after every setting, so a cut step keeps what it measured; each file records the env it ran with):
#   ab-offline  enc_chunks.py, MiniLM-L6 bf16, the harness offline scenario's calls (43 queries, batch 1,024), ONE
#               process: 'auto' (this commit's defaults = what the harness rows run: 43,690-token chunks, derived
#               BERT type ids, one host-to-device copy per chunk) vs session 7's defaults (S7) and single changes
#               (AB_SETTINGS, in priority order: tokenizer tasks in 8 / 12 worker PROCESSES instead of threads
#               (tokenize_procs.py: the DIAG's host pass is GIL-bound), the old 16,384 chunks alone, the two host
#               savings off, 32,768 / 65,536 chunks, MLX's buffer cache kept between calls, 2 pieces prepared at
#               once, 8 tokenizer threads), 'auto' again last (drift within the process)
#               -> pairs/s per pass, peak MB, max |score diff| vs the first row
#   timeline    enc_timeline.py of the defaults, or of TIMELINE_SETTINGS (host/GPU per chunk; no CUPTI: it segfaulted in
#               session 8's DIAG)
#   fp32        offline float32 (true float32), auto -> peak MB (torch's: the harness rows, 4,618 MB)
#   sq-fp32     single_query (43 calls of 100 pairs), float32, auto: MLX peak (torch's: 561 MB)
#   sq-bf16     the same in bfloat16 (torch 301 MB)
# Files: $OUT/enc-*.json and $OUT/enc-gpu.log (rc and stderr tail of each step). Nothing else is written.
NAME=enc LOG_NAME=enc-gpu BUDGET_S=${BUDGET_S:-105} OUT=${OUT:-/tmp/enc-out}
. "$(dirname "$0")/enc_steps.sh"
REPEATS=3
BF16=bfloat16
# tiny CPU trial: bfloat16 matmuls are slow on this CPU; the code path is the same
[ -n "${DRY:-}" ] && REPEATS=1 BF16=float32
# session 7's defaults: 16,384-token chunks for MiniLM (tokens x hidden rule), type ids read from the encodings,
# three host-to-device copies per chunk
S7=16384:dtypes=0:xfer1=0
AB1=auto,$S7,auto:procs=8,auto:procs=12,16384,auto:dtypes=0:xfer1=0,32768,65536,auto:ckeep=1073741824,auto:ahead=2,auto:threads=8
AB=${AB_SETTINGS:-$AB1,auto}
OFF="--batch-size 1024 --repeats $REPEATS"
SQ="--batch-size 1024 --scenario single_query --repeats 2"
step ab-offline 45 - enc_chunks.py $OFF --dtype $BF16 --chunk-tokens "$AB"
step timeline 22 - enc_timeline.py --dtype $BF16 --chunk-tokens "${TIMELINE_SETTINGS:-auto}" --repeats 2  # no CUPTI: it segfaulted (DIAG)
step fp32 12 - enc_chunks.py $OFF --dtype float32 --chunk-tokens auto
step sq-fp32 14 - enc_chunks.py $SQ --dtype float32 --chunk-tokens auto
step sq-bf16 10 - enc_chunks.py $SQ --dtype $BF16 --chunk-tokens auto
enc_done
