#!/usr/bin/env bash
# Issue #13 item 2 (embedding rerankers) on the lent H200, session 6: what gpu runs for embed in the main window,
# from the repository root after `bash benchmarks/gpu_run.sh setup`, beside benchmarks/gpu_quality.sh.
#   bash benchmarks/gpu_embed.sh            (env: OUT, the call's output folder; BUDGET_S, seconds, default 480)
#   DRY=1 BUDGET_S=1500 bash benchmarks/gpu_embed.sh   a tiny CPU trial of the same suites (2 queries x 10
#                                           candidates per dataset, 400
#                                           training pairs, 6 dev documents per dev query, 1 epoch of batch 8, CPU
#                                           devices, the harness runs one after the other), results under a temp folder
# Four harness runs at once, each ended by `timeout` (SIGTERM: the harness keeps every finished run and marks the
# file incomplete) so that the script ends within BUDGET_S:
#   smollm2-zs        suites/bi-encoder-smollm2-h200.yaml, the four zero-shot rerankers (SmolLM2-135M as a bi-encoder,
#                     last-token and mean pooling, MLX vs sentence-transformers) on DL20 + NovelEval
#                     -> results/bi-encoder-smollm2-zero-shot-h200-s6.json
#   smollm2-lora-mlx  the same suite's train model smollm2-bi-lora, MLX twin only (InfoNCE + LoRA, dev-chosen
#                     checkpoint), evaluated on DL20 + NovelEval -> results/bi-encoder-smollm2-lora-mlx-h200-s6.json
#   smollm2-lora-torch  its sentence-transformers MNRL + PEFT twin -> results/bi-encoder-smollm2-lora-torch-h200-s6.json
#                     (the twins train in two processes at once: the call's budget does not fit them one after the other)
#   minilm-hn1        suites/bi-encoder-trained-h200.yaml --only minilm-bi-hn1 (session 5's chosen recipe) again, with
#                     the InfoNCE trainer's GPU defaults of session 6 (widths padded to 32, compiled step): the
#                     training wall times per stack -> results/bi-encoder-trained-h200-s6-hn1.json
# Wall times from this call are SHARED-GPU figures (quality's training and these runs at once).
# Writes exactly one file, $OUT/embed.tgz: the results files, logs, versions (the trained model folders stay on the
# machine: their weight fingerprints are in the results).
set -u
BUDGET=${BUDGET_S:-480}
END=$((SECONDS + BUDGET - 20)) # 20 s for packing
left() { local d=$((END - SECONDS)); [ "$d" -lt 5 ] && d=5; echo "$d"; }
OUT=${OUT:-/tmp/embed-out}
WORK=$(mktemp -d /tmp/embed-XXXXXX)
mkdir -p "$OUT" "$WORK/logs" "$WORK/results"
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
[ -n "${DRY:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p ../shared/data
for d in trec-dl noveleval; do [ -d "../shared/data/$d" ] || { [ -d ".h200/$d" ] && cp -r ".h200/$d" ../shared/data/; }; done

SM=suites/bi-encoder-smollm2-h200.yaml
TR=suites/bi-encoder-trained-h200.yaml
RES=results # the results files stay in the tree (and are packed); DRY: $WORK/dry
EXTRA=()
TRAIN_EXTRA=()
if [ -n "${DRY:-}" ]; then # the same suites, tiny and CPU-only, absolute data paths, under $WORK
  "$PY" benchmarks/bi_encoder_dry_suites.py "$WORK" "$SM" "$TR" || exit 1
  SM=$WORK/$(basename "$SM")
  TR=$WORK/$(basename "$TR")
  RES=$WORK/dry
  mkdir -p "$RES"
  EXTRA=(--max-queries 2)
  TRAIN_EXTRA=(--train-max-pairs 400)
fi
harness() { "$PY" -c 'import sys; from harness.cli import main; sys.exit(main())' "$@"; }

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  "$PY" -c 'import mlx.core as mx, torch, sentence_transformers as st, peft
print("mlx", mx.__version__, mx.default_device(), "torch", torch.__version__, "sentence-transformers", st.__version__, "peft", peft.__version__)' 2>&1
  git log -1 --format='tree %H %s' 2>/dev/null
  cat .h200/head.commit 2>/dev/null
} > "$WORK/logs/env.txt"

# launch NAME SUITE OUTPUT ARGS...: one harness run under `timeout`, in the background (DRY: in the foreground, one
# heavy process at a time on the CPU box); its log in $WORK/logs/NAME.log, its exit status in status.txt
launch() {
  local name=$1 suite=$2 output=$3
  shift 3
  (
    t0=$SECONDS
    timeout -s TERM -k 15 "$(left)" bash -c "$(declare -f harness); PY=$PY harness run $suite --output $output \
      --overwrite --no-progress $*" > "$WORK/logs/$name.log" 2>&1
    echo "$name rc $? after $((SECONDS - t0)) s" >> "$WORK/logs/status.txt"
  ) &
  if [ -n "${DRY:-}" ]; then wait $!; fi
}
launch smollm2-zs "$SM" "$RES/bi-encoder-smollm2-zero-shot-h200-s6.json" --only smollm2-bi-lasttoken-mlx \
  smollm2-bi-lasttoken-torch smollm2-bi-mean-mlx smollm2-bi-mean-torch --timeout 300 "${EXTRA[@]}"
for b in mlx torch; do
  launch "smollm2-lora-$b" "$SM" "$RES/bi-encoder-smollm2-lora-$b-h200-s6.json" --only "smollm2-bi-lora-$b" \
    --timeout 480 "${EXTRA[@]}" "${TRAIN_EXTRA[@]}"
done
launch minilm-hn1 "$TR" "$RES/bi-encoder-trained-h200-s6-hn1.json" --only minilm-bi-hn1 --timeout 400 \
  "${EXTRA[@]}" "${TRAIN_EXTRA[@]}"
wait
cat "$WORK/logs/status.txt"

cp "$RES"/bi-encoder-*-h200-s6*.json "$WORK/results/" 2>/dev/null
for d in "$RES"/bi-encoder-*-h200-s6*.train; do
  [ -d "$d" ] && du -sh "$d"/* >> "$WORK/logs/train-dirs.txt" 2>&1
done
for f in "$WORK"/logs/*.log; do
  echo "== $f"
  tail -n 12 "$f" | cut -c1-250
done
tar -czf "$OUT/embed.tgz" -C "$WORK" results logs
if [ "$(stat -c %s "$OUT/embed.tgz")" -gt 16000000 ]; then
  tar -czf "$OUT/embed.tgz" -C "$WORK" results logs/status.txt
  echo "embed.tgz over 16 MB: results + status only"
fi
ls -l "$OUT/embed.tgz"
