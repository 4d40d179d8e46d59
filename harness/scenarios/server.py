"""``server``: MLPerf's Server scenario for rerank services. Requests (one query x its candidates each) arrive at a
target rate (open loop) or from a number of concurrent clients (closed loop) for ``duration_s`` after a
``warmup_s`` that is not counted (``harness.scenarios.loadgen``: asyncio + httpx). Reports achieved queries/s
and latency p50/p90/p99 per load level. A level is VALID only when every request was answered 200, the p99
latency is within ``p99_ms`` and (open loop) the achieved rate is within ``rate_tolerance`` of ``target_qps``.

Which server:

* ``backend: http``: the reranker's endpoint (``url``, ``shape``, key as the backend reads them).
* ``backend: mlx``: the harness starts ``mlx-cross-encoder serve`` itself on a free 127.0.0.1 port, as a child in
  its own process group (killed with the worker if that dies), with the run's model folder, ``max_length``,
  dtype and batch size, and the scenario's ``timeout_s`` as its request timeout; waits for ``/health``; stops it
  after. A server that dies is an error run carrying its
  exit status and the tail of its log.

Options (``measure.scenario_options.server``): ``concurrency`` (an int or a list of levels) or ``target_qps``
(a number or a list), ``duration_s`` (10), ``warmup_s`` (2), ``p99_ms`` (the latency bound; without it no level
is VALID), ``rate_tolerance`` (0.05), ``timeout_s`` (per request, 60), ``seed`` (0), ``startup_timeout_s``
(300), ``max_batch_pairs`` / ``max_queue`` (for the started server). Before the load, every query is scored once,
sequentially (untimed): those are the scores the worker evaluates; answers under load are compared with them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..results.models import ScenarioRecord
from . import SERVER
from .base import ScenarioContext, ScenarioOutcome, load_average
from .loadgen import LoadGenerator, LoadResult, run_load
from .single_query import latency

LOG_TAIL_LINES = 30


class ServerCrash(RuntimeError):
    """The server the harness started died (before answering /health, or during the load)."""


@dataclass
class Endpoint:
    url: str
    shape: str
    model: str | None
    headers: dict[str, str]
    started: dict[str, Any] | None = None  # the command line and pid of a server the harness started


def _die_with_parent() -> None:  # runs in the child before exec: own process group, killed with the worker
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


@contextlib.contextmanager
def started_server(ctx: ScenarioContext) -> Iterator[Endpoint]:
    """``mlx-cross-encoder serve`` for the run's model on a free 127.0.0.1 port; stopped (process group) after.
    Raises :class:`ServerCrash` when it exits before answering ``/health`` or while the load runs."""
    import httpx

    from mlx_cross_encoder.serve.testing import free_port

    spec, opts = ctx.job.reranker, ctx.options
    if spec.get("instruction") or spec.get("options"):
        raise ValueError(
            "scenario server with backend mlx starts mlx-cross-encoder serve, which takes no instruction "
            "and no backend options; remove them (or measure a server you start, with backend http)"
        )
    name, port = spec["name"], free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlx_cross_encoder.cli",
        "serve",
        "--model",
        f"{name}={ctx.job.model_dir}",
        "--max-length",
        str(ctx.job.max_length),
        "--dtype",
        ctx.backend.dtype,
        "--batch-size",
        str(ctx.backend.batch_size),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # the server's own request timeout (504) is the client's: a level measures the server, not its default limit
    cmd += ["--timeout", str(float(opts.get("timeout_s", 60)))]
    for key in ("max_batch_pairs", "max_queue"):
        if key in opts:
            cmd += [f"--{key.replace('_', '-')}", str(int(opts[key]))]
    log = Path(tempfile.mkstemp(prefix="rerank-server-", suffix=".log")[1])
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + float(opts.get("startup_timeout_s", 300))
        while True:
            if proc.poll() is not None:
                raise ServerCrash(
                    f"the server exited with status {proc.returncode} before answering /health "
                    f"({' '.join(cmd)}); log tail:\n{_tail(log)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise ServerCrash(
                    f"the server did not answer /health within {opts.get('startup_timeout_s', 300)} s; "
                    f"log tail:\n{_tail(log)}"
                )
            time.sleep(0.2)
        yield Endpoint(f"{base}/v2/rerank", "cohere", name, {}, started={"command": cmd, "pid": proc.pid})
        if proc.poll() is not None:
            raise ServerCrash(f"the server died during the load with status {proc.returncode}; log tail:\n{_tail(log)}")
    finally:
        _stop(proc)
        log.unlink(missing_ok=True)


@contextlib.contextmanager
def endpoint(ctx: ScenarioContext) -> Iterator[Endpoint]:
    backend = ctx.backend
    if backend.name == "http":
        yield Endpoint(backend.url, backend.shape, backend.remote_model, dict(backend.headers))
    elif backend.name == "mlx":
        with started_server(ctx) as ep:
            yield ep
    else:
        raise ValueError(
            f"scenario server needs backend http (any server) or mlx (the harness starts "
            f"mlx-cross-encoder serve), not {backend.name!r}"
        )


def _levels(opts: dict[str, Any]) -> list[tuple[str, float]]:
    rate, conc = opts.get("target_qps"), opts.get("concurrency")
    if (rate is None) == (conc is None):
        raise ValueError("scenario server: give exactly one of options target_qps and concurrency")
    key, values = ("target_qps", rate) if rate is not None else ("concurrency", conc)
    values = values if isinstance(values, list) else [values]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 for v in values):
        raise ValueError(f"scenario server: {key} must be a positive number or a list of them, got {values!r}")
    return [(key, v) for v in values]


def judge_level(res: LoadResult, mode: str, value: float, opts: dict[str, Any]) -> list[str]:
    """The MLPerf Server rule for one level: the reasons it is INVALID (none: VALID)."""
    reasons = []
    if res.errors():
        reasons.append(f"{sum(res.errors().values())} of {len(res.samples)} requests failed: {res.errors()}")
    lat = res.latencies_ms()
    bound = opts.get("p99_ms")
    if bound is None:
        reasons.append("no p99_ms latency bound set: the Server scenario is VALID only under one")
    elif not lat or float(np.percentile(lat, 99)) > bound:
        p99 = f"{np.percentile(lat, 99):.1f}" if lat else "none answered"
        reasons.append(f"p99 latency {p99} ms > bound p99_ms {bound}")
    if mode == "target_qps":
        floor = (1 - float(opts.get("rate_tolerance", 0.05))) * value
        if res.achieved_qps < floor:
            reasons.append(f"achieved {res.achieved_qps:.3g} queries/s < {floor:.3g} ({value} target less tolerance)")
    return reasons


def _level_record(mode: str, value, res: LoadResult, reference, tol: dict, opts: dict[str, Any]) -> dict[str, Any]:
    """One load level's record: its figures, its answers against the sequential ones (within the dtype's
    tolerance), and VALID / INVALID with the reasons (``judge_level``)."""
    diffs = [float(np.max(np.abs(s.scores - reference[s.query]))) for s in res.ok]
    agree = all(np.allclose(s.scores, reference[s.query], **tol) for s in res.ok)
    why = judge_level(res, mode, value, opts) + (
        [] if agree else ["answers under load differ from the sequential answers beyond tolerance"]
    )
    lat = res.latencies_ms()
    return {
        mode: value,
        "requests": len(res.samples),
        "ok": len(res.ok),
        "errors": res.errors(),
        "achieved_qps": res.achieved_qps,
        "offered_qps": res.offered_qps,
        "span_s": res.span_s,
        "latency_ms": latency(lat).model_dump() if lat else None,
        "issue_lag_max_ms": res.issue_lag_ms(),
        "max_abs_diff_vs_sequential": max(diffs, default=0.0),
        "status": "INVALID" if why else "VALID",
        "reasons": why,
    }


def measure(ctx: ScenarioContext) -> ScenarioOutcome:
    from ..backends.http_backend import parse_scores, request_body
    from ..run.verdict import SCORE_TOLERANCE

    opts, levels = ctx.options, _levels(ctx.options)
    duration, warmup = float(opts.get("duration_s", 10)), float(opts.get("warmup_s", 2))
    tol = SCORE_TOLERANCE.get(ctx.backend.dtype, SCORE_TOLERANCE["float32"])
    with endpoint(ctx) as ep:
        bodies = [request_body(ep.shape, q.pairs[0][0], [t for _, t in q.pairs], ep.model) for q in ctx.queries]
        gen = LoadGenerator(
            ep.url,
            bodies,
            lambda payload, i: parse_scores(ep.shape, payload, len(ctx.queries[i].pairs)),
            ep.headers,
            float(opts.get("timeout_s", 60)),
        )
        reference = _score_once(gen)
        load_before = load_average()
        results = [
            run_load(
                gen,
                target_qps=v if k == "target_qps" else None,
                concurrency=int(v) if k == "concurrency" else None,
                warmup_s=warmup,
                duration_s=duration,
                seed=int(opts.get("seed", 0)),
            )
            for k, v in levels
        ]
        load_after = load_average()
    level_records = [
        _level_record(mode, value, res, reference, tol, opts) for (mode, value), res in zip(levels, results)
    ]
    reasons = [f"{mode} {value}: {r}" for (mode, value), rec in zip(levels, level_records) for r in rec["reasons"]]
    max_diff = max([0.0, *(rec["max_abs_diff_vs_sequential"] for rec in level_records)])
    n_pairs_per_query = [len(q.pairs) for q in ctx.queries]
    pairs_per_s = [sum(n_pairs_per_query[s.query] for s in r.ok) / r.span_s for r in results]
    tokens = [int(q.tokens.sum()) for q in ctx.queries]
    all_lat = results[0].latencies_ms() if len(results) == 1 else []
    record = ScenarioRecord(
        scenario=SERVER,
        repeats=len(results),
        pass_s=[duration for _ in results],
        pairs_per_s=pairs_per_s,
        tokens_per_s=[sum(tokens[s.query] for s in r.ok) / r.span_s for r in results],
        pairs=ctx.n_pairs,
        tokens=ctx.n_tokens,
        samples=sum(len(r.ok) for r in results),
        min_time_s=duration,
        min_time_reached=True,
        latency_ms=latency(all_lat) if all_lat else None,
        batch_size=ctx.backend.batch_size,
        load_avg_before=load_before,
        load_avg_after=load_after,
        cpu_count=os.cpu_count(),
        levels=level_records,
        invalid_reasons=reasons,
        max_abs_diff_under_load=max_diff,
        endpoint={"url": _public(ep.url), "shape": ep.shape, "model": ep.model, "started": ep.started},
        duration_s=duration,
        warmup_s=warmup,
        p99_ms=opts.get("p99_ms"),
        load_generator="asyncio + httpx (harness.scenarios.loadgen)",
    )
    return ScenarioOutcome(record=record, passes=[reference], latency_samples_ms=None)


def _public(url: str) -> str:
    from ..backends.http_backend import public_url

    return public_url(url)


def _score_once(gen: LoadGenerator) -> list[np.ndarray]:
    """Every body sent once, in order, untimed: the scores the worker evaluates (and a warm-up)."""
    import httpx

    out = []
    with httpx.Client(timeout=gen.timeout_s, headers=gen.headers) as http:
        for i, body in enumerate(gen.bodies):
            r = http.post(gen.url, json=body)
            if r.status_code != 200:
                raise RuntimeError(f"{_public(gen.url)} answered {r.status_code} to query {i}: {r.text[:300]}")
            out.append(gen.parse(r.json(), i))
    return out
