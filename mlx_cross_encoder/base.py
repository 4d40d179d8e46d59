"""What every reranker here shares: input validation and ``rank`` (sentence-transformers' shapes), THE batch
planner, and the chunking/prepare-ahead helpers of GPU scoring (threaded tokenizing: tokenizing.py)."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
    for pair in pairs:  # the common case, cheaply (no stripped copies): ~2-3x faster on DL19's pairs
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            query, document = pair
            if (
                isinstance(query, str)
                and isinstance(document, str)
                and query
                and document
                and not query.isspace()  # ``not text.strip()`` without the copy
                and not document.isspace()
            ):
                checked.append((query, document))
                continue
        break
    else:
        return checked, False
    checked = []  # something is wrong: find the first offender and name it
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


def env_int(name: str, minimum: int = 0) -> int | None:
    """The environment variable ``name`` as an integer >= ``minimum``; None when unset or blank. Anything else
    raises ValueError naming the variable and its value."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise ValueError(f"environment variable {name} must be an integer >= {minimum}, got {value!r}")
    return number


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


# -- chunked, pipelined scoring (GPU) ------------------------------------------------------------------------------
#: a one-batch call is streamed in pieces of this many pairs: the first piece's forward starts after tokenizing
#: 256 pairs instead of the whole call, and the next piece is tokenized while the GPU runs it
STREAM_ROWS = 256
#: a streamed call of more than ``STREAM_ROWS`` pairs starts with a smaller piece of this many (:func:`stream_bounds`),
#: so that the GPU starts once that few are tokenized. Session 7's H200 DIAG timeline (256-pair first pieces, all of a
#: call's tokenizer tasks queued at its start): each harness offline call waited 18.7 ms for its first piece, 45% of
#: a pass; with TOKENIZE_AHEAD a 64-pair first piece is its first 4 tasks in the pool's queue. (Session 6's 32-pair
#: first piece measured 21% slower, together with 4-pair tokenizer tasks and without TOKENIZE_AHEAD.)
STREAM_FIRST_ROWS = 64
#: default chunk size on a GPU: ``CHUNK_TOKEN_WORK // hidden_size**2`` padded tokens (:func:`default_chunk_tokens`):
#: BERT-/XLM-R-large (1024 wide) 6,144 tokens, ModernBERT-base (768) 10,922, MiniLM (384) 43,690. Why hidden
#: squared: a chunk costs the host the same kernel launches whatever its size (~70 for MiniLM-L6, ~31 us each on the
#: H200's host: ~2.4 ms, session 7 timeline), while its GPU time grows with tokens x hidden^2 per layer; so this
#: rule gives every encoder about the same GPU time per launch, where session 5's tokens x hidden rule (16,384 x
#: 384) left MiniLM's chunks host-bound (GPU busy 35%). Session 8 DIAG (H200, same process, MiniLM bf16 offline):
#: 16,384 tokens 16,534 pairs/s, 32,768 18,702, 43,690 18,056, 65,536 18,787 (every size >= 32,768 alike, +10-13%);
#: peaks at 43,690: bf16 1,337 MB (torch 2,367), fp32 1,471 (torch 4,618); ModernBERT-base at 10,922 vs 8,192:
#: fp32 peak 1,393 MB both, bf16 755 vs 743. Main window (same process): 43,690 17,529 / 18,370 vs 16,384 15,168;
#: harness peaks MiniLM bf16 1,056 / fp32 1,471 MB, ModernBERT bf16 745 / fp32 1,377 (torch 1,061 / 1,691). The
#: large encoders keep the 6,144 tokens whose peaks sessions 5-7 measured (report/h200.md: BERT-large 0.73-0.89x
#: torch, XLM-R-large 0.79-0.93x). Every chunk is also bounded relative to its whole batch (:func:`memory_chunk_rows`,
#: session 6): that bound is what binds in single_query calls and in the encoder suites' 32,768-token batches. See
#: ``MLXCrossEncoder`` ``chunk_tokens``.
CHUNK_TOKEN_WORK = 6144 * 1024 * 1024


def default_chunk_tokens(hidden_size: int) -> int:
    """The GPU chunk size (padded tokens) for an encoder ``hidden_size`` wide: ``CHUNK_TOKEN_WORK // hidden**2``."""
    return max(1, CHUNK_TOKEN_WORK // (hidden_size * hidden_size))


CHUNK_TOKENS_ENV_VAR = "MLX_CROSS_ENCODER_CHUNK_TOKENS"

#: The memory bound of a chunk (:func:`memory_chunk_rows`), a model of MLX's peak on a GPU from the session-5 H200
#: profile (gpu_memprof.py, whole batch of 1,024 x 288 tokens, MLX_MAX_OPS_PER_BUFFER=2): MLX holds ~30 activations
#: of the hidden width per token at once (MiniLM bf16 6,697 MB = 29.6 x 1,024 x 288 x 384 x 2 bytes; float32 the same
#: 29.6 beside the attention scores; BERT-large bf16 29.6), because its CUDA backend keeps the inputs of ~20 queued
#: operations alive, where sentence-transformers holds ~10 (2,323 MB bf16, 4,531 MB fp32; BERT-large 10.4).
LIVE_WIDTHS = 30
#: float32 attention on CUDA is not fused in MLX 0.32: its B x H x L x L float32 scores are materialized; ~1.33 such
#: tensors alive at once in the profile (fp32 whole model minus 2 x bf16's, over the scores' size)
LIVE_SCORE_TENSORS = 1.5
#: a chunk may hold at most this many hidden-width activations per padded token of its whole batch, so that MLX's
#: peak for a batch stays below an eager framework's for that batch (sentence-transformers: ~10) whatever its size;
#: 8, not 10: the model above is an estimate (it fell ~6% short of MiniLM fp32's measured single_query peak, 1,121 MB)
BATCH_WIDTHS: float | None = 8
#: batches of fewer padded tokens are not split for memory (a chunk's fixed cost would dominate; torch's own fixed
#: buffers are larger than such a batch's activations)
MIN_SPLIT_TOKENS = 2048


def memory_chunk_rows(
    width: int, batch_rows: int, *, hidden: int, heads: int, dtype_bytes: int, fused_attention: bool
) -> int:
    """Rows per chunk of a batch of ``batch_rows`` rows (padded to ``width`` tokens) that keep a chunk's live
    activations (``LIVE_WIDTHS`` hidden widths per token, plus ``LIVE_SCORE_TENSORS`` float32 score tensors when
    attention is not fused) within ``BATCH_WIDTHS`` hidden widths per token of the whole batch; at least
    ``MIN_SPLIT_TOKENS // width`` rows (and one). ``BATCH_WIDTHS`` None: no bound (``batch_rows``)."""
    if BATCH_WIDTHS is None:
        return max(1, batch_rows)
    per_row = width * hidden * dtype_bytes * LIVE_WIDTHS
    if not fused_attention:
        per_row += LIVE_SCORE_TENSORS * heads * width * width * 4
    allowed = batch_rows * width * hidden * dtype_bytes * BATCH_WIDTHS
    return max(1, MIN_SPLIT_TOKENS // width, int(allowed // per_row))


def stream_bounds(n: int, first: int, most: int) -> list[int]:
    """Boundaries ``[0, ..., n]`` of the pieces of a streamed call of ``n`` pairs: a call of more than ``most`` pairs
    starts with a piece of ``first`` pairs (the GPU starts after tokenizing that few), then the rest in the fewest
    even pieces of at most ``most``; a call of at most ``most`` pairs is one piece."""
    if first < 1 or most < 1:
        raise ValueError(f"piece sizes must be >= 1, got first={first}, most={most}")
    head = [first] if n > most and first < most else []
    left = n - sum(head)
    pieces = -(-left // most)
    rest = [left // pieces + (1 if i < left % pieces else 0) for i in range(pieces)] if left else []
    return np.cumsum([0] + head + rest).tolist()


def even_chunks(width: int, rows: int, chunk_tokens: int) -> list[int]:
    """Row counts of the fewest contiguous chunks of a ``rows`` x ``width`` batch with at most ``chunk_tokens``
    padded tokens each (a row wider than that alone), as even as possible (few distinct shapes per width: a GPU
    builds kernels/graphs per shape)."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    n = -(-rows // max(1, chunk_tokens // width))  # rows per chunk at most chunk_tokens // width (>= 1)
    return [rows // n + (1 if i < rows % n else 0) for i in range(n)]


#: pieces prepared at once ahead of the consumer, each on its own host thread (a piece is tokenized as tasks on the
#: shared tokenizer pool and waits for its slowest task; more than one keeps the pool busy at that barrier). Session
#: 6 H200 A/B (MiniLM bf16, harness offline calls, other knobs at the 32-pair first piece): 2 gave 12,221 pairs/s,
#: 1 gave 12,764 -- no gain, so 1 (session 5's pipeline) stays the default.
PREPARE_AHEAD = 1
_PREPARE: dict[int, ThreadPoolExecutor] = {}


@contextmanager
def prepared_ahead(pieces: Sequence, threaded: bool, ahead: int | None = None):
    """Iterate ``piece()`` for each of ``pieces``; ``threaded``: on host threads, ``ahead`` pieces (default
    ``PREPARE_AHEAD``) under way at once, so that the next pieces are prepared (tokenized, padded: numpy and the Rust
    tokenizer only) while the caller builds and evaluates this one (MLX's ``eval``/``async_eval`` release the GIL
    while they wait for the GPU). Pieces are yielded in order. Exceptions of a piece are raised where it is consumed;
    on exit unconsumed pieces are cancelled or waited for."""
    depth = max(1, ahead if ahead is not None else PREPARE_AHEAD)
    if not threaded or len(pieces) < 2:
        yield (piece() for piece in pieces)
        return
    pool = _PREPARE.get(depth) or _PREPARE.setdefault(depth, ThreadPoolExecutor(depth, thread_name_prefix="prepare"))
    queued: deque = deque()

    def run():
        submitted = 0
        for i in range(len(pieces)):
            while submitted < len(pieces) and submitted <= i + depth:  # this piece and ``depth`` more under way
                queued.append(pool.submit(pieces[submitted]))
                submitted += 1
            yield queued.popleft().result()

    try:
        yield run()
    finally:
        for future in queued:
            future.cancel() or future.exception()


def read_back_behind(groups: Iterable[list[tuple[Any, Any]]], out: np.ndarray) -> None:
    """Double buffering of the rerankers' scoring loops: each group of ``(rows, mlx array)`` is handed to MLX
    (``mx.async_eval``) and only then are the previous group's results copied into ``out[rows]``, so the device
    computes a group while the host builds the next one (the generator's body). The last group is read at the end."""
    import mlx.core as mx  # here, not at the top: the rest of this module is host work that needs no MLX

    pending: list[tuple[Any, Any]] = []
    for submitted in groups:
        mx.async_eval([x for _, x in submitted])
        for rows, x in pending:
            out[rows] = np.asarray(x)
        pending = submitted
    for rows, x in pending:
        out[rows] = np.asarray(x)
