"""Tokenizer tasks in worker PROCESSES instead of threads (opt-in: ``tokenizing.TOKENIZE_PROCESSES``; issue 12).

Why: session 8's H200 timeline of MiniLM bf16 offline shows a host pass bound by Python's GIL, not by the CPU: 12
tokenizer threads, the prepare thread and the scoring loop share one interpreter, and each tokenizer task holds the
GIL to hand its pairs to the Rust tokenizer and to turn the encodings into arrays (``TokenArrays.of``); the
prepare thread's padding took 1.2 ms per chunk there against 0.08 ms alone. Worker processes have their own GIL:
a task costs the caller one pickled list of pairs out and one :class:`TokenArrays` back. The workers are started
with ``spawn`` (never ``fork``: the caller runs MLX/CUDA and threads) and load the tokenizer from its JSON
(``Tokenizer.to_str``: vocabulary, truncation and padding included), once per pool; a pool lives as long as the
process and is rebuilt when the tokenizer's truncation or padding changes. Same encodings as the threads (tests).
Measured (MiniLM bf16 offline on the H200): session 8's same-process A/B, 12 processes 20,154 pairs/s vs 12 threads
17,529-18,370; session 9's harness rows, 12 / 14 processes 4-19% faster than the threads in the same call but once
(-2%) (results/minilm-host-s9*-h200.json; report/h200.md).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

#: id(tokenizer) -> (tokenizer, its settings when the pool started, pool); holding the tokenizer keeps its id unique
_POOLS: dict[int, tuple] = {}
_TOKENIZER = None  # in a worker: the tokenizer it loaded


def _start(state: str) -> None:
    global _TOKENIZER
    from tokenizers import Tokenizer

    _TOKENIZER = Tokenizer.from_str(state)


def _encode(chunk: Sequence, type_rule):
    """In a worker: the :class:`tokenizing.TokenArrays` of ``chunk`` (what a tokenizer thread's task returns)."""
    from .tokenizing import _array_encoder

    return _array_encoder(_TOKENIZER, type_rule)(list(chunk))


def submitter(tokenizer, processes: int, type_rule) -> Callable[[Sequence], Future]:
    """``chunk -> Future[TokenArrays]`` on this tokenizer's pool of ``processes`` workers (started on first use)."""
    settings = (processes, repr(tokenizer.truncation), repr(tokenizer.padding))
    held = _POOLS.get(id(tokenizer))
    if held is None or held[1] != settings:
        if held is not None:
            held[2].shutdown(wait=False, cancel_futures=True)
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_start, initargs=(tokenizer.to_str(),))
        held = _POOLS[id(tokenizer)] = (tokenizer, settings, pool)
    pool = held[2]
    return lambda chunk: pool.submit(_encode, chunk, type_rule)


def shutdown() -> None:
    """Stop every worker pool (they also stop when the process exits)."""
    while _POOLS:
        _, (_, _, pool) = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)
