#!/usr/bin/env bash
# Issue #12 goal 1 (MiniLM-L6 bf16 offline >= 20,000 pairs/s RELIABLY), session 8: encspeed's EARLY DIAGNOSTIC on the
# H200, ALONE on the GPU (timed), from the repository root after `gpu_run.sh setup` (and `gpu_run.sh build` for the
# ModernBERT-base / BERT-large shapes of the last steps).
#   OUT=$OUT BUDGET_S=190 bash benchmarks/enc_diag.sh
#   DRY=1 bash benchmarks/enc_diag.sh      a tiny CPU trial (a tiny BERT built under a temp folder, 3 queries)
# Session 7's profile: a pass is host-bound, ~2.4 ms of host per chunk in mx.async_eval (~70 kernels, ~31 us each)
# x 43 chunks. Two levers, A/B'd in ONE process per step (enc_chunks.py writes its JSON after every setting, so a cut
# step keeps its rows; settings are chunk tokens + ':key=value' knobs, enc_chunks.apply_setting):
#   (a) fewer chunks: 16,384-token chunks (today's rule, CHUNK_TOKEN_ELEMENTS // hidden) vs 32,768 / 43,690 (a rule
#       of tokens x hidden^2, which keeps BERT-/XLM-R-large at 6,144) / 65,536, and 512-pair streamed pieces;
#   (b) fewer kernels per chunk (models/bert_lean.py, default on): lean inputs (position slice, one compiled
#       embedding-sum kernel, one mask kernel), folded residual adds (addmm with the residual as C) and the score
#       cast + activation compiled into one kernel (gpu_chunks.COMPILED_HEAD); lean=0, fold=0, chead=0 turn them
#       off (all three = session 7's forward);
#   (c) less host work: BERT type ids derived from the ids (tokenizing.DERIVE_TYPE_IDS; dtypes=0 = off), one
#       host-to-device copy per chunk (gpu_chunks.ONE_TRANSFER; xfer1=0 = three).
#   S7 = all of (b) and (c) off (TokenArrays.padded's cheaper scatter, 34e874c, is not switchable: exact, host only).
# Steps, in priority order (each under timeout, all within BUDGET_S):
#   ab-minilm     MiniLM bf16, the harness offline calls (43 queries, batch 1,024), 3 passes, one process
#   timeline      enc_timeline.py (+ CUPTI kernel count / GPU busy): session 7's forward at 16,384 tokens, the lean
#                 one at 16,384 and 43,690 (kernels per chunk, submit ms per chunk, waits)
#   mb-fp32       ModernBERT-base shape float32 offline, the encoder suites' calls (10 queries, batch 256, 32,768
#                 tokens): 8,192-token chunks (today) vs 10,922 (the tokens x hidden^2 rule) + torch's peak
#   bl-bf16       BERT-large shape bf16 offline (suites' calls): the lean forward vs session 7's, + torch's peak
#   ab-fp32       MiniLM float32 offline: 16384 vs 43690 (unfused attention: the memory bound decides) -> peak MB
#   mb-bf16       ModernBERT-base shape bf16 offline as mb-fp32
# Files: $OUT/enc-diag-*.json and $OUT/enc-diag.log (rc and stderr tail of each step). Nothing else is written.
NAME=enc-diag LOG_NAME=enc-diag BUDGET_S=${BUDGET_S:-190} OUT=${OUT:-/tmp/enc-diag-out}
. "$(dirname "$0")/enc_steps.sh"
BF16=bfloat16
[ -n "${DRY:-}" ] && BF16=float32 # bfloat16 matmuls are slow on this CPU; the code path is the same
OFF="--batch-size 1024 --repeats 3"
S7=lean=0:fold=0:chead=0:dtypes=0:xfer1=0
AB=auto,auto:$S7,auto:fold=0,auto:lean=0,auto:chead=0,auto:dtypes=0,auto:xfer1=0,32768,43690,43690:$S7,65536,65536:rows=512
AB=$AB,43690:ckeep=1073741824,auto # ckeep: MLX's buffer cache kept between calls (<= 1 GiB), not emptied
step ab-minilm 50 - enc_chunks.py $OFF --dtype $BF16 --chunk-tokens "$AB"
step timeline 35 - enc_timeline.py --dtype $BF16 --chunk-tokens auto:$S7,auto,43690 --kernels '*' --repeats 2
ENC="--batch-size 256 --max-batch-tokens 32768 --repeats 2 --torch"
queries() { Q=${DRY:+3}; Q=${Q:-$1}; } # 3 under DRY
queries 10
step_model local:modernbert-base-shape
step mb-fp32 30 - enc_chunks.py $ENC --dtype float32 --chunk-tokens auto,10922
step_model local:bert-large-shape
step bl-bf16 30 - enc_chunks.py $ENC --dtype $BF16 --chunk-tokens auto,auto:$S7
unset STEP_MODEL
queries 43
step ab-fp32 20 - enc_chunks.py $OFF --dtype float32 --chunk-tokens auto,43690
step_model local:modernbert-base-shape
queries 10
step mb-bf16 25 - enc_chunks.py $ENC --dtype $BF16 --chunk-tokens auto,10922
enc_done
