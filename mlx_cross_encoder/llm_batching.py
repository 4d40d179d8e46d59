"""How an LLM reranker batches its pairs: shared-prefix groups, length-sorted batches, right padding.

``prefix_cache`` (exact): the token ids that all documents of one query share (system prompt + instruction + query)
are run once; their KV cache (mlx-lm ``KVCache``) is broadcast over a batch of that query's documents, whose tails
are right-padded. Under the causal mask a real token never attends to a later (pad) position, and every row's
positions continue at the prefix length, so padding changes no real token; each row's own last real position is
gathered.

``length_batching`` (exact): batches hold sequences of similar length (longest first), so that little padding is
computed.

``max_batch_tokens``: a batch holds at most that many padded tokens (rows x its longest full sequence, the cached
prefix counted: the same plan with the prefix cache on or off); a single longer sequence runs alone. The planner
is :func:`.base.length_sorted_batches`, the one the cross-encoders use.

The shared prefix's KV is kept once (one row) and broadcast to the batch inside each layer's attention
(:class:`SharedPrefixCache`): no per-row copy of the prefix is held across layers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

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
    queries: Sequence[str],
    seqs: list[list[int]],
    batch_size: int,
    *,
    prefix_cache: bool,
    length_batching: bool,
    max_batch_tokens: int | None = None,
) -> list[Batch]:
    """The batches to run: with ``prefix_cache``, one query's documents (two or more, sharing at least one token)
    form batches over a shared prefix; every other sequence is batched without one."""

    def batches(idx: list[int]) -> list[list[int]]:
        lengths = [len(seqs[i]) for i in idx]
        plan = length_sorted_batches(lengths, batch_size, max_batch_tokens, sort=length_batching)
        return [[idx[i] for i in b] for b in plan]

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


class SharedPrefixCache:
    """One layer's cache for a batch of suffixes behind one shared prefix: the prefix's one-row keys/values are
    broadcast to the batch and joined with the suffix's inside this layer's attention call only.

    mlx-lm's ``KVCache`` would allocate ``(batch, kv_heads, prefix + 256-rounded suffix, head_dim)`` per layer and
    keep all layers' copies alive until the batch is evaluated; here the joined keys/values are a temporary of each
    layer's attention, freed once it ran. Same values in the same positions, so the scores are those of the
    ``KVCache`` path. For one forward pass only (the suffix is not stored).
    """

    def __init__(self, keys: mx.array, values: mx.array):
        self.prefix_keys, self.prefix_values = keys, values
        self.offset = keys.shape[2]

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        batch = keys.shape[0]
        prefix_k = mx.broadcast_to(self.prefix_keys, (batch, *self.prefix_keys.shape[1:]))
        prefix_v = mx.broadcast_to(self.prefix_values, (batch, *self.prefix_values.shape[1:]))
        self.offset += keys.shape[2]
        return mx.concatenate([prefix_k, keys], axis=2), mx.concatenate([prefix_v, values], axis=2)

    def make_mask(self, n: int, return_array: bool = False, window_size: int | None = None):
        from mlx_lm.models.cache import create_attention_mask

        return create_attention_mask(n, offset=self.offset, return_array=return_array, window_size=window_size)


def shared_prefix_caches(prefix_cache: list) -> list[SharedPrefixCache]:
    """Per layer, a :class:`SharedPrefixCache` over a one-row mlx-lm ``KVCache`` of the prefix."""
    return [SharedPrefixCache(c.keys[..., : c.offset, :], c.values[..., : c.offset, :]) for c in prefix_cache]


def per_row_prefix_caches(kv_cache_cls) -> Callable[[list], list]:
    """The former prefix path, kept as the reference :class:`SharedPrefixCache` is measured against (the
    shared-prefix memory test, ``benchmarks/mlx_batch_budget.py``): a drop-in for :func:`shared_prefix_caches` that
    gives each layer a batch-sized mlx-lm ``KVCache`` (``kv_cache_cls``) holding a per-row copy of the prefix,
    broadcast and materialized on the first update. Same scores, more memory: every layer's copy stays alive until
    the batch is evaluated."""

    class PerRowCopy(kv_cache_cls):
        def __init__(self, c):
            super().__init__()
            self.prefix, self.offset = c, c.offset

        def update_and_fetch(self, keys, values):
            if self.keys is None:
                k, v = (x[..., : self.prefix.offset, :] for x in (self.prefix.keys, self.prefix.values))
                self.keys = mx.broadcast_to(k, (keys.shape[0], *k.shape[1:]))
                self.values = mx.broadcast_to(v, (keys.shape[0], *v.shape[1:]))
            return super().update_and_fetch(keys, values)

    return lambda prefix_cache: [PerRowCopy(c) for c in prefix_cache]


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
