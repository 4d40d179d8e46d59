"""The ``mlx`` backend for bi-encoder folders: ``mlx_cross_encoder.MLXBiEncoderReranker`` (cosine of embeddings).

Chosen by the registry (``BACKENDS["mlx"].kinds["bi_encoder"]``) when the folder is an embedding model
(``harness.backends.bi_encoder.is_bi_encoder``). Same truncation (``max_length`` per text) and dtype as the torch
side; pooling and normalization run in float32. ``device``: "auto", "gpu" or "cpu".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import BackendError, as_scores
from .bi_encoder import pair_token_counts
from .mlx_backend import MLXRuntime

OPTIONS: frozenset[str] = frozenset()  # no options: truncation and dtype are the suite fields


class MLXBiEncoderBackend(MLXRuntime):
    name = "mlx"
    kind = "bi_encoder"

    def __init__(self, spec, max_length: int, model_dir: Path):
        super().__init__(spec, max_length, model_dir)
        self.check_options(set(OPTIONS))
        if self.instruction:
            raise BackendError("instruction is not used by bi-encoder rerankers; remove it from the suite")
        self.start_mlx(spec)
        import mlx_cross_encoder

        self.model = mlx_cross_encoder.MLXBiEncoderReranker(self.model_dir, max_length=max_length, dtype=self.dtype)
        if self.model.embedder.max_length != max_length:
            raise BackendError(f"MLX truncates at {self.model.embedder.max_length} tokens, not {max_length}")

    def predict(self, pairs, batch_size: int) -> np.ndarray:
        return as_scores(self.model.predict(pairs, batch_size=batch_size), len(pairs))

    def token_counts(self, pairs) -> np.ndarray:
        tokenizer = self.model.embedder.tokenizer
        return np.asarray(
            pair_token_counts(pairs, lambda texts: [len(e.ids) for e in tokenizer.encode_batch(texts)]), dtype=np.int64
        )

    def describe(self) -> dict[str, Any]:
        emb = self.model.embedder
        return {**super().describe(), "kind": self.kind, "pooling": emb.pooling, "normalize": emb.normalize}


def load(spec, max_length: int, model_dir: Path) -> MLXBiEncoderBackend:
    return MLXBiEncoderBackend(spec, max_length, model_dir)
