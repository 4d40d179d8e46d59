"""``TriBridMLXReranker``: the seed's Option 1 API over :class:`Qwen3Reranker` / :class:`MLXCrossEncoder`.

``rerank(query, documents, top_n=None)`` returns ``[{"index", "score", "document"}]``, best first (ties keep the
input order). With ``reload_on_change`` the adapter is hot-reloaded when its weights file changes, as TriBridRAG's
``MLXQwen3Reranker`` does (``reload.AdapterWatch``: a half-written adapter never replaces the loaded one).
``Qwen3Reranker`` loads an adapter folder in TriBridRAG's format too (converted by
``adapters.convert_tribrid_adapter``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .reload import AdapterWatch, adapter_fingerprint
from .settings import RerankerSettings, settings_from_env

__all__ = ["TriBridMLXReranker", "adapter_fingerprint"]


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
        reload_period_s: float = 0.0,
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
            reload_period_s=reload_period_s,
        )
        if instruction is not None and reranker_type == "cross_encoder":
            raise ValueError("instruction applies to reranker_type='qwen3' only (a cross-encoder has no prompt)")
        self.reloads = 0
        path = self.settings.adapter_path
        self.watch = None if path is None else AdapterWatch(path, self.settings.reload_period_s)
        fingerprint = adapter_fingerprint(path)  # taken before reading: a change while loading shows
        self.model = self._build()
        if self.watch is not None:
            self.watch.accept(fingerprint)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TriBridMLXReranker:
        """Build from ``RERANKER_MODE=mlx`` and the ``MLX_RERANKER_*`` variables (see ``settings``)."""
        return cls(**settings_from_env(environ).model_dump())

    def _build(self):
        from .. import llm_reranker
        from ..cross_encoder import MLXCrossEncoder

        s = self.settings
        adapter = s.adapter_path  # Qwen3Reranker reads TriBridRAG's adapter.npz folders too (llm_loading)
        if s.reranker_type == "qwen3":
            return llm_reranker.Qwen3Reranker(
                s.model_name, max_length=s.max_length, instruction=s.instruction, adapter_path=adapter
            )
        if s.reranker_type == "cross_encoder":
            return MLXCrossEncoder(s.model_name, max_length=s.max_length, adapter_path=adapter)
        options = {"max_length": s.max_length, "adapter_path": adapter}
        if s.instruction is not None:
            options["instruction"] = s.instruction
        return llm_reranker.load_reranker(s.model_name, **options)

    def maybe_reload(self, *, force: bool = False) -> bool:
        """Swap in the adapter on disk when its weights file changed since the last load and it loads whole;
        True if it did. ``force`` skips ``reload_period_s`` (TriBridRAG clears its cache on promotion)."""
        if not self.settings.reload_on_change or self.watch is None:
            return False
        model = self.watch.poll(self._build, force=force)
        if model is None:
            return False
        self.model = model
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
