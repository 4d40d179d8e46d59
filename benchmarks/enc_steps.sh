# Sourced by benchmarks/enc_diag.sh and enc_gpu.sh (issue #12, encspeed's H200 scripts): the budget, the environment,
# the model and the step runner they share. Before sourcing, the caller sets NAME (its files are $OUT/NAME-*.json),
# LOG_NAME (its log, $OUT/LOG_NAME.log) and may set BUDGET_S / OUT. Defines: END, left CAP (seconds left, at most
# CAP), PY, C (DL19 BM25 candidates), MINILM, Q (queries); with DRY set, a tiny BERT built in a temp folder ($TINY,
# removed by enc_done) stands in for MiniLM on 3 queries. step STEP CAP ENV|- SCRIPT ARGS...: one python run of
# benchmarks/SCRIPT under timeout (its JSON $OUT/NAME-STEP.json), rc and stderr tail into the log; STEP_MODEL (unset
# under DRY) names another model than MiniLM for one step, Q the queries.
set -u
END=$((SECONDS + ${BUDGET_S:-90} - 3))
left() { local d=$((END - SECONDS)); [ "$d" -gt "$1" ] && d=$1; [ "$d" -lt 1 ] && d=1; echo "$d"; }
OUT=${OUT:-/tmp/$NAME-out}
mkdir -p "$OUT"
LOG=$OUT/$LOG_NAME.log
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
C=../shared/data/trec-dl/bm25_top100_dl19.json
MINILM=local:minilm-l6-seeded-head
Q=43
TINY=
if [ -n "${DRY:-}" ]; then # tiny and CPU-only: a tiny BERT stands in for MiniLM
  [ -x .venv/bin/python ] && PY=.venv/bin/python
  TINY=$(mktemp -d "/tmp/$NAME-XXXXXX")
  $PY -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; import builders
builders.bert_cross_encoder(Path(sys.argv[1]), max_position_embeddings=512)" "$TINY/bert" > /dev/null 2>&1 || exit 1
  MINILM=$TINY/bert Q=3
  unset STEP_MODEL
  step_model() { :; }
else
  step_model() { STEP_MODEL=$1; }
fi
step() { # name cap env-assignment|- script args...: one python run, rc + stderr tail into the log
  local name=$1 cap=$2 envs=$3 script=$4
  shift 4
  [ "$envs" = - ] && envs=
  [ $((END - SECONDS)) -gt 4 ] || { echo "$name skipped (budget)" | tee -a "$LOG"; return; }
  # shellcheck disable=SC2086  # envs: zero or more NAME=VALUE words
  timeout "$(left "$cap")" env $envs $PY "benchmarks/$script" "${STEP_MODEL:-$MINILM}" --candidates $C --queries $Q \
    --json "$OUT/$NAME-$name.json" "$@" > /dev/null 2> "$OUT/$name.err"
  echo "$name [$envs] rc $? ($SECONDS s)" | tee -a "$LOG"
  grep -v "^\[enc_" "$OUT/$name.err" | tail -n 3 >> "$LOG"
  rm -f "$OUT/$name.err"
}
enc_done() { # the tiny model's folder removed; the log printed
  [ -n "$TINY" ] && rm -rf "$TINY"
  cat "$LOG"
}
