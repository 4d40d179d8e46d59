"""One run merged from its shards (``harness.results.merge``): quality exactly, speed pooled pass by pass."""

from __future__ import annotations

from typing import Any

SHARD_ONLY = ("shard", "full_dataset_fingerprint")


def _protocol(parts: list[tuple[str, dict]]) -> dict[str, Any]:
    first = parts[0][1]["protocol"]
    protocol = {k: v for k, v in first.items() if k not in SHARD_ONLY}
    protocol["dataset_fingerprint"] = first.get("full_dataset_fingerprint")
    for key in ("n_queries", "n_pairs"):
        values = [run["protocol"].get(key) for _, run in parts]
        protocol[key] = sum(values) if all(isinstance(v, int) for v in values) else None
    return protocol


def _quality(parts: list[tuple[str, dict]]) -> tuple[dict, dict]:
    from .merge import mean_over_queries

    per_query: dict[str, dict[str, Any]] = {}
    for _, run in parts:
        for metric, values in run["per_query"].items():
            per_query.setdefault(metric, {}).update(values)
    per_query = {m: dict(sorted(v.items())) for m, v in per_query.items()}
    metrics = {m: mean_over_queries(per_query[m]) if m in per_query else None for m in parts[0][1]["metrics"]}
    return metrics, per_query


def _pooled_latency(samples: list[float]) -> dict[str, float] | None:
    if not samples:
        return None
    from ..scenarios.single_query import latency

    return latency(samples).model_dump()


def _split_passes(samples: list[float], per_pass: int, passes: int) -> list[list[float]]:
    return [samples[k * per_pass : (k + 1) * per_pass] for k in range(passes)]


def _max(values: list) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _scenario(records: list[dict], passes: int, samples: list[float] | None) -> dict[str, Any]:
    first = records[0]
    pass_s = [sum(r["pass_s"][k] for r in records) for k in range(passes)]
    pairs, tokens = sum(r["pairs"] for r in records), sum(r["tokens"] for r in records)
    out = {
        **{k: v for k, v in first.items() if k != "verdict"},
        "repeats": passes,
        "pass_s": pass_s,
        "pairs_per_s": [pairs / s for s in pass_s],
        "tokens_per_s": [tokens / s for s in pass_s],
        "pairs": pairs,
        "tokens": tokens,
        "min_time_reached": all(r.get("min_time_reached") is not False for r in records),
        "repeats_agree": all(r.get("repeats_agree") is not False for r in records),
        "scores_agree": all(r.get("scores_agree") is not False for r in records),
    }
    for key in ("peak_memory_mb", "load_avg_before", "load_avg_after", "max_repeat_abs_diff", "max_abs_diff"):
        out[key] = _max([r.get(key) for r in records])
    for key in ("batches", "padded_tokens"):
        if first.get(key) is not None:
            out[key] = sum(r[key] for r in records)
    if first.get("batches") is not None:
        out["samples"] = out["batches"] * passes
    if samples is not None:
        out["samples"] = len(samples)
        out["latency_ms"] = _pooled_latency(samples)
    return {k: v for k, v in out.items() if v is not None}


def _speed(parts: list[tuple[str, dict]]) -> tuple[dict, dict | None, list[float], list[str]]:
    """(perf, scenarios, latency samples, warnings) pooled over the shards, pass by pass."""
    runs = [run for _, run in parts]
    names = list(runs[0].get("scenarios") or {})
    warnings = []
    scenarios: dict[str, Any] = {}
    samples: list[float] = []
    for name in names:
        records = [run["scenarios"][name] for run in runs]
        passes = min(r["repeats"] for r in records)
        if any(r["repeats"] != passes for r in records):
            warnings.append(
                f"{name}: shards made {sorted({r['repeats'] for r in records})} passes; pooled over {passes}"
            )
        pooled = None
        if name == "single_query":
            split = [_split_passes(run["latency_samples_ms"], run["perf"]["queries"], passes) for run in runs]
            pooled = [x for k in range(passes) for shard in split for x in shard[k]]
            samples = pooled
        scenarios[name] = _scenario(records, passes, pooled)
    perfs = [run["perf"] for run in runs]
    perf = dict(perfs[0])
    for key in ("queries", "pairs", "tokens", "pairs_truncated"):
        if all(isinstance(p.get(key), int) for p in perfs):
            perf[key] = sum(p[key] for p in perfs)
    perf["mean_tokens_per_pair"] = perf["tokens"] / perf["pairs"] if perf.get("pairs") else None
    for key in ("peak_memory_mb", "peak_rss_mb", "load_s", "load_avg_before", "load_avg_after", "max_repeat_abs_diff"):
        perf[key] = _max([p.get(key) for p in perfs])
    single = scenarios.get("single_query")
    if single is not None:
        timed = sum(single["pass_s"])
        perf.update(
            pairs_per_s=single["repeats"] * single["pairs"] / timed,
            tokens_per_s=single["repeats"] * single["tokens"] / timed,
            latency_ms=single.get("latency_ms"),
            timed_s=timed,
            repeats=single["repeats"],
            pass_s=list(single["pass_s"]),
            repeats_identical=all(p.get("repeats_identical") is not False for p in perfs),
        )
    return perf, scenarios or None, samples, warnings


def merge_run(parts: list[tuple[str, dict]], measure: dict[str, Any], machines: int) -> dict[str, Any]:
    """The run of one (dataset, reranker) from each shard's (``"i/n"``, run), in shard order."""
    first = parts[0][1]
    run = {k: v for k, v in first.items() if k not in ("verdict",)}
    run["protocol"] = _protocol(parts)
    failed = [(shard, r) for shard, r in parts if r["status"] != "ok"]
    if failed:
        message = "; ".join(f"shard {shard}: {r.get('error')}" for shard, r in failed)
        return {
            **{k: v for k, v in run.items() if k not in ("perf", "scenarios", "latency_samples_ms", "system")},
            "status": "error",
            "error": message,
            "metrics": {},
            "per_query": {},
        }
    run["metrics"], run["per_query"] = _quality(parts)
    run["warnings"] = [f"shard {shard}: {w}" for shard, r in parts for w in r.get("warnings") or []]
    if first.get("perf") is None:  # the first stage
        return run
    run["perf"], run["scenarios"], run["latency_samples_ms"], notes = _speed(parts)
    run["warnings"] += notes
    if run["scenarios"]:
        from ..run.verdict import judge_run
        from ..suite.models import MeasureSpec

        run["verdict"] = judge_run(run["scenarios"], MeasureSpec(**measure))
        if machines > 1:
            run["verdict"]["status"] = "INVALID"
            run["verdict"]["reasons"].append(f"shards measured on {machines} machines: their times are pooled")
    return run
