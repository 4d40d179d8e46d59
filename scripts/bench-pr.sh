#!/usr/bin/env bash
# scripts/bench-pr.sh BASE_REF HEAD_REF: the regression benchmark of a pull request, locally or in bench.yml.
#
# Checks both commits out in git worktrees ($BENCH_DIR/base and /head; default .git/bench-pr), runs suites/regression.yaml
# (this checkout's copy, so both commits measure the same suite) in ROUNDS interleaved rounds (default 2) with this
# checkout's .venv: round 1 runs base then head, round 2 head then base, and so on (alternate order: a steady drift
# of the machine favours each side equally often). Then ONE `harness compare base-1 head-1 base-2 head-2 ...`: it
# judges each round and calls a regression only when every round finds it (harness/compare/rounds.py; the rule
# lives there, not here). Writes $BENCH_DIR/verdict.md and verdict.json, prints the Markdown verdict.
# Exit: harness compare's (0 no regression; 1 a regression in every round; 2 not comparable / bad input).
# SPEED_GATE=0 reports speed without gating (hosted runners); ONLY="NAME ..." runs only those rerankers.
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
files=()
for round in $(seq 1 "$ROUNDS"); do
  order="base head"; [ $((round % 2)) = 0 ] && order="head base"
  for side in $order; do   # one job, one run after the other
    uptime >&2
    (cd "$OUT/$side" && "$PY" -m harness.cli run suites/regression.yaml --no-progress --overwrite \
        --output "$OUT/$side-$round.json" ${only[@]+"${only[@]}"} >/dev/null) || echo "$side round $round: some runs failed" >&2
  done
  files+=("$OUT/base-$round.json" "$OUT/head-$round.json")
done
rc=0
(cd "$ROOT" && "$PY" -m harness.cli compare "${files[@]}" ${flags[@]+"${flags[@]}"} --output "$OUT/verdict.md") || rc=$?
(cd "$ROOT" && "$PY" -m harness.cli compare "${files[@]}" ${flags[@]+"${flags[@]}"} --format json \
    --output "$OUT/verdict.json" >/dev/null) || true
echo "harness compare over $ROUNDS rounds: exit $rc" >&2
exit "$rc"
