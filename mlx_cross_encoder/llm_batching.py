"""How an LLM reranker batches its pairs: shared-prefix groups, length-sorted batches, right padding.

``prefix_cache`` (exact): the token ids that all documents of one query share (system prompt + instruction + query)
are run once; their KV cache (mlx-lm ``KVCache``) is broadcast over a batch of that query's documents, whose tails
are right-padded. Under the causal mask a real token never attends to a later (pad) position, and every row's
positions continue at the prefix length, so padding changes no real token; each row's own last real position is
gathered.

``length_batching`` (exact): batches hold sequences of similar length (longest first), so that little padding is
computed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from .base import length_sorted_batches

logger = logging.getLogger("mlx_cross_encoder")

#: ``(prefix_len, indices)``: one batch; its rows share a cached prefix of ``prefix_len`` tokens (0 = none)
Batch = tuple[int, list[int]]


def shared_prefix_length(group: Sequence[Sequence[int]]) -> int:
    """Tokens every sequence of ``group`` starts with, leaving each at least one token after the prefix."""
    shared = min(len(s) for s in group) - 1
    first = group[0]
    for s in group[1:]:
        n = 0
        while n < shared and s[n] == first[n]:
            n += 1
        shared = n
    return shared


def plan_batches(
    queries: Sequence[str], seqs: list[list[int]], batch_size: int, *, prefix_cache: bool, length_batching: bool
) -> list[Batch]:
    """The batches to run: with ``prefix_cache``, one query's documents (two or more, sharing at least one token)
    form batches over a shared prefix; every other sequence is batched without one."""

    def batches(idx: list[int]) -> list[list[int]]:
        if length_batching:
            return [[idx[i] for i in b] for b in length_sorted_batches([len(seqs[i]) for i in idx], batch_size)]
        return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]

    plan: list[Batch] = []
    loose: list[int] = []
    if prefix_cache:
        groups: dict[str, list[int]] = {}
        for i, query in enumerate(queries):
            groups.setdefault(query, []).append(i)
        for idx in groups.values():
            shared = shared_prefix_length([seqs[i] for i in idx]) if len(idx) >= 2 else 0
            if shared < 1:
                loose += idx
                continue
            plan += [(shared, b) for b in batches(idx)]
    else:
        loose = list(range(len(seqs)))
    plan += [(0, b) for b in batches(loose)]
    return plan


def right_padded(ids: list[list[int]], pad_token_id: int) -> tuple[mx.array, mx.array]:
    """``(inputs, last)``: the rows right-padded to one width, and each row's last real position."""
    lengths = [len(x) for x in ids]
    batch = np.full((len(ids), max(lengths)), pad_token_id, dtype=np.int32)
    for row, x in enumerate(ids):
        batch[row, : len(x)] = x
    return mx.array(batch), mx.array(lengths) - 1


def expand_cache(kv_cache_cls, prefix_cache: list, batch: int) -> list:
    """A batch-sized copy of a one-row prefix cache (broadcast; the first update materializes it)."""
    caches = []
    for c in prefix_cache:
        n = kv_cache_cls()
        keys, values = c.keys[..., : c.offset, :], c.values[..., : c.offset, :]
        n.keys = mx.broadcast_to(keys, (batch, *keys.shape[1:]))
        n.values = mx.broadcast_to(values, (batch, *values.shape[1:]))
        n.offset = c.offset
        caches.append(n)
    return caches


def prefix_cache_supported(model, backbone, make_prompt_cache, kv_cache_cls) -> bool:
    """Whether the model uses plain mlx-lm ``KVCache`` layers (rotating or hybrid caches cannot be broadcast)."""
    try:
        caches = make_prompt_cache(model)
    except Exception:  # noqa: BLE001 - a model without a standard cache
        return False
    ok = backbone is not None and all(type(c) is kv_cache_cls for c in caches)
    if not ok:
        kinds = sorted({type(c).__name__ for c in caches})
        logger.info("prefix_cache unavailable for %s (cache types %s)", type(model).__module__, kinds)
    return ok
