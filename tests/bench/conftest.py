"""pytest-benchmark hot paths: excluded from the default test run; run them with RUN_BENCH=1.

RUN_BENCH=1 .venv/bin/python -m pytest tests/bench --benchmark-json bench.json
"""

import os

if os.environ.get("RUN_BENCH") != "1":
    collect_ignore_glob = ["test_*.py"]
