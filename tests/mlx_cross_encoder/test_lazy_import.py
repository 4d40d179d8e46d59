"""``import mlx_cross_encoder`` loads no MLX and changes no environment; the optimized BLAS still binds to MLX.

Each check runs in a fresh interpreter (the test process itself has long imported MLX). The binding is observed
directly: with ``MKL_VERBOSE=1`` MKL prints one line per BLAS call, so a ``SGEMM`` line from an MLX matmul proves
that MLX's ``cblas_sgemm`` resolved to MKL and not to MLX's bundled reference BLAS.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import builders
import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parents[1]
BLAS_VARIABLES = ("MKL_THREADING_LAYER", "MKL_INTERFACE_LAYER", "MKL_VERBOSE", "MLX_CROSS_ENCODER_BLAS")
MKL_EXPECTED = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


IMPORT_ONLY = """
import json, os, sys
before = dict(os.environ)
import mlx_cross_encoder
import mlx_cross_encoder.training.settings
from mlx_cross_encoder import RerankTemplate, ModelLoadError
from mlx_cross_encoder.llm_template import QWEN3_TEMPLATE
loaded = sorted(m for m in sys.modules if m == "mlx" or m.startswith(("mlx.", "mlx_lm")))
import importlib.util
importlib.util.find_spec("mlx.core")  # a probe, as transformers makes: imports the namespace "mlx" only
maps = open("/proc/self/maps").read() if os.path.exists("/proc/self/maps") else ""
print(json.dumps({
    "mlx": loaded,
    "mlx_core_after_probe": "mlx.core" in sys.modules,
    "torch": "torch" in sys.modules,
    "env_changed": sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)),
    "mkl_mapped": "libmkl" in maps,
    "blas": mlx_cross_encoder._blas.loaded_library,
}))
"""


def test_import_loads_no_mlx_no_blas_and_changes_no_environment():
    out = run_python(IMPORT_ONLY)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {
        "mlx": [],
        "mlx_core_after_probe": False,
        "torch": False,
        "env_changed": [],
        "mkl_mapped": False,
        "blas": None,
    }


SCORE = """
import json, os, sys
{prelude}
import builders, mlx_cross_encoder, mlx_cross_encoder._blas as b
from mlx_cross_encoder import MLXCrossEncoder
scores = MLXCrossEncoder({model!r}).predict(builders.pairs(4))
print("RESULT " + json.dumps({{"lib": b.loaded_library, "layer": os.environ.get("MKL_THREADING_LAYER")}}))
"""


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return str(builders.bert_cross_encoder(tmp_path_factory.mktemp("bert_lazy"), seed=3))


def _score_run(model: str, prelude: str = "", **env: str) -> tuple[dict, bool, str]:
    out = run_python(SCORE.format(prelude=prelude, model=model), MKL_VERBOSE="1", **env)
    assert out.returncode == 0, out.stderr
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    return result, "SGEMM(" in out.stdout, out.stderr


@pytest.mark.skipif(not MKL_EXPECTED, reason="the mkl wheel is a dependency on Linux x86_64 only")
def test_optimized_blas_binds_to_mlx_when_a_model_is_created(tiny_bert):
    result, mkl_sgemm, _ = _score_run(tiny_bert)
    assert result["lib"] is not None and "mkl" in result["lib"]
    assert result["layer"] == "SEQUENTIAL"
    assert mkl_sgemm, "MLX's matmuls did not reach MKL"


@pytest.mark.skipif(not MKL_EXPECTED, reason="the mkl wheel is a dependency on Linux x86_64 only")
def test_blas_binds_when_a_model_module_is_imported_directly(tiny_bert):
    # a submodule import skips the package's lazy names but still passes the BLAS hook
    result, mkl_sgemm, _ = _score_run(tiny_bert, prelude="import mlx_cross_encoder.models.bert")
    assert "mkl" in (result["lib"] or "") and mkl_sgemm


@pytest.mark.skipif(not MKL_EXPECTED, reason="the mkl wheel is a dependency on Linux x86_64 only")
def test_mlx_imported_first_or_blas_off_keeps_the_reference_blas(tiny_bert):
    """The controls: the SGEMM line appears only when MKL is bound, so the checks above can fail."""
    result, mkl_sgemm, _ = _score_run(tiny_bert, MLX_CROSS_ENCODER_BLAS="off")
    assert result["lib"] is None and not mkl_sgemm
    result, mkl_sgemm, stderr = _score_run(tiny_bert, prelude="import mlx.core")
    assert result["lib"] is None and not mkl_sgemm
    assert "mlx.core was imported before mlx_cross_encoder" in stderr


def test_lazy_names_are_the_defining_modules_objects():
    import mlx_cross_encoder
    from mlx_cross_encoder import cross_encoder, errors, llm_reranker, llm_template, training

    for name in mlx_cross_encoder.__all__:
        assert name in dir(mlx_cross_encoder)
        assert getattr(mlx_cross_encoder, name) is not None
    assert mlx_cross_encoder.MLXCrossEncoder is cross_encoder.MLXCrossEncoder
    assert mlx_cross_encoder.Qwen3Reranker is llm_reranker.Qwen3Reranker
    assert mlx_cross_encoder.load_reranker is llm_reranker.load_reranker
    assert mlx_cross_encoder.RerankTemplate is llm_template.RerankTemplate is llm_reranker.RerankTemplate
    assert mlx_cross_encoder.ModelLoadError is errors.ModelLoadError
    assert mlx_cross_encoder.Qwen3RerankerTrainer is training.Qwen3RerankerTrainer
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        mlx_cross_encoder.NoSuchName  # noqa: B018
