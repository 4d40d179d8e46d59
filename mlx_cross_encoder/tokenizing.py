"""Threaded tokenizing into flat token arrays: what the rerankers score from. ``encode_in_threads`` splits a call
over a thread pool (the Rust tokenizer releases the GIL), :class:`TokenArrays` holds a call's ids end to end, and
:func:`encode_pieces` queues a streamed call's tokenizer tasks ahead of the GPU (base.py's chunked scoring)."""

from __future__ import annotations

import functools
import itertools
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .base import env_int

#: ``encode_in_threads`` splits a call over threads only from this many inputs on. One query's 100 passages are
#: already worth splitting on a many-core host (~25 ms single-threaded on the H200's host for MiniLM's tokenizer).
PARALLEL_TOKENIZE_MIN = 64
#: fewest inputs per chunk handed to a thread (a chunk's fixed cost is a pool hand-off, ~tens of microseconds). Session
#: 6 tried 4 (with PARALLEL_TOKENIZE_MIN 8 and a 32-pair first piece): the H200 A/B (same process, harness offline
#: calls, MiniLM bf16) measured 12,221 pairs/s against 15,456 with 16 / 64 / 256, so these stay.
TOKENIZE_CHUNK_MIN = 16
_POOL: dict[int, ThreadPoolExecutor] = {}


#: on a host of more than 8 cores, this many are left to the threads beside the tokenizer pool (the scoring loop's
#: main thread, the prepare thread, MLX's own): session 7's H200 DIAG (16 cores, MiniLM bf16 offline, same process)
#: measured 12 tokenizer threads at 21,751 pairs/s against 19,035 with 16 (GIL hand-offs between more threads than
#: free cores)
TOKENIZE_SPARE_CORES = 4


def tokenize_threads() -> int:
    """Threads for :func:`encode_in_threads`: ``MLX_CROSS_ENCODER_TOKENIZE_THREADS``, else the cores (at most 8
    of them) or, on more than 8 cores, the cores less ``TOKENIZE_SPARE_CORES``; at most 16."""
    value = env_int("MLX_CROSS_ENCODER_TOKENIZE_THREADS")
    if value is not None:
        return max(1, value)
    cores = os.cpu_count() or 1
    return max(1, min(16, cores if cores <= 8 else max(8, cores - TOKENIZE_SPARE_CORES)))


def _thread_chunks(n_inputs: int, threads: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` chunks of ``n_inputs`` for ``threads`` threads: several per thread (documents
    differ in length), none smaller than ``TOKENIZE_CHUNK_MIN`` inputs."""
    k = max(1, min(4 * threads, n_inputs // TOKENIZE_CHUNK_MIN))
    bounds = [n_inputs * i // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _map_chunks(inputs: Sequence, fn, threads: int | None) -> list:
    """``[fn(inputs[start:stop]) for each chunk]`` in order, chunks run on a thread pool (one call below
    ``PARALLEL_TOKENIZE_MIN`` inputs or with one thread)."""
    n = threads if threads is not None else tokenize_threads()
    if n <= 1 or len(inputs) < PARALLEL_TOKENIZE_MIN:
        return [fn(inputs)]
    return list(_tokenize_pool(n).map(lambda bounds: fn(inputs[bounds[0] : bounds[1]]), _thread_chunks(len(inputs), n)))


def _tokenize_pool(threads: int) -> ThreadPoolExecutor:
    return _POOL.get(threads) or _POOL.setdefault(threads, ThreadPoolExecutor(threads, thread_name_prefix="tokenize"))


def encode_in_threads(tokenizer, inputs: Sequence, threads: int | None = None, **kwargs) -> list:
    """``tokenizer.encode_batch(inputs, **kwargs)``, split into contiguous chunks tokenized on a thread pool.

    Why: the harness (and most servers) set ``TOKENIZERS_PARALLELISM=false``, which makes ``encode_batch`` run on
    one core; tokenizing DL19's 4,300 pairs then takes longer than MiniLM's forwards on a GPU (docs/benchmarks.md,
    H200 section). ``encode_batch`` releases the GIL, so Python threads run the Rust tokenizer in parallel without
    touching that setting. Same encodings, same order. Small inputs (< ``PARALLEL_TOKENIZE_MIN``) take one call.
    """
    parts = _map_chunks(inputs, lambda chunk: tokenizer.encode_batch(chunk, **kwargs), threads)
    return [enc for part in parts for enc in part]


@dataclass(frozen=True)
class TypeIdRule:
    """How a call gets its token type ids (a call that wants none passes None instead of a rule). ``sep`` None: each
    encoding's own ``type_ids``. ``sep`` an id: the [SEP] id of BERT's pair template (:func:`bert_pair_sep_id`): type
    ids derived from the ids (1 after a row's first [SEP]) for every row holding exactly the template's two [SEP],
    read from the encoding for any other row (a literal [SEP] in a text): the same type ids, without the
    Python-level ``e.type_ids`` lists (:data:`DERIVE_TYPE_IDS` switches that off)."""

    sep: int | None = None

    @property
    def derives(self) -> bool:
        """Whether this rule derives type ids from the ids now (a [SEP] id and :data:`DERIVE_TYPE_IDS`)."""
        return self.sep is not None and DERIVE_TYPE_IDS


@dataclass(frozen=True)
class TokenArrays:
    """The token ids of many inputs as flat numpy arrays, rows end to end: what batches are padded from.

    ``ids`` (int32) and ``type_ids`` (int32, or None when not asked for) hold every row's tokens one row after the
    other; ``lengths`` (int64) the tokens per row. Built once per call, so that forming a padded batch is one
    vectorised gather (:meth:`padded`) instead of a Python loop over ``Encoding`` objects.
    """

    ids: np.ndarray
    lengths: np.ndarray
    type_ids: np.ndarray | None = None

    @classmethod
    def of(cls, encodings, type_rule: TypeIdRule | None = None) -> TokenArrays:
        """From ``tokenizers.Encoding`` objects: their ``ids``, and token type ids as ``type_rule`` says (None: no
        type ids)."""
        rows = [e.ids for e in encodings]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        total = int(lengths.sum())
        ids = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=total)
        types = None
        if type_rule is not None and type_rule.derives:
            types = _pair_type_ids(ids, lengths, type_rule.sep, encodings)
        elif type_rule is not None:
            flat = itertools.chain.from_iterable(e.type_ids for e in encodings)
            types = np.fromiter(flat, dtype=np.int32, count=total)
        return cls(ids, lengths, types)

    @classmethod
    def concat(cls, parts: Sequence[TokenArrays]) -> TokenArrays:
        if len(parts) == 1:
            return parts[0]
        types = None if parts[0].type_ids is None else np.concatenate([p.type_ids for p in parts])
        return cls(np.concatenate([p.ids for p in parts]), np.concatenate([p.lengths for p in parts]), types)

    def __len__(self) -> int:
        return len(self.lengths)

    def padded(self, rows, width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Right-padded ``(ids, mask, type ids or None)`` of ``rows`` (indices), ``width`` columns (>= the longest
        of them): ids ``pad_id`` and mask/type 0 on padded positions; the three are views of one ``(3, rows,
        width)`` buffer (``(2, ...)`` without type ids). One boolean-mask scatter of the rows' tokens
        (row-major order = their order end to end); contiguous rows (a streamed piece) read one slice (session 8,
        this CPU, 256 DL19 pairs: 0.08 ms against 0.32 ms for a gather over every padded position)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        if len(rows) and int(lengths.max()) > width:
            raise ValueError(f"width {width} is narrower than the longest row ({int(lengths.max())} tokens)")
        starts = (np.cumsum(self.lengths) - self.lengths)[rows]
        filled = np.arange(width, dtype=np.int64)[None, :] < lengths[:, None]
        total = int(lengths.sum())
        if len(rows) and bool((np.diff(rows) == 1).all()):
            source = slice(int(starts[0]), int(starts[0]) + total)
        else:  # each row's start, then consecutive positions
            source = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
        block = np.empty((2 if self.type_ids is None else 3, len(rows), width), dtype=np.int32)
        ids, mask = block[0], block[1]  # one buffer: a device copy can take all three at once
        ids.fill(pad_id)
        ids[filled] = self.ids[source]
        mask[...] = filled
        types = None
        if self.type_ids is not None:
            types = block[2]
            types.fill(0)
            types[filled] = self.type_ids[source]
        return ids, mask, types


#: :meth:`TokenArrays.of` derives BERT pair type ids from the ids when given the [SEP] id (read at every call;
#: session 8, this CPU, DL19's 4,300 pairs: 35.5 ms of GIL-holding conversion with ``e.type_ids`` against 23.7 ms)
DERIVE_TYPE_IDS = True


def _pair_type_ids(ids: np.ndarray, lengths: np.ndarray, sep: int, encodings) -> np.ndarray:
    """Type ids of BERT's pair template from flat ``ids``: 0 up to and including a row's first ``sep``, 1 after;
    rows without exactly two ``sep`` take their encoding's own type ids."""
    is_sep = ids == sep
    ends = np.cumsum(lengths)
    counted = np.concatenate([[0], np.cumsum(is_sep, dtype=np.int64)])
    before = counted[ends - lengths]  # [SEP]s before each row
    seps_so_far = counted[1:] - np.repeat(before, lengths)  # within the row, up to and including each token
    types = ((seps_so_far - is_sep) > 0).astype(np.int32)
    for row in np.flatnonzero(counted[ends] - before != 2).tolist():
        types[ends[row] - lengths[row] : ends[row]] = encodings[row].type_ids
    return types


def bert_pair_sep_id(tokenizer) -> int | None:
    """The [SEP] id when ``tokenizer``'s pair template is BERT's (``[CLS] $A [SEP] $B:1 [SEP]:1``, as
    TemplateProcessing or BertProcessing), else None: then :meth:`TokenArrays.of` derives type ids from it."""
    processor = getattr(tokenizer, "post_processor", None)
    try:
        state = json.loads(processor.__getstate__()) if processor is not None else {}
    except (AttributeError, TypeError, ValueError):
        return None
    if state.get("type") == "BertProcessing":
        return int(state["sep"][1])
    if state.get("type") != "TemplateProcessing":
        return None
    want = [("SpecialToken", 0), ("Sequence", 0), ("SpecialToken", 0), ("Sequence", 1), ("SpecialToken", 1)]
    pair = state.get("pair") or []
    got = [(kind, piece[kind].get("type_id")) for piece in pair for kind in piece]
    names = [piece[kind].get("id") for piece in pair for kind in piece]
    special = state.get("special_tokens") or {}
    if got != want or names[1:] != ["A", names[2], "B", names[2]] or names[0] == names[2]:
        return None
    sep = special.get(names[2], {}).get("ids") or []
    cls = special.get(names[0], {}).get("ids") or []
    return int(sep[0]) if len(sep) == 1 and len(cls) == 1 and cls != sep else None


def encode_arrays(
    tokenizer, inputs: Sequence, type_rule: TypeIdRule | None = None, threads: int | None = None
) -> TokenArrays:
    """The :class:`TokenArrays` of ``inputs``: ``encode_in_threads``' encodings (same ids, same truncation), with two
    savings for scoring: ``encode_batch_fast`` (no character offsets: ~25% less tokenizer time) and each thread
    turning its own chunk into arrays, so that this GIL-bound step overlaps the other threads' tokenizing."""
    return TokenArrays.concat(_map_chunks(inputs, _array_encoder(tokenizer, type_rule), threads))


def _array_encoder(tokenizer, type_rule: TypeIdRule | None) -> Callable[[Sequence], TokenArrays]:
    """``chunk -> TokenArrays`` of that chunk (``encode_batch_fast`` when the tokenizer has it): one tokenizer task."""
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    return lambda chunk: TokenArrays.of(encode(chunk), type_rule)


#: a streamed call (:func:`encode_pieces`) hands ALL its tokenizer tasks to the pool when it starts, in input order:
#: the pool works through the whole call without waiting at each piece's slowest task, and the first piece is ready
#: as soon as its own tasks are (session 6's H200 profile: each 256-pair piece took ~9.6 ms, about twice the pool's
#: rate, and each call's first piece was waited for). False: each piece is tokenized when it is prepared.
TOKENIZE_AHEAD = True
#: with ``TOKENIZE_AHEAD``, a streamed call's tokenizer tasks run in this many worker PROCESSES instead of the thread
#: pool (0: threads, the default; read at every call; ``MLX_CROSS_ENCODER_TOKENIZE_PROCESSES`` overrides it):
#: tokenize_procs.py. Session 8's H200 main window (16 cores, MiniLM bf16, the harness offline calls, one process,
#: medians of 3 passes): 12 processes 20,154 pairs/s [20,007-20,392] against the 12 threads' 17,529 / 18,370 (first /
#: last row), 8 processes 16,695. Session 9's harness rows (suites/h200-minilm-host.yaml, option tokenize_processes):
#: 12 / 14 processes ran 4-19% faster than the threads in the same call (e.g. 24,482 / 28,030 vs 23,493), except
#: once (-2%, 14 processes on a slower host). Still opt-in: it starts processes from a library, and the threads
#: alone met the 20k goal on the faster host.
TOKENIZE_PROCESSES = 0
TOKENIZE_PROCESSES_ENV_VAR = "MLX_CROSS_ENCODER_TOKENIZE_PROCESSES"


def tokenize_processes() -> int:
    """Worker processes for a streamed call's tokenizer tasks: ``MLX_CROSS_ENCODER_TOKENIZE_PROCESSES`` when set,
    else ``TOKENIZE_PROCESSES``; 0 = the thread pool."""
    value = env_int(TOKENIZE_PROCESSES_ENV_VAR)
    return TOKENIZE_PROCESSES if value is None else value


def checked_processes(value: int | None) -> int | None:
    """``value`` (worker processes for tokenizing; 0 = threads; None = :func:`tokenize_processes` at each call) if
    it is None or an integer >= 0; ValueError otherwise."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"tokenize_processes must be None or an integer >= 0, got {value!r}")
    return value


#: with ``TOKENIZE_AHEAD``, the first piece of a call of several pieces is split into one task per tokenizer thread
#: (not tasks of ``TOKENIZE_CHUNK_MIN``): the GPU waits for that piece at every call, so its latency is one task of
#: ~first / threads pairs (64 / 12: 5-6 pairs) instead of 16; the rest keep the larger tasks (fewer GIL hand-offs)
SPREAD_FIRST_PIECE = True


def encode_pieces(
    tokenizer,
    inputs: Sequence,
    bounds: Sequence[int],
    type_rule: TypeIdRule | None = None,
    threads: int | None = None,
    processes: int | None = None,
) -> list:
    """One function per piece ``inputs[bounds[i]:bounds[i + 1]]`` returning its :class:`TokenArrays` (as
    :func:`encode_arrays` gives them). With ``TOKENIZE_AHEAD`` (and more than one thread, at least
    ``PARALLEL_TOKENIZE_MIN`` inputs) every piece's tokenizer tasks are submitted now, in order (the first piece's
    spread over the threads: ``SPREAD_FIRST_PIECE``), to the thread pool or, with ``processes`` worker processes
    (None: :func:`tokenize_processes`; 0: threads), to those, and a piece's function waits for its own tasks;
    otherwise a piece is tokenized when its function is called."""
    n = threads if threads is not None else tokenize_threads()
    spans = list(zip(bounds[:-1], bounds[1:]))
    processes = tokenize_processes() if processes is None else processes
    if processes > 0 and TOKENIZE_AHEAD and len(inputs) >= PARALLEL_TOKENIZE_MIN:
        from .tokenize_procs import submitter

        n, submit = processes, submitter(tokenizer, processes, type_rule)
    elif not TOKENIZE_AHEAD or n <= 1 or len(inputs) < PARALLEL_TOKENIZE_MIN:
        return [functools.partial(encode_arrays, tokenizer, inputs[a:b], type_rule, threads) for a, b in spans]
    else:
        encode, pool = _array_encoder(tokenizer, type_rule), _tokenize_pool(n)

        def submit(chunk):
            return pool.submit(encode, chunk)

    pieces = []
    for i, (a, b) in enumerate(spans):
        if i == 0 and len(spans) > 1 and SPREAD_FIRST_PIECE:  # one task per thread: ready after one round
            k = min(n, b - a)
            tasks = [((b - a) * j // k, (b - a) * (j + 1) // k) for j in range(k)]
        else:
            tasks = _thread_chunks(b - a, n)
        futures = [submit(inputs[a + s : a + e]) for s, e in tasks]
        pieces.append(lambda futures=futures: TokenArrays.concat([f.result() for f in futures]))
    return pieces
