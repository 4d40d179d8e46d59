"""What every reranker here shares: input validation and ``rank``, in sentence-transformers' shapes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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


#: ``encode_in_threads`` splits a call over threads only from this many inputs on. One query's 100 passages are
#: already worth splitting on a many-core host (~25 ms single-threaded on the H200's host for MiniLM's tokenizer).
PARALLEL_TOKENIZE_MIN = 64
#: fewest inputs per chunk handed to a thread (a chunk's fixed cost is a pool hand-off, ~tens of microseconds)
TOKENIZE_CHUNK_MIN = 16
_POOL: dict[int, ThreadPoolExecutor] = {}


def tokenize_threads() -> int:
    """Threads for :func:`encode_in_threads`: ``MLX_CROSS_ENCODER_TOKENIZE_THREADS``, else the cores, at most 16."""
    value = os.environ.get("MLX_CROSS_ENCODER_TOKENIZE_THREADS")
    return max(1, int(value)) if value else max(1, min(16, os.cpu_count() or 1))


def encode_in_threads(tokenizer, inputs: Sequence, threads: int | None = None, **kwargs) -> list:
    """``tokenizer.encode_batch(inputs, **kwargs)``, split into contiguous chunks tokenized on a thread pool.

    Why: the harness (and most servers) set ``TOKENIZERS_PARALLELISM=false``, which makes ``encode_batch`` run on
    one core; tokenizing DL19's 4,300 pairs then takes longer than MiniLM's forwards on a GPU (docs/benchmarks.md,
    H200 section). ``encode_batch`` releases the GIL, so Python threads run the Rust tokenizer in parallel without
    touching that setting. Same encodings, same order. Small inputs (< ``PARALLEL_TOKENIZE_MIN``) take one call.
    """
    n = threads if threads is not None else tokenize_threads()
    if n <= 1 or len(inputs) < PARALLEL_TOKENIZE_MIN:
        return tokenizer.encode_batch(inputs, **kwargs)
    pool = _POOL.get(n) or _POOL.setdefault(n, ThreadPoolExecutor(n, thread_name_prefix="tokenize"))
    k = max(1, min(4 * n, len(inputs) // TOKENIZE_CHUNK_MIN))  # several chunks per thread: documents differ
    bounds = [len(inputs) * i // k for i in range(k + 1)]
    parts = pool.map(lambda i: tokenizer.encode_batch(inputs[bounds[i] : bounds[i + 1]], **kwargs), range(k))
    return [enc for part in parts for enc in part]


def padded_width(length: int, multiple: int = 1, max_width: int | None = None) -> int:
    """The width a row of ``length`` tokens is padded to: rounded up to ``multiple``, never past ``max_width``
    (nor cut below ``length``)."""
    width = -(-length // multiple) * multiple
    return min(width, max(length, max_width)) if max_width is not None else width


def length_sorted_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_batch_tokens: int | None = None,
    *,
    multiple: int = 1,
    max_width: int | None = None,
    sort: bool = True,
) -> list[list[int]]:
    """THE batch planner of every reranker here (and of the torch baselines that must see the same batches).

    Indices grouped into batches of similar length, longest first (``sort=False``: in input order), so padding
    stays small. A batch holds at most ``batch_size`` rows and, with ``max_batch_tokens``, at most that many padded
    tokens: rows x the batch's widest row (:func:`padded_width`). A row whose own padded width exceeds the budget
    runs alone in its batch (it cannot be split). Greedy: a batch is closed when the next row would break a limit.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_batch_tokens is not None and max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be >= 1 or None, got {max_batch_tokens}")
    order = np.argsort(-np.asarray(lengths), kind="stable") if sort else np.arange(len(lengths))
    budget = max_batch_tokens if max_batch_tokens is not None else float("inf")
    batches: list[list[int]] = []
    batch: list[int] = []
    width = 0
    for i in order.tolist():
        w = max(width, padded_width(int(lengths[i]), multiple, max_width))
        if batch and (len(batch) == batch_size or (len(batch) + 1) * w > budget):
            batches.append(batch)
            batch, w = [], padded_width(int(lengths[i]), multiple, max_width)
        batch.append(i)
        width = w
    if batch:
        batches.append(batch)
    return batches


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
