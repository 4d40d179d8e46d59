#!/usr/bin/env bash
# Issue #12 goal 1 (MiniLM-L6 bf16 offline >= 20,000 pairs/s RELIABLY), session 8: encspeed's EARLY DIAGNOSTIC on the
# H200, ALONE on the GPU (timed), from the repository root after `gpu_run.sh setup` (and `gpu_run.sh build` for the
# ModernBERT-base / BERT-large shapes of the last steps).
#   OUT=$OUT BUDGET_S=190 bash benchmarks/enc_diag.sh
#   DRY=1 bash benchmarks/enc_diag.sh      a tiny CPU trial (a tiny BERT built under a temp folder, 3 queries)
# Session 7's profile: a pass is host-bound, ~2.4 ms of host per chunk in mx.async_eval (~70 kernels, ~31 us each)
# x 43 chunks. Two levers, A/B'd in ONE process per step (enc_chunks.py writes its JSON after every setting, so a cut
# step keeps its rows; settings are chunk tokens + ':key=value' knobs, enc_chunks.apply_setting):
#   (a) fewer chunks: 16,384-token chunks (session 7's rule, tokens x hidden) vs 32,768 / 43,690 (a rule
#       of tokens x hidden^2, which keeps BERT-/XLM-R-large at 6,144) / 65,536, and 512-pair streamed pieces;
#   (b) fewer kernels per chunk: a lean BERT forward (models/bert_lean.py, compiled embedding sum/mask/score head,
#       residual adds folded into addmm) was A/B'd in this DIAG at commit 2b41ae3 (lean/fold/chead knobs): no gain
#       (16,534 vs 16,245 pairs/s, submit 3.61 vs 2.49 ms per chunk in the timeline) -> removed; this script now
#       runs without those rows;
#   (c) less host work: BERT type ids derived from the ids (tokenizing.DERIVE_TYPE_IDS; dtypes=0 = off), one
#       host-to-device copy per chunk (gpu_chunks.ONE_TRANSFER; xfer1=0 = three).
#   S7 = (c) off (TokenArrays.padded's cheaper scatter, 34e874c, is not switchable: exact, host only).
# Steps, in priority order (each under timeout, all within BUDGET_S):
#   ab-minilm     MiniLM bf16, the harness offline calls (43 queries, batch 1,024), 3 passes, one process
#   timeline      enc_timeline.py (+ CUPTI kernel count / GPU busy; CUPTI segfaulted there after 2 rows): S7 and
#                 (c) at 16,384 tokens, (c) at 43,690 (submit ms per chunk, waits)
#   mb-fp32       ModernBERT-base shape float32 offline, the encoder suites' calls (10 queries, batch 256, 32,768
#                 tokens): 8,192-token chunks (today) vs 10,922 (the tokens x hidden^2 rule) + torch's peak
#   bl-bf16       BERT-large shape bf16 offline (suites' calls): (c) on vs off, + torch's peak
#   ab-fp32       MiniLM float32 offline: 16384 vs 43690 (unfused attention: the memory bound decides) -> peak MB
#   mb-bf16       ModernBERT-base shape bf16 offline as mb-fp32
# Files: $OUT/enc-diag-*.json and $OUT/enc-diag.log (rc and stderr tail of each step). Nothing else is written.
NAME=enc-diag LOG_NAME=enc-diag BUDGET_S=${BUDGET_S:-190} OUT=${OUT:-/tmp/enc-diag-out}
. "$(dirname "$0")/enc_steps.sh"
BF16=bfloat16
[ -n "${DRY:-}" ] && BF16=float32 # bfloat16 matmuls are slow on this CPU; the code path is the same
OFF="--batch-size 1024 --repeats 3"
S7=dtypes=0:xfer1=0
AB=16384,16384:$S7,16384:dtypes=0,16384:xfer1=0,32768,43690,43690:$S7,65536,65536:rows=512
AB=$AB,43690:ckeep=1073741824,16384 # ckeep: MLX's buffer cache kept between calls (<= 1 GiB), not emptied
step ab-minilm 50 - enc_chunks.py $OFF --dtype $BF16 --chunk-tokens "$AB"
step timeline 35 - enc_timeline.py --dtype $BF16 --chunk-tokens 16384:$S7,16384,43690 --kernels '*' --repeats 2
ENC="--batch-size 256 --max-batch-tokens 32768 --repeats 2 --torch"
queries() { Q=${DRY:+3}; Q=${Q:-$1}; } # 3 under DRY
queries 10
step_model local:modernbert-base-shape
step mb-fp32 30 - enc_chunks.py $ENC --dtype float32 --chunk-tokens 8192,10922
step_model local:bert-large-shape
step bl-bf16 30 - enc_chunks.py $ENC --dtype $BF16 --chunk-tokens auto,auto:$S7
unset STEP_MODEL
queries 43
step ab-fp32 20 - enc_chunks.py $OFF --dtype float32 --chunk-tokens 16384,43690
step_model local:modernbert-base-shape
queries 10
step mb-bf16 25 - enc_chunks.py $ENC --dtype $BF16 --chunk-tokens 8192,10922
enc_done
