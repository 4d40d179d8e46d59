"""Measurement scenarios, declared once: suite validation (``measure.scenarios``), ``harness list`` and the
measuring worker read this registry.

A scenario is a module with ``measure(ctx: harness.scenarios.base.ScenarioContext) ->
harness.scenarios.base.ScenarioOutcome``. The worker loads the backend once, counts tokens, then runs each of
the suite's ``measure.scenarios`` in order on that backend; each scenario does its own untimed warm-up and its
timed passes (``base.repeat_passes``: ``repeats`` passes, more until ``min_time_s`` is reached, never more than
``max_repeats``), and returns its stored record (``harness.results.models.ScenarioRecord``) and the scores of
every pass. The worker compares every pass of every scenario with the first scenario's first pass (the scores
that are evaluated: quality is computed once). Options of a scenario come from the suite's
``measure.scenario_options: {NAME: {...}}``, checked against ``ScenarioInfo.options``, and reach it as
``ctx.options``.

This module imports nothing heavy (the parent and the suite validator read it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScenarioInfo:
    name: str
    module: str  # implements measure(ctx: ScenarioContext) -> ScenarioOutcome
    description: str
    options: frozenset[str] = frozenset()  # keys accepted in measure.scenario_options[name]


SINGLE_QUERY = "single_query"  # the default scenario, the one older results files measured (readers use the name)
OFFLINE = "offline"
SERVER = "server"

SCENARIOS: dict[str, ScenarioInfo] = {
    SINGLE_QUERY: ScenarioInfo(
        name=SINGLE_QUERY,
        module="harness.scenarios.single_query",
        description="one predict call per query's top-k candidates (latency p50/p90/p99 per query)",
    ),
    OFFLINE: ScenarioInfo(
        name=OFFLINE,
        module="harness.scenarios.offline",
        description="every pair of the dataset in length-sorted batches across queries "
        "(mlx_cross_encoder.base.length_sorted_batches; throughput pairs/s, tokens/s)",
    ),
    SERVER: ScenarioInfo(
        name=SERVER,
        module="harness.scenarios.server",
        description="MLPerf Server: requests at a target rate or from N clients over HTTP (backend http, or mlx: "
        "the harness starts mlx-cross-encoder serve); queries/s, p50/p90/p99; VALID when p99 and rate hold",
        options=frozenset(
            {
                "concurrency",
                "target_qps",
                "duration_s",
                "warmup_s",
                "p99_ms",
                "rate_tolerance",
                "timeout_s",
                "seed",
                "startup_timeout_s",
                "max_batch_pairs",
                "max_queue",
            }
        ),
    ),
}

DEFAULT_SCENARIOS = (SINGLE_QUERY,)


def scenario_module(name: str) -> str:
    """The module implementing scenario ``name``; ValueError naming the known ones otherwise."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return SCENARIOS[name].module
