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
set -u
BUDGET=${BUDGET_S:-90}
END=$((SECONDS + BUDGET - 3))
left() { local d=$((END - SECONDS)); [ "$d" -gt "$1" ] && d=$1; [ "$d" -lt 1 ] && d=1; echo "$d"; }
OUT=${OUT:-/tmp/enc-out}
mkdir -p "$OUT"
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
C=../shared/data/trec-dl/bm25_top100_dl19.json
MINILM=local:minilm-l6-seeded-head
Q=43
REPEATS=3
BF16=bfloat16
if [ -n "${DRY:-}" ]; then # tiny and CPU-only: a tiny BERT stands in for MiniLM
  [ -x .venv/bin/python ] && PY=.venv/bin/python
  TINY=$(mktemp -d /tmp/enc-gpu-XXXXXX)
  $PY -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; import builders
builders.bert_cross_encoder(Path(sys.argv[1]), max_position_embeddings=512)" "$TINY/bert" > /dev/null 2>&1 || exit 1
  MINILM=$TINY/bert Q=3 REPEATS=1 BF16=float32 # bfloat16 matmuls are slow on this CPU; the code path is the same
fi
# session 6's code path: 256-pair first piece, 16 tokenizer threads, three q/k/v projections, each piece tokenized
# when it is prepared
S6=auto:first=256:threads=16:qkv=0:tahead=0:tspread=0
AB1=auto,$S6,auto:first=256,auto:threads=16,auto:tspread=0,auto:threads=8,auto:qkv=0,auto:tahead=0,auto:first=32,32768
AB=${AB_SETTINGS:-$AB1,auto:switch=0.0005,auto} # auto again last: the drift within the process
step() { # name cap env-assignment|- script args...: one python run, rc + stderr tail into the log
  local name=$1 cap=$2 envs=$3 script=$4
  shift 4
  [ "$envs" = - ] && envs=
  [ $((END - SECONDS)) -gt 4 ] || { echo "$name skipped (budget)" | tee -a "$OUT/enc-gpu.log"; return; }
  # shellcheck disable=SC2086  # envs: zero or more NAME=VALUE words
  timeout "$(left "$cap")" env $envs $PY "benchmarks/$script" "$MINILM" --candidates $C --queries $Q \
    --json "$OUT/enc-$name.json" "$@" > /dev/null 2> "$OUT/$name.err"
  echo "$name [$envs] rc $? ($SECONDS s)" | tee -a "$OUT/enc-gpu.log"
  grep -v "^\[enc_" "$OUT/$name.err" | tail -n 3 >> "$OUT/enc-gpu.log"
  rm -f "$OUT/$name.err"
}
OFF="--batch-size 1024 --repeats $REPEATS"
SQ="--batch-size 1024 --scenario single_query --repeats 2"
step ab-offline 36 - enc_chunks.py $OFF --dtype $BF16 --chunk-tokens "$AB"
step timeline 22 - enc_timeline.py --dtype $BF16 --chunk-tokens auto --kernels auto --repeats 2
step fp32 12 - enc_chunks.py $OFF --dtype float32 --chunk-tokens auto
step sq-fp32 14 - enc_chunks.py $SQ --dtype float32 --chunk-tokens auto
step sq-bf16 10 - enc_chunks.py $SQ --dtype $BF16 --chunk-tokens auto
[ -n "${DRY:-}" ] && rm -rf "$TINY"
cat "$OUT/enc-gpu.log"
