"""One run merged from its shards (``harness.results.merge``): quality exactly, speed pooled pass by pass.

Typed records in, typed records out (``Run``, ``Perf``, ``ScenarioRecord``, ``Protocol``); a merged record keeps
the keys its shards' records were given (``exclude_unset``), so a merged file reads like a measured one."""

from __future__ import annotations

import numpy as np

from .models import Latency, Perf, Protocol, Run, ScenarioRecord, single_query_perf
from ..scenarios import OFFLINE, SINGLE_QUERY

SHARD_ONLY = ("shard", "full_dataset_fingerprint")
POOLED_SCENARIOS = (SINGLE_QUERY, OFFLINE)  # whose passes add up across shards
POOLED_MAX = ("peak_memory_mb", "load_avg_before", "load_avg_after", "max_repeat_abs_diff", "max_abs_diff")


def _given(record) -> dict:
    return record.model_dump(exclude_unset=True)


def _protocol(runs: list[Run]) -> Protocol:
    first = runs[0].protocol
    data = {k: v for k, v in _given(first).items() if k not in SHARD_ONLY}
    data["dataset_fingerprint"] = first.full_dataset_fingerprint
    for key in ("n_queries", "n_pairs"):
        values = [getattr(run.protocol, key) for run in runs]
        data[key] = sum(values) if all(isinstance(v, int) for v in values) else None
    return Protocol.model_validate(data)


def mean_over_queries(values: dict[str, float | None]) -> float | None:
    """A metric's mean as ``harness.metrics.evaluate`` takes it: over the judged queries in qid order."""
    ordered = [values[q] for q in sorted(values)]
    if any(v is None for v in ordered):
        return None
    return float(np.mean(ordered))


def _quality(runs: list[Run]) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]]]:
    per_query: dict[str, dict[str, float | None]] = {}
    for run in runs:
        for metric, values in run.per_query.items():
            per_query.setdefault(metric, {}).update(values)
    per_query = {m: dict(sorted(v.items())) for m, v in per_query.items()}
    metrics = {m: mean_over_queries(per_query[m]) if m in per_query else None for m in runs[0].metrics}
    return metrics, per_query


def _latency(samples: list[float]) -> Latency | None:
    if not samples:
        return None
    from ..scenarios.single_query import latency

    return latency(samples)


def _max(values: list):
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _scenario(records: list[ScenarioRecord], passes: int, samples: list[float] | None) -> ScenarioRecord:
    first = records[0]
    pass_s = [sum(r.pass_s[k] for r in records) for k in range(passes)]
    pairs, tokens = sum(r.pairs for r in records), sum(r.tokens for r in records)
    data = {k: v for k, v in _given(first).items() if k != "verdict"}
    data.update(
        repeats=passes,
        pass_s=pass_s,
        pairs_per_s=[pairs / s for s in pass_s],
        tokens_per_s=[tokens / s for s in pass_s],
        pairs=pairs,
        tokens=tokens,
        min_time_reached=all(r.min_time_reached is not False for r in records),
        repeats_agree=all(r.repeats_agree is not False for r in records),
        scores_agree=all(r.scores_agree is not False for r in records),
    )
    data.update({key: _max([getattr(r, key) for r in records]) for key in POOLED_MAX})
    if first.batches is not None:
        data.update(batches=sum(r.batches for r in records), padded_tokens=sum(r.padded_tokens or 0 for r in records))
        data["samples"] = data["batches"] * passes
    if samples is not None:
        data.update(samples=len(samples), latency_ms=_latency(samples))
    return ScenarioRecord.model_validate({k: v for k, v in data.items() if v is not None})


def _pooled_scenarios(runs: list[Run]) -> tuple[dict[str, ScenarioRecord], list[float], list[str]]:
    """Each scenario pooled pass by pass over the passes every shard made; single_query's samples interleaved
    as a measured run keeps them (pass 1 of every shard, then pass 2, ...)."""
    scenarios: dict[str, ScenarioRecord] = {}
    samples: list[float] = []
    warnings = []
    for name in runs[0].scenarios or {}:
        if name not in POOLED_SCENARIOS:  # e.g. server: a load level per shard is not one of the whole dataset
            warnings.append(f"{name}: not pooled across shards (its figures are in the shard files)")
            continue
        records = [run.scenarios[name] for run in runs]
        passes = min(r.repeats for r in records)
        if any(r.repeats != passes for r in records):
            made = sorted({r.repeats for r in records})
            warnings.append(f"{name}: shards made {made} passes; pooled over {passes}")
        pooled = None
        if name == SINGLE_QUERY:
            per_pass = [run.perf.queries for run in runs]
            pooled = [
                x
                for k in range(passes)
                for run, n in zip(runs, per_pass)
                for x in run.latency_samples_ms[k * n : (k + 1) * n]
            ]
            samples = pooled
        scenarios[name] = _scenario(records, passes, pooled)
    return scenarios, samples, warnings


def _perf(runs: list[Run], scenarios: dict[str, ScenarioRecord]) -> Perf:
    perfs = [run.perf for run in runs]
    data = _given(perfs[0])
    for key in ("queries", "pairs", "tokens", "pairs_truncated"):
        values = [getattr(p, key) for p in perfs]
        if all(isinstance(v, int) for v in values):
            data[key] = sum(values)
    data["mean_tokens_per_pair"] = data["tokens"] / data["pairs"] if data.get("pairs") else None
    for key in ("peak_memory_mb", "peak_rss_mb", "load_s", "load_avg_before", "load_avg_after", "max_repeat_abs_diff"):
        data[key] = _max([getattr(p, key) for p in perfs])
    single = scenarios.get(SINGLE_QUERY)
    if single is not None:
        data.update(single_query_perf(single), repeats_identical=all(p.repeats_identical is not False for p in perfs))
    return Perf.model_validate(data)


def merge_run(parts: list[tuple[str, Run]], measure, machines: int) -> Run:
    """The run of one (dataset, reranker) from each shard's (``"i/n"``, run), in shard order; ``measure`` is the
    suite's ``harness.suite.MeasureSpec`` (the verdict is judged again on the pooled figures)."""
    from ..run.shard import EMPTY_SHARD
    from ..run.verdict import judge_records

    everyone = [run for _, run in parts]  # the protocol counts every shard (an empty one adds 0 queries)
    kept = [(shard, run) for shard, run in parts if not (run.error or "").startswith(EMPTY_SHARD)]
    parts = kept or parts[:1]
    runs = [run for _, run in parts]
    first = runs[0]
    base = {k: v for k, v in _given(first).items() if k not in ("verdict", "protocol")}
    failed = [(shard, run) for shard, run in parts if run.status != "ok"]
    if failed:
        keep = {k: v for k, v in base.items() if k not in ("perf", "scenarios", "latency_samples_ms", "system")}
        return Run.model_validate(
            {
                **keep,
                "protocol": _protocol(everyone),
                "status": "error",
                "error": "; ".join(f"shard {shard}: {run.error}" for shard, run in failed),
                "metrics": {},
                "per_query": {},
            }
        )
    metrics, per_query = _quality(runs)
    warnings = [f"shard {shard}: {w}" for shard, run in parts for w in run.warnings]
    merged = Run.model_validate(
        {**base, "protocol": _protocol(everyone), "metrics": metrics, "per_query": per_query, "warnings": warnings}
    )
    if first.perf is None:  # the first stage
        return merged
    scenarios, samples, notes = _pooled_scenarios(runs)
    merged.perf, merged.latency_samples_ms = _perf(runs, scenarios), samples
    merged.warnings = warnings + notes
    if scenarios:
        merged.verdict, merged.scenarios = judge_records(scenarios, measure)
        if machines > 1:
            merged.verdict.status = "INVALID"
            merged.verdict.reasons.append(f"shards measured on {machines} machines: their times are pooled")
    return merged
