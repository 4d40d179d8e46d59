#!/usr/bin/env bash
# Issue #12 items 3-5 (encoders on the GPU), session 6: what gpu runs for encspeed in the main window, ALONE on the
# GPU (timed rows), from the repository root after `bash benchmarks/gpu_run.sh setup`.
#   OUT=$OUT BUDGET_S=300 bash benchmarks/enc_gpu.sh
#   DRY=1 bash benchmarks/enc_gpu.sh      a tiny CPU trial (a tiny BERT built under a temp folder, 3 queries)
# Steps (each under timeout; the script ends within BUDGET_S; every step writes its JSON into $OUT):
#   ab-offline   enc_chunks.py, MiniLM-L6 bf16, the harness offline scenario's calls (43 queries, batch 1,024):
#                AB_SETTINGS (default: session 5's default, the new default, and the alternatives) -> pairs/s, peak
#   sq-fp32/bf16 enc_chunks.py --scenario single_query, MiniLM-L6 fp32 and bf16 (43 calls of 100 pairs, batch 1,024):
#                the default (memory bound on) vs the bound off, + sentence-transformers' peak -> goal "MLX peak <=
#                torch peak" and the throughput cost
#   bert-large   enc_chunks.py, BERT-large shape bf16 offline (10 queries, batch 256, max_batch_tokens 32,768) and
#                single_query: the default vs the bound off + torch: the large encoders' peaks stay <= torch's
#   timeline     enc_timeline.py of the default (where a pass goes after the fix)
# Files: $OUT/enc-*.json (+ enc-gpu.log with every step's stderr tail). Nothing else is written.
set -u
BUDGET=${BUDGET_S:-300}
END=$((SECONDS + BUDGET - 5))
left() { local d=$((END - SECONDS)); [ "$d" -gt "$1" ] && d=$1; [ "$d" -lt 1 ] && d=1; echo "$d"; }
OUT=${OUT:-/tmp/enc-out}
mkdir -p "$OUT"
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
C=../shared/data/trec-dl/bm25_top100_dl19.json
MINILM=local:minilm-l6-seeded-head
LARGE=local:bert-large-shape
Q=43
QL=10
REPEATS=5
if [ -n "${DRY:-}" ]; then # tiny and CPU-only: a tiny BERT stands in for both models
  [ -x .venv/bin/python ] && PY=.venv/bin/python
  TINY=$(mktemp -d /tmp/enc-gpu-XXXXXX)
  $PY -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; import builders
builders.bert_cross_encoder(Path(sys.argv[1]), max_position_embeddings=512)" "$TINY/bert" > /dev/null 2>&1 || exit 1
  MINILM=$TINY/bert LARGE=$TINY/bert Q=3 QL=2 REPEATS=1
fi
AB=${AB_SETTINGS:-16384/256/none,auto,32768,65536,auto/32,32768/32,65536/32}
step() { # name cap args...: enc_chunks/enc_timeline run, stderr tail into the log
  local name=$1 cap=$2
  shift 2
  timeout "$(left "$cap")" $PY "$@" > /dev/null 2> "$OUT/$name.err"
  echo "$name rc $? ($SECONDS s)" | tee -a "$OUT/enc-gpu.log"
  tail -n 3 "$OUT/$name.err" >> "$OUT/enc-gpu.log"
  rm -f "$OUT/$name.err"
}
step ab-offline 110 benchmarks/enc_chunks.py "$MINILM" --candidates $C --queries $Q --dtype bfloat16 --batch-size 1024 \
  --chunk-tokens "$AB" --repeats $REPEATS --json "$OUT/enc-ab-offline-minilm-bf16.json"
for d in float32 bfloat16; do
  step "sq-$d" 45 benchmarks/enc_chunks.py "$MINILM" --candidates $C --queries $Q --dtype $d --batch-size 1024 \
    --scenario single_query --chunk-tokens auto,auto//none --repeats 3 --torch --json "$OUT/enc-sq-minilm-$d.json"
done
step bert-large-offline 50 benchmarks/enc_chunks.py "$LARGE" --candidates $C --queries $QL --dtype bfloat16 \
  --batch-size 256 --max-batch-tokens 32768 --chunk-tokens auto,auto//none --repeats 2 --torch \
  --json "$OUT/enc-offline-bert-large-bf16.json"
step bert-large-sq 40 benchmarks/enc_chunks.py "$LARGE" --candidates $C --queries $QL --dtype bfloat16 --batch-size 256 \
  --scenario single_query --chunk-tokens auto,auto//none --repeats 2 --torch --json "$OUT/enc-sq-bert-large-bf16.json"
step timeline 40 benchmarks/enc_timeline.py "$MINILM" --candidates $C --queries $Q --dtype bfloat16 \
  --chunk-tokens auto --repeats 3 --json "$OUT/enc-timeline-minilm-bf16.json"
[ -n "${DRY:-}" ] && rm -rf "$TINY"
cat "$OUT/enc-gpu.log"
