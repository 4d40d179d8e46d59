#!/usr/bin/env bash
# Issue 13: suites/train-full.yaml in one command (docs/training.md, "Full-list training on the H200").
#   bash harness/train/full_run.sh          on the lent H200 after ../shared/gpu/pack.py's staging: the teacher run,
#                                           then the MLX and the PyTorch trainings side by side (two harness runs on
#                                           the one GPU), results and logs copied to $OUT
#   DRY=1 bash harness/train/full_run.sh    the same steps at toy scale on a CPU (3 training queries, 1 epoch,
#                                           2 pairs per dev query, 1 test query), one stack after the other
# Env: PY (python, default python3), OUT (default /tmp/train-full-out), ONLY (model names, default all three),
# DEADLINE (epoch seconds all harness runs end by; default BUDGET_S=560 s from the training start), TAG (results
# name, default h200 / dry), LANES (pair: an MLX lane and a torch lane, each training ONLY's models one after the
# other; each: every (model, backend) its own process, all at once), TEACHER_KEEP=1 (use the committed teacher run
# instead of recomputing it), FIRST_STAGES=1 (also `harness run suites/train-full-first-stages.yaml`: the shared
# first-stage lists as stored rows, reranked by the all-MiniLM-L6-v2 bi-encoder). Each (model, backend) is its own
# harness run and results file: results/train-full-<TAG>-<model>-<mlx|torch>.json.
set -u
PY=${PY:-python3}
OUT=${OUT:-/tmp/train-full-out}
ONLY=${ONLY:-minilm-full minilm-lora smollm2-lora}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
if [ -d /root/gpu-stage/files ]; then  # the lent GPU: staged weights, data and wheels (docs/training.md)
  S=/root/gpu-stage/files
  [ -d $S/xwheels ] && { python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
    $S/xwheels/*.whl || exit 1; }
  export PYTHONPATH=.:$S:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  mkdir -p ../shared/data && for d in trec-dl noveleval; do cp -rn $S/$d ../shared/data/ 2>/dev/null; done
  python3 -c 'import mlx.core as mx, torch, datasets, pydantic; print("mlx", mx.__version__, mx.default_device(), "torch", torch.__version__, torch.cuda.is_available(), "datasets", datasets.__version__)' || echo "WARNING: an import failed (above)"
fi
mkdir -p "$OUT"
SUITE=suites/train-full.yaml
TEACHER=results/quality-teacher-minilm-bi.run
TAG=${TAG:-h200}
[ "${DRY:-0}" = 1 ] && TAG=dry
LOGS=/tmp/train-full-logs-$TAG; rm -rf $LOGS; mkdir -p $LOGS
if [ "${DRY:-0}" = 1 ]; then
  TEACHER=/tmp/train-full-dry-teacher.run
  $PY -m harness.train.teacher $SUITE $TEACHER --max-queries 3 || exit 1
  SUITE=suites/.train-full-dry.yaml   # git-ignored? no: removed at the end; paths stay relative to suites/
  $PY - "$TEACHER" <<'PYEOF' || exit 1
import sys, yaml
s = yaml.safe_load(open("suites/train-full.yaml"))
t = s["train"]
t["teacher"] = sys.argv[1]
t["recipe"].update(epochs=1, group_size=4, batch_size=2, eval_steps=1, dev_max_docs=2)
for m in t["models"]:
    m.get("recipe", {}).update(epochs=1, group_size=4, eval_steps=1)
open("suites/.train-full-dry.yaml", "w").write(yaml.safe_dump(s, sort_keys=False))
PYEOF
  EXTRA="--max-queries 1"
elif [ "${TEACHER_KEEP:-0}" = 1 ] && [ -s $TEACHER ]; then
  echo "teacher: the committed $TEACHER ($(wc -l < $TEACHER) lines)"; EXTRA=""
else
  $PY -m harness.train.teacher $SUITE $TEACHER --batch-size 256 > $LOGS/teacher.log 2>&1; echo "teacher rc $?"; tail -2 $LOGS/teacher.log
  EXTRA=""
fi
[ "${TEACHER_KEEP:-0}" = 1 ] || cp $TEACHER "$OUT/quality-teacher-minilm-bi.run" 2>/dev/null
END=${DEADLINE:-$(( $(date +%s) + ${BUDGET_S:-560} ))}  # every harness run ends by then (a device command: <= 600 s)
run_model() {  # $1 = model, $2 = mlx | torch: one harness run, its own results file (a kill loses only this one)
  left=$(( END - $(date +%s) )); [ $left -gt 20 ] || { echo "$1-$2 skipped: no time left"; return; }
  timeout $left $PY -c 'import sys; from harness.cli import main; sys.exit(main())' run $SUITE \
    --only $1-$2 dl20 noveleval --output results/train-full-$TAG-$1-$2.json --overwrite --no-progress $EXTRA \
    > "$LOGS/$1-$2.log" 2>&1
  echo "$1-$2 rc $? ($(( END - $(date +%s) )) s left)"
}
lane() { for m in $ONLY; do run_model $m $1; done; }
first_stages() {  # the shared first-stage lists as stored harness rows (issue 13 item 3)
  left=$(( END - $(date +%s) ))
  timeout $left $PY -c 'import sys; from harness.cli import main; sys.exit(main())' run suites/train-full-first-stages.yaml \
    --output results/quality-first-stages-$TAG.json --overwrite --no-progress $EXTRA > "$LOGS/first-stages.log" 2>&1
  echo "first-stages rc $? ($(( END - $(date +%s) )) s left)"; cp results/quality-first-stages-$TAG.json "$OUT/" 2>/dev/null
}
[ "${FIRST_STAGES:-0}" = 1 ] && first_stages &
if [ "${DRY:-0}" = 1 ]; then lane mlx; lane torch
elif [ "${LANES:-pair}" = each ]; then for m in $ONLY; do run_model $m mlx & run_model $m torch & done; wait
else lane mlx & lane torch & wait; fi
wait
for f in results/train-full-$TAG-*.json; do cp "$f" "$OUT/"; done
tar -czf "$OUT/logs-$TAG.tgz" -C $LOGS . 2>/dev/null
for f in $LOGS/*-mlx.log $LOGS/*-torch.log; do echo "== $f"; grep -E "Error|Traceback" "$f" | head -3; grep -E "^\[train|ok:|error" "$f" | head -4 | cut -c1-250; done
[ "${DRY:-0}" = 1 ] && rm -f suites/.train-full-dry.yaml
exit 0
