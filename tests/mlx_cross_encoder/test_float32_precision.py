"""float32 means float32 in MLX: the import hook sets ``MLX_ENABLE_TF32=0`` (MLX's default is TF32 float32 matmuls
on CUDA GPUs and M5) right before mlx.core loads, unless the user chose; the harness records what ran.

The numerical effect needs TF32 hardware (the H200 results in docs/benchmarks.md); here the switch itself is checked
in fresh interpreters, since MLX reads it once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, os
import mlx_cross_encoder
from mlx_cross_encoder import _blas
before = os.environ.get("MLX_ENABLE_TF32")
import mlx.core as mx
print("RESULT " + json.dumps({"before": before, "after": os.environ.get("MLX_ENABLE_TF32"),
                              "mode": _blas.float32_matmul_precision()}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "MLX_ENABLE_TF32"}
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_mlx_float32_matmuls_are_full_float32_by_default():
    assert probe() == {"before": None, "after": "0", "mode": "float32"}


def test_user_choice_of_tf32_is_kept_and_reported():
    assert probe(MLX_ENABLE_TF32="1") == {"before": "1", "after": "1", "mode": "tf32"}
