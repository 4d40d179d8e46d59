"""What every scenario module gets and returns, and the one loop of timed passes they share.

* ``ScenarioContext``: the loaded backend, the dataset's queries with their pairs and token counts, the suite's
  ``measure:`` settings (``MeasureJob``), the scenario's options, a progress label.
* ``ScenarioOutcome``: the record stored in the results file (``harness.results.models.ScenarioRecord``) and the
  scores of every timed pass (one float32 array per query, in the dataset's order), which the worker checks.
* ``repeat_passes``: ``repeats`` timed passes, then more until their total reaches ``min_time_s``; bounded by
  ``max_repeats`` passes (the record then says ``min_time_reached: false`` and the verdict is INVALID).
* ``timed_calls``: the passes of a fixed list of ``predict`` calls (a query each, or a batch each) under one progress
  bar, with peak memory and load averages around them; ``pass_fields``: the record fields every such scenario fills.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..results.models import ScenarioRecord


@dataclass
class QueryPairs:
    qid: str
    pairs: list[tuple[str, str]]  # (query, candidate text), first-stage order
    tokens: np.ndarray  # input tokens per pair after truncation, by the model's own tokenizer


@dataclass
class ScenarioContext:
    backend: Any  # harness.backends.Backend, loaded once by the worker
    queries: list[QueryPairs]
    repeats: int
    min_time_s: float
    max_repeats: int
    warmup_queries: int
    options: dict[str, Any] = field(default_factory=dict)  # measure.scenario_options[<this scenario>]
    job: Any = None  # harness.run.worker.MeasureJob (model_dir, reranker settings, max_length)
    label: str = ""
    progress: bool = False

    @property
    def n_pairs(self) -> int:
        return sum(len(q.pairs) for q in self.queries)

    @property
    def n_tokens(self) -> int:
        return int(sum(int(q.tokens.sum()) for q in self.queries))


@dataclass
class ScenarioOutcome:
    record: ScenarioRecord
    passes: list[list[np.ndarray]]  # scores of every timed pass, one array per query
    latency_samples_ms: list[float] | None = None  # single_query: every timed call (the run keeps them)


@dataclass
class TimedPass:
    seconds: float
    scores: list[np.ndarray]
    samples_ms: list[float] = field(default_factory=list)  # the pass's timed calls (per query or per batch)


def repeat_passes(one_pass: Callable[[], TimedPass], ctx: ScenarioContext) -> tuple[list[TimedPass], bool]:
    """Timed passes until there are ``ctx.repeats`` and their total reaches ``ctx.min_time_s`` (at most
    ``ctx.max_repeats``); returns them and whether ``min_time_s`` was reached."""
    gc.collect()
    done: list[TimedPass] = []
    total = 0.0
    while len(done) < ctx.repeats or (total < ctx.min_time_s and len(done) < ctx.max_repeats):
        result = one_pass()
        done.append(result)
        total += result.seconds
    return done, total >= ctx.min_time_s


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def now() -> float:
    return time.perf_counter()


@dataclass
class TimedCalls:
    """What ``timed_calls`` measured: every pass (its calls' scores and times), whether ``min_time_s`` was reached,
    the 1-min load average before and after."""

    passes: list[TimedPass]
    min_time_reached: bool
    load_before: float | None
    load_after: float | None


def timed_calls(ctx: ScenarioContext, calls: list[tuple[list, int]], desc: str, unit: str) -> TimedCalls:
    """Times ``backend.predict(rows, batch_size)`` for each of ``calls``, pass after pass (``repeat_passes``); a
    pass's ``scores`` are the calls' outputs in order. Peak memory is reset before the first pass."""
    from tqdm.auto import tqdm

    backend = ctx.backend
    bar = tqdm(
        total=ctx.repeats * len(calls), desc=f"{ctx.label} {desc}", unit=unit, file=sys.stderr, disable=not ctx.progress
    )

    def one_pass() -> TimedPass:
        samples, scores = [], []
        for rows, batch_size in calls:
            t0 = now()
            out = backend.predict(rows, batch_size)
            samples.append((now() - t0) * 1000.0)
            scores.append(out)
            bar.update(1)
        return TimedPass(seconds=sum(samples) / 1000.0, scores=scores, samples_ms=samples)

    backend.reset_peak_memory()
    load_before = load_average()
    passes, reached = repeat_passes(one_pass, ctx)
    load_after = load_average()
    bar.close()
    return TimedCalls(passes, reached, load_before, load_after)


def pass_fields(ctx: ScenarioContext, timed: TimedCalls) -> dict[str, Any]:
    """The ``ScenarioRecord`` fields of a scenario measured by ``timed_calls``: every pass's time and throughput,
    the sizes, ``min_time_s``, peak memory and load averages."""
    passes = timed.passes
    return dict(
        repeats=len(passes),
        pass_s=[p.seconds for p in passes],
        pairs_per_s=[ctx.n_pairs / p.seconds for p in passes],
        tokens_per_s=[ctx.n_tokens / p.seconds for p in passes],
        pairs=ctx.n_pairs,
        tokens=ctx.n_tokens,
        min_time_s=ctx.min_time_s,
        min_time_reached=timed.min_time_reached,
        batch_size=ctx.backend.batch_size,
        peak_memory_mb=ctx.backend.peak_memory_mb(),
        load_avg_before=timed.load_before,
        load_avg_after=timed.load_after,
    )
