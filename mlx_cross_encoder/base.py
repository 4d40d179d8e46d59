"""What every reranker here shares: input validation and ``rank``, in sentence-transformers' shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def validate_pairs(pairs: Any) -> tuple[list[tuple[str, str]], bool]:
    """Return ``(pairs, single)``: a list of (query, document) string pairs and whether one pair was given.

    Raises TypeError for non-string members and ValueError for empty input or empty strings.
    """
    if isinstance(pairs, (list, tuple)) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
        return [(pairs[0], pairs[1])], True
    if isinstance(pairs, str) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be a (query, document) pair or a list of such pairs, got {type(pairs).__name__}")
    if len(pairs) == 0:
        raise ValueError("pairs is empty: nothing to score")
    checked = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"pairs[{i}] must be a (query, document) pair, got {pair!r:.80}")
        for j, text in enumerate(pair):
            if not isinstance(text, str):
                raise TypeError(f"pairs[{i}][{j}] must be a string, got {type(text).__name__}")
            if not text.strip():
                raise ValueError(f"pairs[{i}][{j}] is an empty string ({'query' if j == 0 else 'document'})")
        checked.append((pair[0], pair[1]))
    return checked, False


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding stays small."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


class RerankerBase:
    """Subclasses implement ``predict(pairs, batch_size=..., ...) -> np.ndarray``."""

    def predict(self, pairs, batch_size: int = 32, **kwargs) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        **predict_kwargs,
    ) -> list[dict[str, Any]]:
        """Score ``documents`` against ``query``; ``[{"corpus_id", "score"[, "text"]}]`` sorted by score, descending."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        if isinstance(documents, str) or not isinstance(documents, Sequence):
            raise TypeError(f"documents must be a list of strings, got {type(documents).__name__}")
        if len(documents) == 0:
            raise ValueError("documents is empty: nothing to rank")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        scores = np.atleast_1d(
            self.predict([(query, doc) for doc in documents], batch_size=batch_size, **predict_kwargs)
        )
        order = np.argsort(-scores, kind="stable")[: top_k or len(documents)]
        results = []
        for i in order:
            row: dict[str, Any] = {"corpus_id": int(i), "score": float(scores[i])}
            if return_documents:
                row["text"] = documents[i]
            results.append(row)
        return results
