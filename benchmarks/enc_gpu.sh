#!/usr/bin/env bash
# Issue #12 items 3-5 (encoders on the GPU), session 6: what gpu runs for encspeed in the main window, ALONE on the
# GPU (timed rows), from the repository root after `bash benchmarks/gpu_run.sh setup`.
#   OUT=$OUT BUDGET_S=60 bash benchmarks/enc_gpu.sh
#   DRY=1 bash benchmarks/enc_gpu.sh      a tiny CPU trial (a tiny BERT built under a temp folder, 3 queries)
# Steps, in priority order (each under timeout, cut to end the script within BUDGET_S; each writes its JSON into
# $OUT after every setting, so a cut step keeps what it measured):
#   ab-offline  enc_chunks.py, MiniLM-L6 bf16, the harness offline scenario's calls (43 queries, batch 1,024), one
#               process: session 5's pipeline (S5) vs this commit's defaults (auto) and single changes of them
#               (AB_SETTINGS, in priority order: a cut run keeps the first rows) -> pairs/s per pass, peak MB, max
#               |score diff| vs the first setting
#   timeline    enc_timeline.py of the defaults (host/GPU per chunk, CUPTI GPU busy fraction)
#   sq-bf16     (only if >= 15 s are left) enc_chunks.py --scenario single_query, MiniLM bf16 (43 calls of 100 pairs): the default vs the memory
#               bound off (its throughput cost) + sentence-transformers' peak
# Files: $OUT/enc-*.json and $OUT/enc-gpu.log (rc and stderr tail of each step). Nothing else is written.
set -u
BUDGET=${BUDGET_S:-60}
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
if [ -n "${DRY:-}" ]; then # tiny and CPU-only: a tiny BERT stands in for MiniLM
  [ -x .venv/bin/python ] && PY=.venv/bin/python
  TINY=$(mktemp -d /tmp/enc-gpu-XXXXXX)
  $PY -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; import builders
builders.bert_cross_encoder(Path(sys.argv[1]), max_position_embeddings=512)" "$TINY/bert" > /dev/null 2>&1 || exit 1
  MINILM=$TINY/bert Q=3 REPEATS=1
fi
S5=16384:first=256:ahead=1:tchunk=16:pmin=64:ckeep=0 # session 5's pipeline (its harness row: 18,478 pairs/s)
AB=${AB_SETTINGS:-$S5,auto,auto:threads=14,auto:ckeep=0,auto:ahead=1,auto:first=256:tchunk=16:pmin=64,auto:widths=none}
step() { # name cap args...: one python run, rc + stderr tail into the log
  local name=$1 cap=$2
  shift 2
  timeout "$(left "$cap")" $PY "$@" > /dev/null 2> "$OUT/$name.err"
  echo "$name rc $? ($SECONDS s)" | tee -a "$OUT/enc-gpu.log"
  grep -v "^\[enc_" "$OUT/$name.err" | tail -n 3 >> "$OUT/enc-gpu.log"
  rm -f "$OUT/$name.err"
}
step ab-offline 37 benchmarks/enc_chunks.py "$MINILM" --candidates $C --queries $Q --dtype bfloat16 --batch-size 1024 \
  --chunk-tokens "$AB" --repeats $REPEATS --json "$OUT/enc-ab-offline-minilm-bf16.json"
step timeline 22 benchmarks/enc_timeline.py "$MINILM" --candidates $C --queries $Q --dtype bfloat16 \
  --chunk-tokens auto --kernels auto --repeats 2 --json "$OUT/enc-timeline-minilm-bf16.json"
[ $((END - SECONDS)) -gt 15 ] && step sq-bf16 30 benchmarks/enc_chunks.py "$MINILM" --candidates $C --queries $Q --dtype bfloat16 --batch-size 1024 \
  --scenario single_query --chunk-tokens auto,auto:widths=none --repeats 3 --torch --json "$OUT/enc-sq-minilm-bf16.json"
[ -n "${DRY:-}" ] && rm -rf "$TINY"
cat "$OUT/enc-gpu.log"
