"""How an LLM reranker batches its pairs: shared-prefix groups, length-sorted batches, right padding.

``prefix_cache`` (exact): the token ids that all documents of one query share (system prompt + instruction + query)
are run once; their KV cache (mlx-lm ``KVCache``) is broadcast over a batch of that query's documents, whose tails
are right-padded. Under the causal mask a real token never attends to a later (pad) position, and every row's
positions continue at the prefix length, so padding changes no real token; each row's own last real position is
gathered.

Within one call each prefix is computed once: a query with enough documents gets its own prefix; the pairs of
queries with few documents in the call are pooled across queries over the prefix they all share (the prompt up
to the query), so that a call mixing many queries still runs few, full batches (:func:`plan_batches`).

``length_batching`` (exact): batches hold sequences of similar length (longest first), split where the padding
saved outweighs a per-batch cost (:func:`padding_aware_batches`), so that little padding is computed.

``max_batch_tokens``: a batch holds at most that many padded tokens (rows x its longest full sequence, the cached
prefix counted); a single longer sequence runs alone, as in :func:`.base.length_sorted_batches`, the planner of
the cross-encoders (used here as is without ``length_batching``).

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


#: within one call, a query's documents get their own cached prefix when they are at least this many rows (or
#: fill a batch, with a smaller ``batch_size``); smaller groups are pooled under the prefix the whole call shares
OWN_PREFIX_MIN_ROWS = 32
#: what one more batch costs, in padded tokens, when a length-sorted group is split (kernel launches, a read of
#: the weights, small-matrix inefficiency); :func:`padding_aware_batches` trades it against padding. A GPU needs
#: thousands of rows x tokens per matmul to be busy; MLX's CPU runs near its GEMM speed from a few hundred.
#: Guesses, not fitted: :func:`batch_overhead_tokens` picks one by device
BATCH_OVERHEAD_TOKENS = 2048
CPU_BATCH_OVERHEAD_TOKENS = 256


def batch_overhead_tokens() -> int:
    """The per-batch cost for MLX's default device: :data:`CPU_BATCH_OVERHEAD_TOKENS` on its CPU, else
    :data:`BATCH_OVERHEAD_TOKENS`."""
    return CPU_BATCH_OVERHEAD_TOKENS if mx.default_device().type == mx.cpu else BATCH_OVERHEAD_TOKENS


def padding_aware_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_batch_tokens: int | None = None,
    *,
    shared: int = 0,
    overhead_tokens: int = BATCH_OVERHEAD_TOKENS,
) -> list[list[int]]:
    """Indices in length-sorted batches (longest first) that minimise the tokens computed: each batch's rows x
    its longest row's tokens after the ``shared`` cached prefix, plus ``overhead_tokens`` per batch. Same limits
    as :func:`.base.length_sorted_batches` (at most ``batch_size`` rows and ``max_batch_tokens`` padded tokens,
    full sequences counted; a longer single row runs alone). Exact optimum over contiguous runs of the sorted
    lengths (dynamic programming, O(n x batch_size)); with no padding to save it keeps batches full."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_batch_tokens is not None and max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be >= 1 or None, got {max_batch_tokens}")
    n = len(lengths)
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    full = np.asarray(lengths, dtype=np.int64)[order]
    width = np.maximum(full - shared, 1)
    budget = max_batch_tokens if max_batch_tokens is not None else np.inf
    cost = np.full(n + 1, np.inf)
    cost[0] = 0.0
    start = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        first = np.arange(max(0, j - batch_size), j)  # the batch is sorted[first:j]; its widest row is `first`
        rows = j - first
        c = cost[first] + rows * width[first] + overhead_tokens
        c[(rows > 1) & (rows * full[first] > budget)] = np.inf
        k = int(np.argmin(c))
        cost[j], start[j] = c[k], first[k]
    batches: list[list[int]] = []
    j = n
    while j > 0:
        batches.append(order[start[j] : j].tolist())
        j = int(start[j])
    return batches[::-1]


def plan_batches(
    queries: Sequence[str],
    seqs: list[list[int]],
    batch_size: int,
    *,
    prefix_cache: bool,
    length_batching: bool,
    max_batch_tokens: int | None = None,
    overhead_tokens: int | None = None,
) -> list[Batch]:
    """The batches of one call, each prefix's batches one after another (so that each prefix is computed once).

    With ``prefix_cache``, pairs are grouped by query: a group of at least ``min(batch_size,
    OWN_PREFIX_MIN_ROWS)`` documents sharing at least one token runs over its own cached prefix (system prompt +
    instruction + query); the pairs of smaller groups (a call that mixes many queries of a few pairs each, as the
    harness's offline scenario sends) are pooled into batches across queries over the prefix all of them share
    (system prompt + instruction), computed once, instead of many small batches each behind its own prefix. With
    ``length_batching``, each group forms length-sorted batches under ``batch_size`` / ``max_batch_tokens``,
    split where the padding saved outweighs ``overhead_tokens`` per batch (default :func:`batch_overhead_tokens`;
    :func:`padding_aware_batches`);
    without it, batches of consecutive pairs in input order."""

    overhead_tokens = batch_overhead_tokens() if overhead_tokens is None else overhead_tokens

    def batches(idx: list[int], shared: int) -> list[Batch]:
        lengths = [len(seqs[i]) for i in idx]
        if length_batching:
            plan = padding_aware_batches(
                lengths, batch_size, max_batch_tokens, shared=shared, overhead_tokens=overhead_tokens
            )
        else:
            plan = length_sorted_batches(lengths, batch_size, max_batch_tokens, sort=False)
        return [(shared, [idx[i] for i in b]) for b in plan]

    if not prefix_cache:
        return batches(list(range(len(seqs))), 0)
    groups: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        groups.setdefault(query, []).append(i)
    own_rows = min(batch_size, OWN_PREFIX_MIN_ROWS)
    plan: list[Batch] = []
    pooled: list[int] = []
    for idx in groups.values():
        shared = shared_prefix_length([seqs[i] for i in idx]) if len(idx) >= 2 else 0
        if len(idx) >= own_rows and shared >= 1:
            plan += batches(idx, shared)
        else:
            pooled += idx
    if pooled:
        pooled.sort()
        shared = shared_prefix_length([seqs[i] for i in pooled]) if len(pooled) >= 2 else 0
        plan += batches(pooled, shared)
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
