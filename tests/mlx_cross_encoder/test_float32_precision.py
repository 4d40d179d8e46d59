"""float32 means float32 in MLX: the import hook sets ``MLX_ENABLE_TF32=0`` (MLX's default is TF32 float32 matmuls
on CUDA GPUs and M5) right before mlx.core loads, unless the user chose; the harness records what ran. dtype ``tf32``
asks for TF32 explicitly and needs the switch at 1; a dtype the process's switch contradicts is refused.

The numerical effect needs TF32 hardware (the H200 results in docs/benchmarks.md); here the switch itself is checked
in fresh interpreters, since MLX reads it once per process, and a CPU (no TF32 units) computes tf32 as float32."""

from __future__ import annotations

from pathlib import Path

import builders
import numpy as np
import pytest

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
    return builders.run_fresh(PROBE, **env)


def test_mlx_float32_matmuls_are_full_float32_by_default():
    assert probe() == {"before": None, "after": "0", "mode": "float32"}


def test_user_choice_of_tf32_is_kept_and_reported():
    assert probe(MLX_ENABLE_TF32="1") == {"before": "1", "after": "1", "mode": "tf32"}


MODEL = """
import json, sys
from mlx_cross_encoder import MLXCrossEncoder, _blas, precision
import mlx.core as mx
mx.set_default_device(mx.cpu)  # a device without TF32 units, whatever the machine has
try:
    model = MLXCrossEncoder(sys.argv[1], dtype=sys.argv[2], max_length=64)
except ValueError as exc:
    print("RESULT " + json.dumps({"error": str(exc)}))
else:
    pairs = [("what is a cat", "a cat is a small animal"), ("rain", "water falls from clouds"), ("x", "y z")]
    print("RESULT " + json.dumps({"switch": _blas.float32_matmul_precision(), "ran": precision.float32_matmul(),
                                  "scores": [float(x) for x in model.predict(pairs, activation_fn="identity")]}))
"""


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return builders.bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=5, initializer_range=0.2)


def in_process(model: Path, dtype: str, **env: str) -> dict:
    return builders.run_fresh(MODEL, str(model), dtype, timeout=300, **env)


def test_a_dtype_the_process_switch_contradicts_is_refused(tiny_bert):
    refused = in_process(tiny_bert, "tf32")  # the import hook's default switch: 0
    assert refused == {
        "error": "dtype 'tf32' needs MLX_ENABLE_TF32=1, but this process has MLX_ENABLE_TF32=0: start the process "
        "with MLX_ENABLE_TF32=1 (set before mlx.core loads; MLX reads it once per process)"
    }
    refused = in_process(tiny_bert, "float32", MLX_ENABLE_TF32="1")
    assert refused["error"].startswith(
        "dtype 'float32' needs MLX_ENABLE_TF32=0, but this process has MLX_ENABLE_TF32=1"
    )


def test_tf32_without_tf32_units_computes_float32_and_says_so(tiny_bert):
    fp32 = in_process(tiny_bert, "float32")
    tf32 = in_process(tiny_bert, "tf32", MLX_ENABLE_TF32="1")
    assert (fp32["switch"], fp32["ran"]) == ("float32", "float32")
    assert (tf32["switch"], tf32["ran"]) == ("tf32", "float32")  # the switch is on; a CPU has no TF32 units
    np.testing.assert_allclose(tf32["scores"], fp32["scores"], rtol=1e-6, atol=1e-6)


MATMUL = """
import json
import numpy as np
from mlx_cross_encoder import precision
import mlx.core as mx
rng = np.random.default_rng(0)
a, b = rng.standard_normal((512, 512), dtype=np.float32), rng.standard_normal((512, 512), dtype=np.float32)
ref = a.astype(np.float64) @ b.astype(np.float64)
out = np.array(mx.matmul(mx.array(a), mx.array(b)), dtype=np.float64)
print("RESULT " + json.dumps({"ran": precision.float32_matmul(), "units": precision.tf32_units(),
                              "err": float(np.linalg.norm(out - ref) / np.linalg.norm(ref))}))
"""


def matmul_on_default_device(**env: str) -> dict:
    return builders.run_fresh(MATMUL, **env)


def test_the_recorded_matmul_precision_matches_the_numbers_on_this_machine():
    """float32_matmul says tf32 exactly when the switch is on and MLX's default device has TF32 units, and the
    product's error says the same: float32 rounding (~1e-7) vs TF32's 10-bit inputs (~3e-4). On a CPU both are
    float32; on a CUDA GPU (the H200 parity run) the tf32 process must show TF32's error."""
    full = matmul_on_default_device()
    assert full["ran"] == "float32" and full["err"] < 1e-5
    tf32 = matmul_on_default_device(MLX_ENABLE_TF32="1")
    assert tf32["ran"] == ("tf32" if tf32["units"] else "float32")
    assert (1e-4 < tf32["err"] < 2e-3) if tf32["units"] else tf32["err"] < 1e-5
