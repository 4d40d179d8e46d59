"""What every scenario module gets and returns, and the one loop of timed passes they share.

* ``ScenarioContext``: the loaded backend, the dataset's queries with their pairs and token counts, the suite's
  ``measure:`` settings (``MeasureJob``), the scenario's options, a progress label.
* ``ScenarioOutcome``: the record stored in the results file (``harness.results.models.ScenarioRecord``) and the
  scores of every timed pass (one float32 array per query, in the dataset's order), which the worker checks.
* ``repeat_passes``: ``repeats`` timed passes, then more until their total reaches ``min_time_s``; bounded by
  ``max_repeats`` passes (the record then says ``min_time_reached: false`` and the verdict is INVALID).
"""

from __future__ import annotations

import gc
import os
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
