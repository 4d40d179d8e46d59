#!/usr/bin/env bash
# Issue 12, session 6: the early diagnostic call on the lent H200, after `bash benchmarks/gpu_run.sh setup`, from the
# repository root. Runs the DIAG REQUESTs the other roles logged in /work/coord/LOG.md by 11:45 (their commands as
# written there, each under its own cap) and checks the provenance fix (gpu_run.sh tree):
#   part 1, side by side (the GPU is shared: sizes and memory, no timings to report): a harness run whose results file
#           shows environment.git; the 4 GGUF parity tests (the gguf wheel installed by setup); quality's DIAG=1
#           gpu_quality.sh (cap 150 s); encspeed's MiniLM single_query memory A/B (enc_chunks.py --scenario
#           single_query, cap 88 s, memory only)
#   part 2, alone on the GPU, one after the other (timed): encspeed's enc_timeline.py (cap 88 s), embed's
#           bi_encoder_step_profile.py (cap 88 s), trainspeed's gpu_train.py step profile (118 s, or 58 s when the
#           call's DIAG_END, epoch seconds, leaves less than 122 s)
# Usage: bash benchmarks/gpu_diag.sh [part1] [part2]   (default both). Outputs under /tmp/diag, packed into
# $OUT/diag.tgz (+ $OUT/quality.tgz as quality's script writes it); a summary on stdout.
set -u
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}
DIAG_END=${DIAG_END:-$(($(date +%s) + 420))}
D=/tmp/diag
mkdir -p "$D" "$OUT"
C=../shared/data/trec-dl/bm25_top100_dl19.json
harness() { python3 -c 'import sys; from harness.cli import main; sys.exit(main())' "$@"; }
parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(part1 part2)
for part in "${parts[@]}"; do
  start=$SECONDS
  case $part in
    part1)
      { echo "HEAD $(git rev-parse HEAD)"; echo "git status --short:"; git status --short | head -10; } > "$D/provenance.txt"
      ( timeout 90 bash -c "$(declare -f harness); harness run suites/h200-minilm.yaml --only minilm-bf16-mlx \
          --max-queries 3 --output $D/provenance-minilm.json --overwrite --no-progress" > "$D/provenance-run.log" 2>&1
        python3 -c 'import json,sys; print("results environment.git:", json.load(open(sys.argv[1]))["environment"]["git"])' \
          "$D/provenance-minilm.json" >> "$D/provenance.txt" 2>&1 ) &
      ( PYTHONPATH=benchmarks:$PYTHONPATH timeout 150 python3 -m pytest -v -p no:cacheprovider -p gpu_pytest_cache -rfE \
          --tb=short tests/mlx_cross_encoder/test_llm_reranker.py -k gguf > "$D/gguf-pytest.log" 2>&1
        echo "gguf pytest rc $?" >> "$D/gguf-pytest.log" ) &
      ( DIAG=1 BUDGET_S=150 OUT=$OUT timeout 160 bash benchmarks/gpu_quality.sh > "$D/quality-stdout.log" 2>&1
        echo "quality rc $?" >> "$D/quality-stdout.log" ) &
      ( timeout 88 bash -c "for d in float32 bfloat16; do timeout 42 python3 benchmarks/enc_chunks.py local:minilm-l6-seeded-head \
          --candidates $C --scenario single_query --dtype \$d --chunk-tokens auto,auto//none,8192//none,4096//none,2048//none --repeats 2 --torch \
          --json $D/enc-sq-\$d.json > $D/enc-sq-\$d.log 2>&1; done" ) &
      wait
      cat "$D/provenance.txt"; grep -E "passed|failed|error|rc " "$D/gguf-pytest.log" | tail -8
      tail -n 4 "$D/quality-stdout.log"; tail -n 3 "$D"/enc-sq-*.log ;;
    part2)
      timeout 88 bash -c "timeout 55 python3 benchmarks/enc_timeline.py local:minilm-l6-seeded-head --candidates $C \
        --chunk-tokens auto,32768,32768/32,65536/32,32768/32//keep --kernels auto,32768/32 --json $D/enc-timeline-ops2.json \
        > $D/enc-timeline.log 2>&1;
        MLX_MAX_OPS_PER_BUFFER=20 timeout 30 python3 benchmarks/enc_timeline.py local:minilm-l6-seeded-head --candidates $C \
        --chunk-tokens auto,32768/32 --json $D/enc-timeline-ops20.json >> $D/enc-timeline.log 2>&1"
      echo "enc-timeline rc $? ($((SECONDS - start)) s)"
      timeout 88 bash -c "timeout 28 python3 benchmarks/bi_encoder_step_profile.py --steps 10 --modes plain,nocache,pad32 --torch \
        --json $D/embed-prof-minilm.json; MLX_MAX_OPS_PER_BUFFER=20 timeout 18 python3 benchmarks/bi_encoder_step_profile.py \
        --steps 10 --modes plain,pad32 --json $D/embed-prof-minilm-ops20.json; timeout 20 python3 benchmarks/bi_encoder_step_profile.py \
        --steps 10 --modes compile --json $D/embed-prof-minilm-compile.json; timeout 20 python3 benchmarks/bi_encoder_step_profile.py \
        --model local:smollm2-135m-instruct --pooling lasttoken --lora --modes plain,pad32 --steps 6 \
        --json $D/embed-prof-smollm2.json" > "$D/embed-prof.log" 2>&1
      echo "embed-prof rc $? ($((SECONDS - start)) s)"
      # trainspeed's 11:27 request (~118 s: full + LoRA, ops20, graph cache rows) when the call's deadline leaves it
      # the time, else their 11:29 short form (~58 s: full fine-tuning only)
      G="python3 benchmarks/gpu_train.py --steps 25 --warmup 10"
      if [ $((DIAG_END - $(date +%s))) -ge 122 ]; then
        timeout 78 $G --jobs minilm-full --backends mlx-plain,torch,mlx-compiled,mlx-compiled-ops20,mlx-compiled-nographs,mlx-plain-nographs,mlx-compiled-ops20-gc1000 \
          --timeout 28 --json $D/trainspeed-diag-full.json > $D/trainspeed-diag-full.log 2>&1
        timeout 40 $G --jobs minilm-lora --backends mlx-plain,mlx-compiled,torch --timeout 28 \
          --json $D/trainspeed-diag-lora.json > $D/trainspeed-diag-lora.log 2>&1
      else
        timeout 58 $G --jobs minilm-full --backends mlx-plain,mlx-compiled,torch,mlx-compiled-nographs,mlx-plain-nographs \
          --timeout 25 --json $D/trainspeed-diag-full.json > $D/trainspeed-diag-full.log 2>&1
      fi
      echo "train-prof rc $? ($((SECONDS - start)) s)"
      tail -c 1200 "$D/enc-timeline.log"; tail -c 1200 "$D/embed-prof.log"; tail -n 11 "$D"/trainspeed-diag-*.log ;;
    *) echo "unknown part $part"; exit 2 ;;
  esac
  echo "== $part took $((SECONDS - start)) s"
  tar -czf "$OUT/diag.tgz" -C /tmp diag 2>/dev/null
done
