#!/usr/bin/env bash
# Issue #13 items 1/3 (trained cross-encoders) on the lent H200, session 5: what gpu runs for quality in the main
# window, from the repository root after `bash benchmarks/gpu_run.sh setup`, beside benchmarks/gpu_embed.sh (so
# every wall time here is under a shared GPU).
#   bash benchmarks/gpu_quality.sh           env: OUT (the call's output folder), BUDGET_S (seconds, default 480),
#                                            ONLY (names of the runs below to do, e.g. "minilm-lora-mlx"; default all)
#   DRY=1 bash benchmarks/gpu_quality.sh     the same runs at toy scale on a CPU (2 updates of 2 groups of 4, all
#                                            training pairs, 2 dev documents per dev query, 1 test query), one
#                                            after the other
# suites/train-full.yaml, each (model, backend) its own `harness run --only <model>-<backend> dl20 noveleval` and
# results file results/train-full-<TAG>-<model>-<backend>.json (TAG h200-s5; DRY: dry-s5 under a temporary folder,
# never results/), in two lanes at once:
#   lane 1: smollm2-lora-mlx, then smollm2-lora-torch  (SmolLM2-135M LoRA r8; session 3 peaked at 55 / 44 GB)
#   lane 2: minilm-lora-mlx                            (the MiniLM LoRA MLX twin that session 4 lost to OOM)
# The torch MiniLM LoRA twin and both MiniLM full twins are session 4's (same suite recipe, same data fingerprint).
# Each harness run is ended by `timeout` (SIGTERM: the harness keeps what finished and marks the file incomplete),
# all by BUDGET_S - 25 s. The teacher is the committed results/quality-teacher-minilm-bi.run (not recomputed).
# Then, while time is left, `python -m harness.train.fit_check` (nDCG@10 on the training and the dev queries' BM25
# lists, never a held-out set) of each lane's models: SmolLM2's base (zero-shot) and trained folders, the MiniLM
# LoRA MLX model: fit-<name>.json. nvidia-smi's per-process memory is sampled every 5 s (logs/nvidia-smi.csv). Writes exactly one file,
# $OUT/quality.tgz: the results files, the harness logs, each training's train_log.jsonl, nvidia-smi samples and
# versions (trained model folders stay on the machine: their fingerprints are in the results).
set -u
BUDGET=${BUDGET_S:-480}
END=$(( $(date +%s) + BUDGET - 25 ))  # 25 s to pack
OUT=${OUT:-/tmp/quality-out}
WORK=$(mktemp -d /tmp/quality-XXXXXX)
LOGS=$WORK/logs
mkdir -p "$OUT" "$LOGS"
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
[ -n "${DRY:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p ../shared/data
for d in trec-dl noveleval; do  # whatever gpu staged, without overwriting what is there
  for src in /root/gpu-stage/files/$d .h200/$d; do [ -d "$src" ] && cp -rn "$src" ../shared/data/ 2>/dev/null; done
done
$PY -c 'import datasets' 2>/dev/null || { [ -d .whl-train ] && $PY -m pip install -q --no-index --no-deps .whl-train/*.whl; }

SUITE=suites/train-full.yaml
TAG=h200-s5
RES=results  # the results files (and their .train/ folders of trained models)
EXTRA=()
if [ -n "${DRY:-}" ]; then
  TAG=dry-s5
  RES=$WORK/results  # toy results never land in results/ (every results/*.json there is a real one)
  SUITE=suites/.train-full-dry-s5.yaml  # beside the suite (its paths are relative to suites/); removed at the end
  $PY - <<'PYEOF' || exit 1
import yaml
s = yaml.safe_load(open("suites/train-full.yaml"))
t = s["train"]
t["recipe"].update(epochs=1, max_steps=2, group_size=4, batch_size=2, eval_steps=1, dev_max_docs=2)
for m in t["models"]:
    m.get("recipe", {}).update(epochs=1, max_steps=2, group_size=4, eval_steps=1)
open("suites/.train-full-dry-s5.yaml", "w").write(yaml.safe_dump(s, sort_keys=False))
PYEOF
  EXTRA=(--max-queries 1)
fi
missing=""
for f in $(grep -o '\.\./\.\./shared/data/[^,} ]*' suites/train-full.yaml | sort -u); do
  [ -e "suites/$f" ] || missing="$missing ${f#../../}"
done
[ -n "$missing" ] && echo "MISSING data (the runs needing them will fail):$missing"

{ date -u; git log -1 --format='commit %H' 2>/dev/null; cat .h200/head.commit 2>/dev/null
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>&1
  $PY -c 'import mlx.core as mx, torch; print("mlx", mx.__version__, mx.default_device(), "torch", torch.__version__, torch.cuda.is_available())' 2>&1
} > "$LOGS/versions.txt"
cat "$LOGS/versions.txt"
if command -v nvidia-smi > /dev/null; then
  ( while [ "$(date +%s)" -lt "$END" ]; do
      echo "t=$(date +%s) $(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | tr '\n' ';')"
      sleep 5
    done ) > "$LOGS/nvidia-smi.csv" 2>&1 &
  SAMPLER=$!
fi

run_model() {  # $1 model, $2 backend: one harness run, its own results file (a kill loses only this one)
  local name=$1-$2 left=$(( END - $(date +%s) ))
  [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $name "* ]] || return 0
  [ "$left" -gt 30 ] || { echo "$name skipped: no time left"; return; }
  timeout "$left" $PY -c 'import sys; from harness.cli import main; sys.exit(main())' run "$SUITE" \
    --only "$name" dl20 noveleval --output "$RES/train-full-$TAG-$name.json" --overwrite --no-progress \
    "${EXTRA[@]}" > "$LOGS/$name.log" 2>&1
  echo "$name rc $? ($(( END - $(date +%s) )) s left)"
  grep -E "^\[train|error" "$LOGS/$name.log" | head -3 | cut -c1-300
}
fit() {  # $1 name, then model folders: fit_check (train/dev lists only, never DL20/NovelEval) while time is left
  local name=$1 left=$(( END - $(date +%s) - 5 )) dirs=()
  shift
  for d in "$@"; do [ -f "$d/config.json" ] && dirs+=("$d"); done
  [ ${#dirs[@]} -gt 0 ] && [ "$left" -gt 40 ] || { echo "fit-$name skipped (${#dirs[@]} models, $left s left)"; return; }
  timeout "$left" $PY -m harness.train.fit_check "$SUITE" "${dirs[@]}" --output "$WORK/fit-$name.json" \
    ${DRY:+--max-queries 2} > "$LOGS/fit-$name.log" 2>&1
  echo "fit-$name rc $?"; head -2 "$LOGS/fit-$name.log" | cut -c1-300
}
trained() { echo "$RES/train-full-$TAG-$1.train/$1/model"; }
smollm2_base() { $PY -c 'from harness.localmodels import resolve_model as r; print(r("local:smollm2-135m-instruct"))'; }
lane1() {
  run_model smollm2-lora mlx; run_model smollm2-lora torch
  fit smollm2 "$(smollm2_base)" "$(trained smollm2-lora-mlx)" "$(trained smollm2-lora-torch)"  # zero-shot + trained
}
lane2() { run_model minilm-lora mlx; fit minilm-lora "$(trained minilm-lora-mlx)"; }
if [ -n "${DRY:-}" ]; then lane1; lane2  # one process at a time on the shared CPU box
else
  lane1 & LANE1=$!
  lane2 & LANE2=$!
  wait "$LANE1" "$LANE2"
fi
[ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null

mkdir -p "$WORK/pack/results" "$WORK/pack/train-logs"
cp $RES/train-full-$TAG-*.json "$WORK/pack/results/" 2>/dev/null
for d in $RES/train-full-$TAG-*.train/*/ $RES/train-full-$TAG-*.train/.*.partial/; do  # a finished or a cut training
  f=$(find "$d" -maxdepth 2 -name train_log.jsonl 2>/dev/null | head -1)  # MLX: loss, tokens/s, dev per update
  [ -n "$f" ] && cp "$f" "$WORK/pack/train-logs/$(basename "$d").jsonl"
done
cp -r "$LOGS" "$WORK/pack/"
cp "$WORK"/fit-*.json "$WORK/pack/" 2>/dev/null
tar -czf "$OUT/quality.tgz" -C "$WORK/pack" .
ls -l "$OUT/quality.tgz"
[ -n "${DRY:-}" ] && rm -f "$SUITE"
exit 0
