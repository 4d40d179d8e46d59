"""A step of ``MLXCrossEncoder``'s GPU scoring loop before the model's forward: the chunk's host arrays copied to the
device in one copy (:func:`device_inputs`), and :func:`chunk_rule`, what the loop's chunking follows (results'
provenance). Issue 12: on MLX's CUDA backend a MiniLM chunk is bound by the host (session 7's H200 timeline:
kernel launches ~31 us each, 0.31 ms per chunk in three ``mx.array`` copies). The saving has a switch (read at every
call) for same-process A/Bs (benchmarks/enc_chunks.py ``xfer1=0``).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from . import base, tokenizing

#: a chunk's ids, mask and token types go to the device as one array (one host-to-device copy, not three). Session
#: 7's H200 timeline: 0.31 ms per chunk in the three ``mx.array`` copies.
ONE_TRANSFER = True


def device_inputs(host: tuple) -> tuple[mx.array, mx.array, mx.array | None]:
    """``(ids, mask, token types or None)`` host arrays on the device: ONE copy when they are the rows of one
    buffer (``tokenizing.TokenArrays.padded``'s) and :data:`ONE_TRANSFER`, sliced there (views: no kernel); else one
    copy each."""
    ids, mask, types = host
    block = ids.base
    parts = [a for a in host if a is not None]
    if (
        ONE_TRANSFER
        and isinstance(block, np.ndarray)
        and block.ndim == 3
        and block.shape[0] == len(parts)
        and block.flags.c_contiguous
        and all(a.base is block for a in parts)
    ):
        whole = mx.array(block)
        ids, mask, *rest = (whole[i : i + 1].reshape(ids.shape) for i in range(len(parts)))
        return ids, mask, rest[0] if rest else None
    return mx.array(ids), mx.array(mask), None if types is None else mx.array(types)


def chunk_rule(
    chunk_tokens: int,
    *,
    stream_rows: list[int],
    derived_type_ids: bool,
    tokenize_processes: int | None,
    cache_keep_bytes: int,
) -> dict:
    """What the GPU row chunks of ``MLXCrossEncoder`` follow now (results' provenance): ``chunk_tokens``, the memory
    bound's ``batch_widths`` (:data:`base.BATCH_WIDTHS`), a streamed call's piece sizes ``stream_rows`` = [first,
    most] (:func:`base.stream_bounds`; the caller's, as it streams), ``prepare_ahead``, ``tokenize_chunk_min``,
    ``tokenize_ahead`` (:data:`tokenizing.TOKENIZE_AHEAD`), ``spread_first_piece``, ``cache_keep_bytes``,
    ``one_transfer`` (:data:`ONE_TRANSFER`), ``derived_type_ids`` and ``tokenize_processes`` (None:
    :func:`tokenizing.tokenize_processes` now)."""
    return {
        "chunk_tokens": chunk_tokens,
        "batch_widths": base.BATCH_WIDTHS,
        "stream_rows": list(stream_rows),
        "prepare_ahead": base.PREPARE_AHEAD,
        "tokenize_chunk_min": tokenizing.TOKENIZE_CHUNK_MIN,
        "tokenize_ahead": tokenizing.TOKENIZE_AHEAD,
        "spread_first_piece": tokenizing.SPREAD_FIRST_PIECE,
        "cache_keep_bytes": cache_keep_bytes,
        "one_transfer": ONE_TRANSFER,
        "derived_type_ids": derived_type_ids,
        "tokenize_processes": tokenizing.tokenize_processes() if tokenize_processes is None else tokenize_processes,
    }
