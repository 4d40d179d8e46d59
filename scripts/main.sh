#!/usr/bin/env bash
# The main job: set up .venv, then run the offline smoke suite and print its leaderboard.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup-venv.sh"
cd "$root"
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec .venv/bin/harness run suites/smoke.yaml "$@"
