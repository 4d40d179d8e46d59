#!/usr/bin/env bash
# scripts/bench-pr.sh BASE_REF HEAD_REF: the regression benchmark of a pull request, locally or in bench.yml.
#
# Checks both commits out in git worktrees ($BENCH_DIR/base and /head; default .git/bench-pr), runs suites/regression.yaml (this
# checkout's copy, so both commits measure the same suite) interleaved A/B/A/B (ROUNDS rounds, default 2) with
# this checkout's .venv, then `harness compare` per round. Prints the last round's Markdown verdict.
# Exit: 0 no regression; 1 a regression in EVERY round (a verdict must repeat: noise rarely does);
# 2 not comparable / bad input in any round. SPEED_GATE=0 reports speed without gating (hosted runners);
# ONLY="NAME ..." runs only those rerankers.
set -euo pipefail
if [ $# -ne 2 ]; then echo "usage: $0 BASE_REF HEAD_REF" >&2; exit 2; fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
ROUNDS=${ROUNDS:-2}
SUITE=${SUITE:-$ROOT/suites/regression.yaml}
OUT=${BENCH_DIR:-$(cd "$ROOT" && git rev-parse --absolute-git-dir)/bench-pr}  # inside .git: nothing untracked
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
for side in base head; do
  ref=$1; [ "$side" = head ] && ref=$2
  git -C "$ROOT" worktree remove --force "$OUT/$side" 2>/dev/null || true
  git -C "$ROOT" worktree add --detach --force "$OUT/$side" "$ref" >&2
  # same suite for both commits, without its gate: section (it judges, never measures; commits older than the
  # gate: field refuse the key); this checkout's harness compare reads the gate from $SUITE itself
  "$PY" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); d.pop("gate", None); yaml.safe_dump(d, open(sys.argv[2], "w"), sort_keys=False)' \
    "$SUITE" "$OUT/$side/suites/regression.yaml"
done
flags=()
only=()
[ -n "${ONLY:-}" ] && only=(--only $ONLY)   # e.g. ONLY=minilm-mlx: a subset of the suite
flags+=(--gate "$SUITE")   # this checkout's suite's gate: thresholds (the PR's)
[ "${SPEED_GATE:-1}" = 0 ] && flags+=(--no-speed-gate)
regressions=0; status=0
for round in $(seq 1 "$ROUNDS"); do
  for side in base head; do   # A/B in one job, one after the other, same machine state
    uptime >&2
    (cd "$OUT/$side" && "$PY" -m harness.cli run suites/regression.yaml --no-progress --overwrite \
        --output "$OUT/$side-$round.json" ${only[@]+"${only[@]}"} >/dev/null) || echo "$side round $round: some runs failed" >&2
  done
  rc=0
  (cd "$ROOT" && "$PY" -m harness.cli compare "$OUT/base-$round.json" "$OUT/head-$round.json" ${flags[@]+"${flags[@]}"} \
      --output "$OUT/verdict-$round.md" >/dev/null) || rc=$?
  (cd "$ROOT" && "$PY" -m harness.cli compare "$OUT/base-$round.json" "$OUT/head-$round.json" ${flags[@]+"${flags[@]}"} \
      --format json --output "$OUT/verdict-$round.json" >/dev/null) || true
  echo "round $round: harness compare exit $rc" >&2
  [ "$rc" = 2 ] && status=2
  [ "$rc" = 1 ] && regressions=$((regressions + 1))
done
cat "$OUT/verdict-$ROUNDS.md"
echo
echo "Rounds with a regression: $regressions of $ROUNDS (A/B interleaved; a regression must repeat in every round)."
if [ "$status" = 2 ]; then exit 2; fi
if [ "$regressions" = "$ROUNDS" ]; then exit 1; fi
exit 0
