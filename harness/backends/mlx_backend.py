"""The ``mlx`` backend: ``mlx_cross_encoder.MLXCrossEncoder``, or ``Qwen3Reranker`` for causal-LM checkpoints.

Options (suite ``options:``): ``quantize`` (4 or 8: Linear weights quantized, head kept), ``activation_fn``
("sigmoid", "identity", ... as MLXCrossEncoder takes), ``max_batch_tokens`` (padded tokens per batch; the torch
backend forms the same batches), ``tokenize_processes`` (cross-encoders on a GPU: a streamed call's tokenizer tasks
in that many worker processes instead of threads; default: ``MLX_CROSS_ENCODER_TOKENIZE_PROCESSES``, else threads).
``device``: "auto" (MLX's default device), "gpu" or "cpu".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import TF32, Backend, BackendError, as_scores, is_causal_lm, max_batch_tokens
from .registry import BACKENDS

OPTIONS = BACKENDS["mlx"].options  # declared once, in harness.backends.registry


class MLXRuntime(Backend):
    """What every MLX backend shares (this one and ``bi_encoder_mlx``): MLX imported after ``mlx_cross_encoder``'s
    BLAS hook, the ``device`` choice, peak memory from ``mx``, and the BLAS / float32 / CUDA-graph facts a run
    records."""

    memory_measure = (
        "mx.get_peak_memory(): peak bytes of MLX arrays alive at once since the reset before the timed passes "
        "(weights included, MLX's buffer cache excluded)"
    )
    version_packages = ("mlx", "mlx-metal", "mlx-cpu", "mlx-cuda-12", "mlx-cuda-13", "mlx-lm", "tokenizers")

    def start_mlx(self, spec) -> None:
        import mlx_cross_encoder  # noqa: F401  first: its import hook loads the optimized BLAS before mlx.core
        from mlx_cross_encoder import _blas

        arrange_tf32_switch(spec, self.dtype)
        # isort: split
        import mlx.core as mx

        self._mx = mx
        device = (getattr(spec, "device", None) or "auto").lower()
        if device == "cpu":
            mx.set_default_device(mx.cpu)
        elif device == "gpu":
            mx.set_default_device(mx.gpu)
        elif device != "auto":
            raise BackendError(f"device {device!r} is not an MLX device; use auto, gpu or cpu")
        self.device = "mlx-gpu" if mx.default_device().type == mx.gpu else "mlx-cpu"
        self.blas = _blas.loaded_library

    def reset_peak_memory(self) -> None:
        self._mx.reset_peak_memory()

    def peak_memory_mb(self) -> float | None:
        return self._mx.get_peak_memory() / 2**20

    def describe(self) -> dict[str, Any]:
        from mlx_cross_encoder import _blas, precision

        return {
            **super().describe(),
            "blas": self.blas,
            "float32_matmul": precision.float32_matmul(),  # "tf32": switch on and TF32 units on this device
            "mlx_enable_tf32": os.environ.get(_blas.TF32_ENV_VAR),  # the switch as this process has it
            "mlx_max_ops_per_buffer": os.environ.get(_blas.CUDA_GRAPH_OPS_ENV_VAR),  # CUDA graph size (_blas)
            "mlx_use_cuda_graphs": os.environ.get(_blas.CUDA_GRAPHS_ENV_VAR),  # "0": kernels launched directly
        }


def arrange_tf32_switch(spec, dtype: str) -> None:
    """MLX's TF32 switch for this reranker's dtype (``_blas.tf32_switch``: "1" for tf32, else "0"), set before
    ``mlx.core`` loads; MLX reads it once per process, so a float32 or tf32 reranker in a process that already
    loaded MLX with the other value is refused (the harness runs each reranker in its own worker process, where
    MLX is not loaded yet). Half-precision rerankers promise nothing about float32 products: not checked."""
    import sys

    from mlx_cross_encoder import _blas

    wanted = _blas.tf32_switch(dtype)
    if "mlx.core" not in sys.modules:
        os.environ[_blas.TF32_ENV_VAR] = wanted
        return
    have = os.environ.get(_blas.TF32_ENV_VAR)
    if dtype in ("float32", TF32) and (have or "").strip() != wanted:
        where = f"{spec.suite_file}: " if getattr(spec, "suite_file", None) else ""
        raise BackendError(
            f"{where}reranker {getattr(spec, 'name', '?')!r}, field dtype: {dtype} needs {_blas.TF32_ENV_VAR}="
            f"{wanted}, but this process already loaded MLX with {_blas.TF32_ENV_VAR}={have} (MLX reads it once "
            "per process); run it in a process of its own (harness run does) or start Python with "
            f"{_blas.TF32_ENV_VAR}={wanted}"
        )


class MLXBackend(MLXRuntime):
    name = "mlx"

    def __init__(self, spec, max_length: int, model_dir: Path):
        super().__init__(spec, max_length, model_dir)
        self.check_options(OPTIONS)
        self.start_mlx(spec)
        import mlx_cross_encoder

        if is_causal_lm(self.config):
            self.model = _load_causal_lm(self)
        else:
            if self.instruction:
                raise BackendError(
                    "instruction is only used by LLM (causal-LM) rerankers; this is a cross-encoder "
                    f"({self.config.get('architectures')}); remove it from the suite"
                )
            self.model = mlx_cross_encoder.MLXCrossEncoder(
                self.model_dir,
                max_length=max_length,
                dtype=self.dtype,
                quantize=self.options.get("quantize"),
                activation_fn=self.options.get("activation_fn"),
                max_batch_tokens=max_batch_tokens(self.options),
                tokenize_processes=tokenize_processes(self.options),
            )
        if self.model.max_length != max_length:
            raise BackendError(f"MLX truncates at {self.model.max_length} tokens, not the requested {max_length}")

    def predict(self, pairs, batch_size: int) -> np.ndarray:
        return as_scores(self.model.predict(pairs, batch_size=batch_size, show_progress_bar=False), len(pairs))

    def token_counts(self, pairs) -> np.ndarray:
        return np.asarray(self.model.token_counts(pairs), dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        # chunk_tokens: MLXCrossEncoder's GPU row chunks per batch (None: off, e.g. on the CPU or an LLM reranker);
        # chunking: the whole chunk rule that ran (token cap, memory bound, streamed piece sizes) or None
        chunks = getattr(self.model, "chunk_tokens", None)
        rule = getattr(self.model, "chunking", None)
        return {
            **super().describe(),
            "quantize": self.options.get("quantize"),
            "chunk_tokens": chunks,
            "chunking": rule,
        }


def _load_causal_lm(backend: MLXBackend):
    """LLM yes/no rerankers (``*ForCausalLM``, e.g. Qwen3-Reranker): ``mlx_cross_encoder.Qwen3Reranker`` with the
    official prompt, the suite's ``instruction`` and the runner's ``max_length`` (prompt included)."""
    if any(backend.options.get(k) is not None for k in ("quantize", "activation_fn", "tokenize_processes")):
        raise BackendError(
            "options quantize / activation_fn / tokenize_processes apply to cross-encoders; LLM rerankers score P(yes)"
        )
    from mlx_cross_encoder import Qwen3Reranker

    return Qwen3Reranker(
        backend.model_dir,
        instruction=backend.instruction,
        max_length=backend.max_length,
        dtype=backend.dtype,
        max_batch_tokens=max_batch_tokens(backend.options),
    )


def tokenize_processes(options) -> int | None:
    """The ``tokenize_processes`` option (worker processes for tokenizing; 0 = threads), checked by the library's
    own rule; None when not set."""
    from mlx_cross_encoder.tokenizing import checked_processes  # numpy only: no MLX

    try:
        return checked_processes(options.get("tokenize_processes"))
    except ValueError as error:
        raise BackendError(f"option {error}") from None


def load(spec, max_length: int, model_dir: Path) -> MLXBackend:
    return MLXBackend(spec, max_length, model_dir)
