"""``offline``: every pair of the dataset at once, in length-sorted batches across queries (MLPerf's Offline).

The batches come from THE planner, ``mlx_cross_encoder.base.length_sorted_batches`` (numpy only), over the
token counts of every pair, with the reranker's ``batch_size`` and its ``max_batch_tokens`` option: every backend
gets the same batches of the same (truncated) pairs. Each batch is one ``predict`` call (a backend replans it with
the same planner and budget, so it stays one batch; inside it MLX on a GPU computes row chunks, widths rounded up
to 32). A pass is the sum of its batches' times; throughput per
pass is pairs (tokens) / that time. Warm-up, untimed, when ``warmup_queries`` > 0: one pass over every batch, so
that each batch shape has been run once before timing (on a GPU a new shape costs a kernel or graph build: the
H200 profile in docs/benchmarks.md saw ~60 ms per new width, more than a whole MiniLM pass of DL19).
"""

from __future__ import annotations

import numpy as np

from mlx_cross_encoder.base import length_sorted_batches

from ..backends import max_batch_tokens
from ..results.models import ScenarioRecord
from . import OFFLINE
from .base import ScenarioContext, ScenarioOutcome, pass_fields, timed_calls


def plan(ctx: ScenarioContext) -> tuple[list[tuple[str, str]], np.ndarray, list[list[int]]]:
    """Every pair (queries in order), its token count, and the batches (indices into that list)."""
    flat = [pair for q in ctx.queries for pair in q.pairs]
    lengths = np.concatenate([q.tokens for q in ctx.queries]).astype(np.int64)
    batches = length_sorted_batches(lengths, ctx.backend.batch_size, max_batch_tokens(ctx.backend.options))
    return flat, lengths, batches


def measure(ctx: ScenarioContext) -> ScenarioOutcome:
    backend = ctx.backend
    flat, lengths, batches = plan(ctx)
    inputs = [[flat[i] for i in b] for b in batches]
    index = [np.asarray(b, dtype=np.int64) for b in batches]
    bounds = np.cumsum([0] + [len(q.pairs) for q in ctx.queries])
    if ctx.warmup_queries > 0:
        for rows in inputs:
            backend.predict(rows, len(rows))
    timed = timed_calls(ctx, [(rows, len(rows)) for rows in inputs], OFFLINE, "batch")
    per_query_passes = []
    for one in timed.passes:  # batch outputs back to the pairs' places, then cut per query
        scores = np.empty(len(flat), dtype=np.float32)
        for idx, out in zip(index, one.scores):
            scores[idx] = out
        per_query_passes.append([scores[bounds[i] : bounds[i + 1]] for i in range(len(ctx.queries))])
    record = ScenarioRecord(
        scenario=OFFLINE,
        samples=len(inputs) * len(timed.passes),
        batches=len(inputs),
        max_batch_tokens=max_batch_tokens(backend.options),
        padded_tokens=int(sum(len(b) * int(lengths[b].max()) for b in index)),
        **pass_fields(ctx, timed),
    )
    return ScenarioOutcome(record=record, passes=per_query_passes)
