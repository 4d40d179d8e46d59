"""``single_query``: the per-query protocol. Each query's top-k candidates are one ``predict`` call, timed with
``time.perf_counter()``; latency percentiles are per query over every timed pass; throughput per pass is its
pairs / the sum of its calls' times. Warm-up: the first ``warmup_queries`` queries, untimed."""

from __future__ import annotations

import sys

import numpy as np

from ..results.models import Latency, ScenarioRecord
from .base import ScenarioContext, ScenarioOutcome, TimedPass, load_average, now, repeat_passes


def latency(samples_ms: list[float]) -> Latency:
    arr = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p95, p99 = (float(np.percentile(arr, q)) for q in (50, 90, 95, 99))
    return Latency(
        p50=p50, p90=p90, p95=p95, p99=p99, mean=float(arr.mean()), min=float(arr.min()), max=float(arr.max())
    )


def measure(ctx: ScenarioContext) -> ScenarioOutcome:
    from tqdm.auto import tqdm

    backend = ctx.backend
    pairs = [q.pairs for q in ctx.queries]
    for p in pairs[: min(ctx.warmup_queries, len(pairs))]:
        backend.predict(p, backend.batch_size)
    bar = tqdm(
        total=ctx.repeats * len(pairs),
        desc=f"{ctx.label} single_query",
        unit="q",
        file=sys.stderr,
        disable=not ctx.progress,
    )

    def one_pass() -> TimedPass:
        samples, scores = [], []
        for p in pairs:
            t0 = now()
            s = backend.predict(p, backend.batch_size)
            samples.append((now() - t0) * 1000.0)
            scores.append(s)
            bar.update(1)
        return TimedPass(seconds=sum(samples) / 1000.0, scores=scores, samples_ms=samples)

    backend.reset_peak_memory()
    load_before = load_average()
    passes, reached = repeat_passes(one_pass, ctx)
    load_after = load_average()
    bar.close()
    samples_ms = [x for p in passes for x in p.samples_ms]
    record = ScenarioRecord(
        scenario="single_query",
        repeats=len(passes),
        pass_s=[p.seconds for p in passes],
        pairs_per_s=[ctx.n_pairs / p.seconds for p in passes],
        tokens_per_s=[ctx.n_tokens / p.seconds for p in passes],
        pairs=ctx.n_pairs,
        tokens=ctx.n_tokens,
        samples=len(samples_ms),
        min_time_s=ctx.min_time_s,
        min_time_reached=reached,
        latency_ms=latency(samples_ms),
        batch_size=backend.batch_size,
        peak_memory_mb=backend.peak_memory_mb(),
        load_avg_before=load_before,
        load_avg_after=load_after,
    )
    return ScenarioOutcome(record=record, passes=[p.scores for p in passes], latency_samples_ms=samples_ms)
