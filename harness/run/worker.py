"""Measure one reranker on one dataset, alone in its own process: ``python -m harness.run.worker JOB.json RESULT.json``.

The parent (``harness.run.executor``, through ``harness.run.spawn``) writes the job: the reranker's settings, the
resolved model directory and ``max_length``, and a file with the dataset's candidates (the parent loads every
dataset once; workers never see qrels). The worker:

1. loads the backend (load time recorded apart);
2. counts input tokens per query with the model's own tokenizer (untimed);
3. runs each of the suite's ``measure.scenarios`` in order (``harness.scenarios``: single_query, offline, ...),
   each with its own untimed warm-up, peak-memory reset and timed passes (``repeats``, more until
   ``min_time_s``, at most ``max_repeats``);
4. checks every pass's scores against the first scenario's first pass (the evaluated scores) within the
   dtype's tolerance (``harness.run.verdict.SCORE_TOLERANCE``);
5. writes the evaluated scores, each scenario's record, the single_query latency samples and ``perf`` to
   RESULT.json.

A Python exception (``sys.exit`` included) is written to RESULT.json as ``{"status": "error", ...}``; a crash or
kill leaves no result and the parent reports the exit status or signal and the tail of the output instead
(``harness.run.spawn.WorkerFailure``). Progress goes to stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Installs the import hook that loads the optimized BLAS right before mlx.core, whoever imports it later in this
# worker (the import itself loads no MLX, so torch workers are unaffected).
import mlx_cross_encoder  # noqa: F401

from ..results.models import Perf, ScenarioRecord, single_query_perf
from ..scenarios import SINGLE_QUERY
from .verdict import SCORE_TOLERANCE, score_check

TRACEBACK_LINES = 20


class MeasureResult(BaseModel):
    """What a measuring worker returns when it measured (failures are ``error_result`` / ``spawn`` dicts)."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["ok"] = "ok"
    device: str
    system: dict[str, Any]  # the backend's describe(): each backend adds its own provenance keys
    scores: dict[str, list[float]]  # qid -> the evaluated scores (the first scenario's first pass), NaN kept
    perf: Perf
    scenarios: dict[str, ScenarioRecord]
    latency_samples_ms: list[float]  # single_query's timed calls ([] without it)
    warnings: list[str] = Field(default_factory=list)


class MeasureJob(BaseModel):
    """What the parent hands a measuring worker (JSON file): the reranker as resolved once in the parent."""

    model_config = ConfigDict(extra="forbid")
    reranker: dict[str, Any]  # harness.suite.RerankerSpec as JSON
    backend_module: str  # the module implementing the backend (the parent's registry decides)
    model_dir: str  # the resolved checkpoint folder every backend loads
    max_length: int  # the truncation length, resolved once for every backend
    dataset_file: str  # queries and candidate texts (no qrels), written by the parent
    warmup_queries: int = Field(ge=0)
    repeats: int = Field(ge=1)
    min_time_s: float = Field(0.0, ge=0)
    max_repeats: int = Field(100, ge=1)
    scenarios: list[str] = Field(default_factory=lambda: [SINGLE_QUERY], min_length=1)
    scenario_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    progress: bool = True
    suite_file: str | None = None  # named in errors about the reranker's suite fields


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far, in MiB (model loading included)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        try:
            import psutil

            info = psutil.Process().memory_info()
            return getattr(info, "peak_wset", info.rss) / 2**20
        except Exception:
            return None


def _measure_scenarios(job: MeasureJob, ctx_args: dict[str, Any]) -> dict[str, Any]:
    """Each of ``job.scenarios`` in order (``harness.scenarios``): name -> ScenarioOutcome."""
    from ..scenarios import scenario_module
    from ..scenarios.base import ScenarioContext

    outcomes = {}
    for name in job.scenarios:
        module = importlib.import_module(scenario_module(name))
        ctx = ScenarioContext(**ctx_args, options=dict(job.scenario_options.get(name, {})))
        outcomes[name] = module.measure(ctx)
    return outcomes


def _check_scores(outcomes: dict[str, Any], dtype: str) -> list[np.ndarray]:
    """Every scenario's passes against its own first pass and against the evaluated scores (the first scenario's
    first pass), within the dtype's tolerance; the figures go on each record. Returns the evaluated scores."""
    reference = next(iter(outcomes.values())).passes[0]
    for out in outcomes.values():
        rec = out.record
        rec.max_repeat_abs_diff, rec.repeats_agree = score_check(out.passes[1:], out.passes[0], dtype)
        rec.max_abs_diff, rec.scores_agree = score_check(out.passes, reference, dtype)
        rec.score_tolerance = dict(SCORE_TOLERANCE.get(dtype, SCORE_TOLERANCE["float32"]))
        rec.cpu_count = os.cpu_count()
    return reference


def _perf(outcomes: dict[str, Any], common: dict[str, Any]) -> Perf:
    """The run's ``perf``: what every scenario shares, and the single_query figures (null without it)."""
    peaks = [o.record.peak_memory_mb for o in outcomes.values() if o.record.peak_memory_mb is not None]
    shared = {**common, "peak_memory_mb": max(peaks) if peaks else None, "cpu_count": os.cpu_count()}
    single = outcomes.get(SINGLE_QUERY)
    if single is None:
        return Perf(**shared, pairs_per_s=None, tokens_per_s=None, latency_ms=None)
    rec = single.record
    identical = all(np.array_equal(a, b) for other in single.passes[1:] for a, b in zip(single.passes[0], other))
    return Perf(
        **shared,
        **single_query_perf(rec),
        repeats_identical=identical,
        max_repeat_abs_diff=rec.max_repeat_abs_diff,
        load_avg_before=rec.load_avg_before,
        load_avg_after=rec.load_avg_after,
    )


def measure(raw_job: dict[str, Any]) -> dict[str, Any]:
    """Steps 1-5 of the module docstring for one job; the result the parent evaluates."""
    from .. import backends
    from ..scenarios.base import QueryPairs

    job = MeasureJob.model_validate(raw_job)
    data = json.loads(Path(job.dataset_file).read_text())
    queries = data["queries"]
    if not queries:
        raise ValueError(f"dataset {data['name']} has no queries with candidates")
    spec = SimpleNamespace(**job.reranker, suite_file=job.suite_file)

    start = time.perf_counter()
    backend = backends.load_backend(spec, job.max_length, job.model_dir, job.backend_module)
    load_s = time.perf_counter() - start

    prepared = []
    for q in queries:
        pairs = [(q["query"], text) for text in q["texts"]]
        prepared.append(QueryPairs(qid=q["qid"], pairs=pairs, tokens=np.asarray(backend.token_counts(pairs))))
    n_pairs = sum(len(q.pairs) for q in prepared)
    n_tokens = int(sum(int(q.tokens.sum()) for q in prepared))
    warmup = min(job.warmup_queries, len(prepared))
    ctx_args = {
        "backend": backend,
        "queries": prepared,
        "repeats": job.repeats,
        "min_time_s": job.min_time_s,
        "max_repeats": job.max_repeats,
        "warmup_queries": warmup,
        "job": job,
        "label": f"{spec.name} · {data['name']}",
        "progress": job.progress,
    }
    outcomes = _measure_scenarios(job, ctx_args)
    reference = _check_scores(outcomes, backend.dtype)
    common = {
        "peak_rss_mb": peak_rss_mb(),
        "load_s": load_s,
        "queries": len(prepared),
        "pairs": n_pairs,
        "tokens": n_tokens,
        "mean_tokens_per_pair": n_tokens / n_pairs,
        "pairs_truncated": int(sum(int((q.tokens >= backend.max_length).sum()) for q in prepared)),
        "warmup_queries": warmup,
        "batch_size": backend.batch_size,
    }
    warnings = [
        f"{name}: scores differ beyond the {backend.dtype} tolerance (max |diff| {o.record.max_abs_diff:.3g}); "
        f"the first pass of {job.scenarios[0]} is evaluated"
        for name, o in outcomes.items()
        if o.record.scores_agree is False
    ]
    system = backend.describe()
    if backend.dtype == backends.TF32 and system.get("float32_matmul", backends.TF32) != backends.TF32:
        warnings.append(f"dtype tf32 ran as full float32: {backend.device} has no TF32 units (system.float32_matmul)")
    nonfinite = int(sum(int((~np.isfinite(s)).sum()) for s in reference))
    if nonfinite:
        warnings.append(f"{nonfinite} scores are not finite (NaN/inf)")
    single = outcomes.get(SINGLE_QUERY)
    result = MeasureResult(
        status="ok",
        device=backend.device,
        system=system,
        scores={q.qid: [float(x) for x in s] for q, s in zip(prepared, reference)},
        perf=_perf(outcomes, common),
        scenarios={name: o.record for name, o in outcomes.items()},
        latency_samples_ms=single.latency_samples_ms if single is not None else [],
        warnings=warnings,
    )
    return result.model_dump(exclude_unset=True)  # python floats: NaN scores reach the parent as NaN


def die_with_parent() -> None:
    """Linux: the kernel kills this worker when the harness process dies, even by SIGKILL (no orphan left
    measuring or holding memory). Elsewhere the parent's signal handlers kill the worker's process group."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import os
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def error_result(exc: BaseException) -> dict[str, Any]:
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    return {
        "status": "error",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "\n".join(tail[-TRACEBACK_LINES:]),
    }


def worker_main(argv: list[str] | None, work, usage: str) -> int:
    """Shared entry of the worker processes: ``JOB.json RESULT.json`` in, ``work(job) -> result`` run, the result
    (or the exception, as ``error_result``) written atomically; exit status 0 / 1 / 2 (usage)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    job_file, result_file = map(Path, argv)
    die_with_parent()
    try:
        result = work(json.loads(job_file.read_text()))
        code = 0
    except (Exception, SystemExit) as exc:  # recorded for the parent (a library's sys.exit too); crashes and kills
        result = error_result(exc)  # are seen by the parent as exit statuses
        code = 1
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, allow_nan=True))
    tmp.replace(result_file)
    return code


def main(argv: list[str] | None = None) -> int:
    return worker_main(argv, measure, "python -m harness.run.worker JOB.json RESULT.json")


if __name__ == "__main__":
    sys.exit(main())
