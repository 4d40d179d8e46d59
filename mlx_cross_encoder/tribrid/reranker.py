"""``TriBridMLXReranker``: the seed's Option 1 API over :class:`Qwen3Reranker` / :class:`MLXCrossEncoder`.

``rerank(query, documents, top_n=None)`` returns ``[{"index", "score", "document"}]``, best first (ties keep the
input order). With ``reload_on_change`` the adapter is reloaded when its weights file changes (mtime_ns and size of
``adapter.npz`` or ``adapters.safetensors``), as TriBridRAG's ``MLXQwen3Reranker`` does for ``adapter.npz``.
``Qwen3Reranker`` loads an adapter folder in TriBridRAG's format too (converted by ``adapters.convert_tribrid_adapter``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .settings import RerankerSettings, settings_from_env

WEIGHT_FILES = ("adapter.npz", "adapters.safetensors")


def adapter_fingerprint(adapter_path: str | os.PathLike | None) -> tuple[str, int, int] | None:
    """(file, mtime_ns, size) of the adapter's weights file; None when there is none."""
    if adapter_path is None:
        return None
    for name in WEIGHT_FILES:
        p = Path(adapter_path) / name
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        return (name, int(st.st_mtime_ns), int(st.st_size))
    return None


class TriBridMLXReranker:
    """Rerank documents for a query with an MLX reranker (see the module docstring)."""

    def __init__(
        self,
        reranker_type: str = "qwen3",
        model_name: str = "Qwen/Qwen3-Reranker-0.6B",
        adapter_path: str | os.PathLike | None = None,
        max_length: int = 512,
        batch_size: int = 32,
        instruction: str | None = None,
        top_n: int | None = None,
        reload_on_change: bool = True,
    ):
        self.settings = RerankerSettings(
            reranker_type=reranker_type,
            model_name=str(model_name),
            adapter_path=None if adapter_path is None else str(adapter_path),
            max_length=max_length,
            batch_size=batch_size,
            top_n=top_n,
            instruction=instruction,
            reload_on_change=reload_on_change,
        )
        if instruction is not None and reranker_type == "cross_encoder":
            raise ValueError("instruction applies to reranker_type='qwen3' only (a cross-encoder has no prompt)")
        self.reloads = 0
        self._load()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TriBridMLXReranker:
        """Build from ``RERANKER_MODE=mlx`` and the ``MLX_RERANKER_*`` variables (see ``settings``)."""
        return cls(**settings_from_env(environ).model_dump())

    def _load(self) -> None:
        from .. import llm_reranker
        from ..cross_encoder import MLXCrossEncoder

        s = self.settings
        self._fingerprint = adapter_fingerprint(s.adapter_path)
        adapter = s.adapter_path  # Qwen3Reranker reads TriBridRAG's adapter.npz folders too (llm_loading)
        if s.reranker_type == "qwen3":
            self.model = llm_reranker.Qwen3Reranker(
                s.model_name, max_length=s.max_length, instruction=s.instruction, adapter_path=adapter
            )
        elif s.reranker_type == "cross_encoder":
            self.model = MLXCrossEncoder(s.model_name, max_length=s.max_length, adapter_path=adapter)
        else:
            options = {"max_length": s.max_length, "adapter_path": adapter}
            if s.instruction is not None:
                options["instruction"] = s.instruction
            self.model = llm_reranker.load_reranker(s.model_name, **options)

    def maybe_reload(self) -> bool:
        """Reload when the adapter's weights file changed since the last load; True if it reloaded."""
        if not self.settings.reload_on_change or self.settings.adapter_path is None:
            return False
        if adapter_fingerprint(self.settings.adapter_path) == self._fingerprint:
            return False
        self._load()
        self.reloads += 1
        return True

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        """One score per document, in input order."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        if isinstance(documents, str) or not all(isinstance(d, str) for d in documents):
            raise TypeError("documents must be a list of strings")
        if not documents:
            return []
        self.maybe_reload()
        out = self.model.predict([(query, d) for d in documents], batch_size=self.settings.batch_size)
        return [float(x) for x in out.reshape(-1)]

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> list[dict]:
        """``[{"index", "score", "document"}]`` sorted by score (highest first), the first ``top_n``."""
        top_n = self.settings.top_n if top_n is None else top_n
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise ValueError(f"top_n must be a positive integer or None, got {top_n!r}")
        scores = self.scores(query, documents)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        if top_n is not None:
            order = order[:top_n]
        return [{"index": i, "score": scores[i], "document": documents[i]} for i in order]
