"""On MLX's CUDA backend the import hook bounds the operations per CUDA graph (``MLX_MAX_OPS_PER_BUFFER``), which
cut MLX's peak memory 4-7x on an H200 (docs/benchmarks.md), and sets ``MLX_USE_CUDA_GRAPHS`` to
``_blas.USE_CUDA_GRAPHS`` when that is not None; a user's values are kept; other backends are untouched.

MLX reads the variable when its GPU starts, so its effect needs the GPU (the H200 results); here the decision is
checked, and that the hook makes it before mlx.core loads (fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlx_cross_encoder import _blas

ROOT = Path(__file__).resolve().parents[2]
VAR = _blas.CUDA_GRAPH_OPS_ENV_VAR
GRAPHS = _blas.CUDA_GRAPHS_ENV_VAR


def test_cuda_backend_gets_bounded_graphs(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    _blas.bounded_cuda_graphs(cuda=True)
    assert os.environ[VAR] == _blas.CUDA_GRAPH_OPS == "2"


def test_user_value_kept_and_other_backends_untouched(monkeypatch):
    monkeypatch.setenv(VAR, "40")
    _blas.bounded_cuda_graphs(cuda=True)
    assert os.environ[VAR] == "40"
    monkeypatch.delenv(VAR)
    _blas.bounded_cuda_graphs(cuda=False)
    assert VAR not in os.environ


@pytest.mark.parametrize("setting", ["0", None])
def test_cuda_graphs_switch_follows_the_library_setting(monkeypatch, setting):
    monkeypatch.setattr(_blas, "USE_CUDA_GRAPHS", setting)
    monkeypatch.delenv(GRAPHS, raising=False)
    _blas.bounded_cuda_graphs(cuda=False)
    assert GRAPHS not in os.environ  # not MLX's CUDA backend: untouched
    _blas.bounded_cuda_graphs(cuda=True)
    assert os.environ.get(GRAPHS) == setting
    monkeypatch.setenv(GRAPHS, "1")
    _blas.bounded_cuda_graphs(cuda=True)
    assert os.environ[GRAPHS] == "1"  # the user's value is kept


def test_hook_decides_before_mlx_loads():
    """In a fresh interpreter where the CUDA package is reported installed, the variable is set by the time
    mlx.core is imported (and only then: importing mlx_cross_encoder alone changes nothing)."""
    probe = (
        "import json, os\n"
        "import mlx_cross_encoder\n"
        "from mlx_cross_encoder import _blas\n"
        "_blas.mlx_cuda_installed = lambda: True\n"
        f"before = [os.environ.get({VAR!r}), os.environ.get({GRAPHS!r})]\n"
        "import mlx.core\n"
        f"print('RESULT ' + json.dumps([before, os.environ.get({VAR!r}), os.environ.get({GRAPHS!r})]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in (VAR, GRAPHS)}
    run = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    assert json.loads(line[len("RESULT ") :]) == [[None, None], "2", _blas.USE_CUDA_GRAPHS]
