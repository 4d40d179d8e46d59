"""``single_query``: the per-query protocol. Each query's top-k candidates are one ``predict`` call, timed with
``time.perf_counter()``; latency percentiles are per query over every timed pass; throughput per pass is its
pairs / the sum of its calls' times. Warm-up: the first ``warmup_queries`` queries, untimed."""

from __future__ import annotations

import numpy as np

from ..results.models import Latency, ScenarioRecord
from . import SINGLE_QUERY
from .base import ScenarioContext, ScenarioOutcome, pass_fields, timed_calls


def latency(samples_ms: list[float]) -> Latency:
    arr = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p95, p99 = (float(np.percentile(arr, q)) for q in (50, 90, 95, 99))
    return Latency(
        p50=p50, p90=p90, p95=p95, p99=p99, mean=float(arr.mean()), min=float(arr.min()), max=float(arr.max())
    )


def measure(ctx: ScenarioContext) -> ScenarioOutcome:
    backend = ctx.backend
    pairs = [q.pairs for q in ctx.queries]
    for p in pairs[: min(ctx.warmup_queries, len(pairs))]:
        backend.predict(p, backend.batch_size)
    timed = timed_calls(ctx, [(p, backend.batch_size) for p in pairs], SINGLE_QUERY, "q")
    samples_ms = [x for p in timed.passes for x in p.samples_ms]
    record = ScenarioRecord(
        scenario=SINGLE_QUERY, samples=len(samples_ms), latency_ms=latency(samples_ms), **pass_fields(ctx, timed)
    )
    return ScenarioOutcome(record=record, passes=[p.scores for p in timed.passes], latency_samples_ms=samples_ms)
