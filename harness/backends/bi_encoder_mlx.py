"""The ``mlx`` backend for bi-encoder folders: ``mlx_cross_encoder.MLXBiEncoderReranker`` (cosine of embeddings).

Chosen by the registry (``BACKENDS["mlx"].kinds["bi_encoder"]``) when the folder is an embedding model
(``harness.backends.bi_encoder.is_bi_encoder``). Same truncation (``max_length`` per text) and dtype as the torch
side; pooling and normalization run in float32. ``device``: "auto", "gpu" or "cpu".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import Backend, BackendError, as_scores
from .bi_encoder import pair_token_counts

OPTIONS: frozenset[str] = frozenset()  # no options: truncation and dtype are the suite fields


class MLXBiEncoderBackend(Backend):
    name = "mlx"
    kind = "bi_encoder"
    memory_measure = (
        "mx.get_peak_memory(): peak bytes of MLX arrays alive at once since the reset before the timed passes "
        "(weights included, MLX's buffer cache excluded)"
    )
    version_packages = ("mlx", "mlx-metal", "mlx-cpu", "mlx-cuda-12", "mlx-cuda-13", "mlx-lm", "tokenizers")

    def __init__(self, spec, max_length: int, model_dir: Path):
        super().__init__(spec, max_length, model_dir)
        self.check_options(set(OPTIONS))
        if self.instruction:
            raise BackendError("instruction is not used by bi-encoder rerankers; remove it from the suite")
        import mlx_cross_encoder  # noqa: F401  first: its import hook loads the optimized BLAS before mlx.core

        # isort: split
        import mlx.core as mx

        self._mx = mx
        device = (getattr(spec, "device", None) or "auto").lower()
        if device in ("cpu", "gpu"):
            mx.set_default_device(mx.cpu if device == "cpu" else mx.gpu)
        elif device != "auto":
            raise BackendError(f"device {device!r} is not an MLX device; use auto, gpu or cpu")
        self.device = "mlx-gpu" if mx.default_device().type == mx.gpu else "mlx-cpu"
        self.model = mlx_cross_encoder.MLXBiEncoderReranker(self.model_dir, max_length=max_length, dtype=self.dtype)
        if self.model.embedder.max_length != max_length:
            raise BackendError(f"MLX truncates at {self.model.embedder.max_length} tokens, not {max_length}")
        from mlx_cross_encoder import _blas

        self.blas = _blas.loaded_library

    def predict(self, pairs, batch_size: int) -> np.ndarray:
        return as_scores(self.model.predict(pairs, batch_size=batch_size), len(pairs))

    def token_counts(self, pairs) -> np.ndarray:
        tokenizer = self.model.embedder.tokenizer
        return np.asarray(
            pair_token_counts(pairs, lambda texts: [len(e.ids) for e in tokenizer.encode_batch(texts)]), dtype=np.int64
        )

    def reset_peak_memory(self) -> None:
        self._mx.reset_peak_memory()

    def peak_memory_mb(self) -> float | None:
        return self._mx.get_peak_memory() / 2**20

    def describe(self) -> dict[str, Any]:
        from mlx_cross_encoder import _blas

        emb = self.model.embedder
        return {
            **super().describe(),
            "kind": self.kind,
            "pooling": emb.pooling,
            "normalize": emb.normalize,
            "blas": self.blas,
            "float32_matmul": _blas.float32_matmul_precision(),
        }


def load(spec, max_length: int, model_dir: Path) -> MLXBiEncoderBackend:
    return MLXBiEncoderBackend(spec, max_length, model_dir)
