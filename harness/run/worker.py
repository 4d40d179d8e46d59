"""Measure one reranker on one dataset, alone in its own process: ``python -m harness.run.worker JOB.json RESULT.json``.

The parent (``harness.run.executor``, through ``harness.run.spawn``) writes the job: the reranker's settings, the resolved model directory and
``max_length``, and a file with the dataset's candidates (the parent loads every dataset once; workers never
see qrels). The worker:

1. loads the backend (load time recorded apart);
2. counts input tokens per query with the model's own tokenizer (untimed);
3. warms up on the first ``warmup_queries`` queries (untimed);
4. resets peak memory, then for ``repeats`` passes reranks every query's candidates as one ``predict`` call,
   each call timed with ``time.perf_counter()``;
5. writes scores (first pass), raw latency samples and throughput to RESULT.json.

A Python exception is written to RESULT.json as ``{"status": "error", ...}``; a crash or kill leaves no result and
the parent reports the exit status instead. Progress goes to stderr.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Installs the import hook that loads the optimized BLAS right before mlx.core, whoever imports it later in this
# worker (the import itself loads no MLX, so torch workers are unaffected).
import mlx_cross_encoder  # noqa: F401

TRACEBACK_LINES = 20


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
    progress: bool = True


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


def percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples, dtype=np.float64)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "mean": float(arr.mean()),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def timed_passes(backend, pairs: list, repeats: int, label: str, progress: bool) -> tuple[list[float], list]:
    """``repeats`` passes over every query, one timed ``predict`` per query: (latency samples ms, scores per pass)."""
    from tqdm.auto import tqdm

    gc.collect()
    backend.reset_peak_memory()
    samples_ms: list[float] = []
    passes: list[list[np.ndarray]] = []
    bar = tqdm(total=repeats * len(pairs), desc=label, unit="q", file=sys.stderr, disable=not progress)
    for _ in range(repeats):
        scores = []
        for p in pairs:
            t0 = time.perf_counter()
            s = backend.predict(p, backend.batch_size)
            t1 = time.perf_counter()
            samples_ms.append((t1 - t0) * 1000.0)
            scores.append(s)
            bar.update(1)
        passes.append(scores)
    bar.close()
    return samples_ms, passes


def repeat_check(passes: list) -> tuple[bool, float, list[str]]:
    """Whether every pass gave bit-identical scores, the largest difference, and the warnings to record."""
    first = passes[0]
    diffs = [float(np.max(np.abs(a - b))) if len(a) else 0.0 for other in passes[1:] for a, b in zip(first, other)]
    identical = all(np.array_equal(a, b) for other in passes[1:] for a, b in zip(first, other))
    warnings = []
    if not identical:
        warnings.append(f"scores differ between repeats (max |diff| {max(diffs):.3g}); the first pass is evaluated")
    nonfinite = int(sum(int((~np.isfinite(s)).sum()) for s in first))
    if nonfinite:
        warnings.append(f"{nonfinite} scores are not finite (NaN/inf)")
    return identical, max(diffs) if diffs else 0.0, warnings


def measure(raw_job: dict[str, Any]) -> dict[str, Any]:
    """Steps 1-5 of the module docstring for one job; the result the parent evaluates."""
    from tqdm.auto import tqdm

    from .. import backends

    job = MeasureJob.model_validate(raw_job)
    data = json.loads(Path(job.dataset_file).read_text())
    queries = data["queries"]
    if not queries:
        raise ValueError(f"dataset {data['name']} has no queries with candidates")
    spec = SimpleNamespace(**job.reranker)
    label = f"{spec.name} · {data['name']}"

    start = time.perf_counter()
    backend = backends.load_backend(spec, job.max_length, job.model_dir, job.backend_module)
    load_s = time.perf_counter() - start

    pairs = [[(q["query"], text) for text in q["texts"]] for q in queries]
    tokens = [backend.token_counts(p) for p in pairs]
    n_pairs = sum(len(p) for p in pairs)
    n_tokens = int(sum(int(t.sum()) for t in tokens))
    truncated = int(sum(int((t >= backend.max_length).sum()) for t in tokens))

    warmup = min(job.warmup_queries, len(pairs))
    for p in tqdm(pairs[:warmup], desc=f"{label} warm-up", file=sys.stderr, disable=not job.progress, leave=False):
        backend.predict(p, backend.batch_size)

    load_before = os.getloadavg()[0]
    samples_ms, passes = timed_passes(backend, pairs, job.repeats, label, job.progress)
    load_after = os.getloadavg()[0]
    timed_s = sum(samples_ms) / 1000.0
    n_q = len(pairs)
    pass_s = [sum(samples_ms[i * n_q : (i + 1) * n_q]) / 1000.0 for i in range(job.repeats)]
    identical, max_diff, warnings = repeat_check(passes)
    perf = {
        "pairs_per_s": job.repeats * n_pairs / timed_s,
        "tokens_per_s": job.repeats * n_tokens / timed_s,
        "latency_ms": percentiles(samples_ms),
        "peak_memory_mb": backend.peak_memory_mb(),
        "peak_rss_mb": peak_rss_mb(),
        "load_s": load_s,
        "timed_s": timed_s,
        "queries": len(pairs),
        "pairs": n_pairs,
        "tokens": n_tokens,
        "mean_tokens_per_pair": n_tokens / n_pairs,
        "pairs_truncated": truncated,
        "warmup_queries": warmup,
        "repeats": job.repeats,
        "repeats_identical": identical,
        "max_repeat_abs_diff": max_diff,
        "batch_size": backend.batch_size,
        "pass_s": pass_s,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "cpu_count": os.cpu_count(),
    }
    return {
        "status": "ok",
        "device": backend.device,
        "system": backend.describe(),
        "scores": {q["qid"]: [float(x) for x in s] for q, s in zip(queries, passes[0])},
        "perf": perf,
        "latency_samples_ms": samples_ms,
        "warnings": warnings,
    }


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
    except Exception as exc:  # recorded for the parent; crashes and kills are seen by it as exit statuses
        result = error_result(exc)
        code = 1
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, allow_nan=True))
    tmp.replace(result_file)
    return code


def main(argv: list[str] | None = None) -> int:
    return worker_main(argv, measure, "python -m harness.run.worker JOB.json RESULT.json")


if __name__ == "__main__":
    sys.exit(main())
