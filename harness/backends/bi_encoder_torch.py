"""The ``torch`` backend for bi-encoder folders: ``sentence_transformers.SentenceTransformer`` on the same folder,
cosine similarity of its normalized embeddings.

Chosen by the registry (``BACKENDS["torch"].kinds["bi_encoder"]``) when the folder is an embedding model. The
runner's ``max_length`` is set as ``max_seq_length`` (each text truncated on its own, as on the MLX side); dtype:
the weights are loaded in it (``model_kwargs torch_dtype``), scores are float32. ``device`` as the torch backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import Backend, BackendError, as_scores
from .bi_encoder import cosine_scores, pair_token_counts
from .torch_backend import TOKEN_COUNT_CHUNK, TorchBackend, resolve_device, torch_dtype

OPTIONS: frozenset[str] = frozenset()  # no options: truncation and dtype are the suite fields


class TorchBiEncoderBackend(TorchBackend):
    kind = "bi_encoder"

    def __init__(self, spec, max_length: int, model_dir: Path):
        Backend.__init__(self, spec, max_length, model_dir)  # not TorchBackend's: it loads a CrossEncoder
        self.check_options(set(OPTIONS))
        if self.instruction:
            raise BackendError("instruction is not used by bi-encoder rerankers; remove it from the suite")
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        self.device = resolve_device(getattr(spec, "device", None))
        self._mps_peak = 0
        self.model = SentenceTransformer(
            str(self.model_dir),
            device=self.device,
            local_files_only=True,
            model_kwargs={"torch_dtype": torch_dtype(torch, self.dtype)},
        )
        self.model.max_seq_length = max_length
        if self.model.max_seq_length != max_length:
            raise BackendError(
                f"sentence-transformers truncates at {self.model.max_seq_length} tokens, not the requested {max_length}"
            )

    @property
    def is_llm(self) -> bool:
        return False

    def _predict(self, pairs, batch_size: int) -> np.ndarray:
        texts = list(dict.fromkeys(t for pair in pairs for t in pair))
        emb = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        if self.device == "mps":
            self._mps_peak = max(self._mps_peak, self._torch.mps.driver_allocated_memory())
        return as_scores(cosine_scores(emb.astype(np.float32), pairs, texts), len(pairs))

    def _count(self, texts: list[str]) -> list[int]:
        counts: list[int] = []
        for i in range(0, len(texts), TOKEN_COUNT_CHUNK):
            features = self.model.preprocess(texts[i : i + TOKEN_COUNT_CHUNK])
            counts += features["attention_mask"].sum(dim=1).tolist()
        return counts

    def token_counts(self, pairs) -> np.ndarray:
        return np.asarray(pair_token_counts(pairs, self._count), dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        pooling = next((m for m in self.model if type(m).__name__ == "Pooling"), None)
        return {
            **super().describe(),
            "kind": self.kind,
            "pooling": getattr(pooling, "pooling_mode", None) if pooling is not None else None,
            "normalize": any(type(m).__name__ == "Normalize" for m in self.model),
        }


def load(spec, max_length: int, model_dir: Path) -> TorchBiEncoderBackend:
    return TorchBiEncoderBackend(spec, max_length, model_dir)
