#!/usr/bin/env bash
# Issue #13 items 1/3 (trained cross-encoders) on the lent H200, session 6: what gpu runs for quality in the main
# window, from the repository root after `bash benchmarks/gpu_run.sh setup`, beside benchmarks/gpu_embed.sh and the
# parity tests (so every wall time here is under a shared GPU).
#   bash benchmarks/gpu_quality.sh           env: OUT (the call's output folder), BUDGET_S (seconds, default 480),
#                                            ONLY (names of the steps below to do: smollm2-lora-torch,
#                                            fit-smollm2-trained, fit-smollm2-base, minilm-full-mlx; default all)
#   DIAG=1 bash benchmarks/gpu_quality.sh    the SmolLM2 torch twin at its real shapes but 1 epoch (10 updates, dev
#                                            every 5) and 3 evaluated queries: seconds per update and per dev pass on
#                                            the H200; results under a temporary folder, never results/; no fit_check
#   DRY=1 bash benchmarks/gpu_quality.sh     the same steps at toy scale on a CPU (2 updates of 2 groups of 4, all
#                                            training pairs, 2 dev documents per dev query, 1 test query), one
#                                            after the other
# suites/train-full.yaml, each (model, backend) its own `harness run --only <model>-<backend> dl20 noveleval` and
# results file results/train-full-<TAG>-<model>-<backend>.json (TAG h200-s6; DRY/DIAG: dry-s6/diag-s6 under a
# temporary folder, never results/). What #13 still lacks, in two lanes at once:
#   lane 1: smollm2-lora-torch, the PyTorch twin of session 5's results/train-full-h200-s5-smollm2-lora-mlx.json
#           (same suite recipe: 10 epochs, 100 updates, LoRA r8 started from the MLX trainer's initial matrices, the
#           same batches; session 3's 8-epoch torch twin trained 80 updates in 86 s wall; session 6's DIAG=1 call
#           on a shared GPU: 0.81 s per update, 6 s per dev pass, worker 39.9 s for 10 updates + 2 dev passes, so
#           ~150 s of training worker + ~40 s of evaluation for the full recipe when not crowded), then
#           fit-smollm2-trained: fit_check of the folder it trained (its config.json carries rope_theta at the top
#           level since 3be0c09, else mlx-lm would score it with rope_theta 10,000)
#   lane 2: fit-smollm2-base: fit_check of SmolLM2's base folder (zero-shot: does LoRA training help at all?)
#           then, once lane 1's training is over and if 240 s are left: minilm-full-mlx, the MLX MiniLM full model
#           retrained by today's MLX trainer (its GPU step changed in session 6) with the suite's recipe: still
#           within 0.01 of session 4's PyTorch twin (0.5435)? (session 4's MLX run: 0.5434, 173 s worker wall)
# The other MiniLM twins (LoRA: torch session 4, MLX session 5) and SmolLM2's MLX run are not re-run.
# Each harness run is ended by `timeout` (SIGTERM: the harness keeps what finished and marks the file incomplete),
# all by BUDGET_S - 25 s. The teacher is the committed results/quality-teacher-minilm-bi.run (not recomputed).
# fit_check (`python -m harness.train.fit_check`): nDCG@10 on the training and the dev queries' BM25 lists, never a
# held-out set: fit-<name>.json. nvidia-smi's per-process memory is sampled every 5 s (logs/nvidia-smi.csv). Writes
# exactly one file, $OUT/quality.tgz: the results files (a torch training's dev evaluations are in its train block),
# the harness logs, each MLX training's train_log.jsonl, the fit files, nvidia-smi samples and versions (trained model
# folders stay on the machine: their fingerprints are in the results).
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
TAG=h200-s6
RES=results  # the results files (and their .train/ folders of trained models)
EXTRA=()
SCALE=""  # DRY or DIAG: a derived suite beside the real one (its paths are relative to suites/), removed at the end
[ -n "${DIAG:-}" ] && SCALE=diag
[ -n "${DRY:-}" ] && SCALE=dry
if [ -n "$SCALE" ]; then
  TAG=$SCALE-s6
  RES=$WORK/results  # toy/diagnostic results never land in results/ (every results/*.json there is a real one)
  SUITE=suites/.train-full-$SCALE-s6.yaml
  SCALE=$SCALE $PY - "$SUITE" <<'PYEOF' || exit 1
import os, sys
import yaml
s = yaml.safe_load(open("suites/train-full.yaml"))
t = s["train"]
if os.environ["SCALE"] == "dry":  # toy scale for a CPU
    t["recipe"].update(epochs=1, max_steps=2, group_size=4, batch_size=2, eval_steps=1, dev_max_docs=2)
    for m in t["models"]:
        m.get("recipe", {}).update(epochs=1, max_steps=2, group_size=4, eval_steps=1)
else:  # diag: SmolLM2's real shapes (batch, group, max_length, dev lists), 1 epoch = 10 updates, dev every 5
    for m in t["models"]:
        if m["name"] == "smollm2-lora":
            m["recipe"].update(epochs=1, eval_steps=5)
open(sys.argv[1], "w").write(yaml.safe_dump(s, sort_keys=False))
PYEOF
  EXTRA=(--max-queries $([ -n "${DRY:-}" ] && echo 1 || echo 3))
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

want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }  # a step named in ONLY (or no ONLY)
run_model() {  # $1 model, $2 backend[, $3 seconds it needs]: one harness run, its own results file (a kill loses
  local name=$1-$2 left=$(( END - $(date +%s) )) need=${3:-30}  # only this one)
  want "$name" || return 0
  [ "$left" -gt "$need" ] || { echo "$name skipped: $left s left, needs $need"; return; }
  timeout "$left" $PY -c 'import sys; from harness.cli import main; sys.exit(main())' run "$SUITE" \
    --only "$name" dl20 noveleval --output "$RES/train-full-$TAG-$name.json" --overwrite --no-progress \
    "${EXTRA[@]}" > "$LOGS/$name.log" 2>&1
  echo "$name rc $? ($(( END - $(date +%s) )) s left)"
  grep -E "^\[train|error" "$LOGS/$name.log" | head -3 | cut -c1-300
}
fit() {  # $1 name, then model folders: fit_check (train/dev lists only, never DL20/NovelEval) while time is left
  local name=fit-$1 left=$(( END - $(date +%s) - 5 )) dirs=()
  shift
  want "$name" && [ -z "${DIAG:-}" ] || return 0
  for d in "$@"; do [ -f "$d/config.json" ] && dirs+=("$d"); done
  [ ${#dirs[@]} -gt 0 ] && [ "$left" -gt 40 ] || { echo "$name skipped (${#dirs[@]} models, $left s left)"; return; }
  timeout "$left" $PY -m harness.train.fit_check "$SUITE" "${dirs[@]}" --output "$WORK/$name.json" \
    ${DRY:+--max-queries 2} > "$LOGS/$name.log" 2>&1
  echo "$name rc $? ($(( END - $(date +%s) )) s left)"; head -2 "$LOGS/$name.log" | cut -c1-300
}
trained() { echo "$RES/train-full-$TAG-$1.train/$1/model"; }
smollm2_base() { $PY -c 'from harness.localmodels import resolve_model as r; print(r("local:smollm2-135m-instruct"))'; }
lane1() {
  run_model smollm2-lora torch; touch "$WORK/twin.done"
  fit smollm2-trained "$(trained smollm2-lora-torch)"
}
lane2() {
  fit smollm2-base "$(smollm2_base)"
  # then, once the SmolLM2 twin's training is over (so it never competes with it for the GPU), if 240 s are left:
  # minilm-full-mlx with today's MLX trainer (the GPU step changed this session), same recipe as session 4's twins
  while [ ! -d "$(trained smollm2-lora-torch)" ] && [ ! -e "$WORK/twin.done" ] && [ "$(date +%s)" -lt "$END" ]; do
    sleep 5
  done
  run_model minilm-full mlx 240
}
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
[ -n "$SCALE" ] && rm -f "$SUITE"
exit 0
