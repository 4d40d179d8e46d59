"""The harness ``server`` scenario (MLPerf Server) and its asyncio + httpx load generator, against servers the
tests start on 127.0.0.1: counts checked against the server's own Prometheus counters, scores against the
in-process model, the MLPerf validity rule, and the server the harness starts itself (started, stopped, crash
recorded)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, bert_cross_encoder

from harness.backends import load_backend
from harness.results import load_results
from harness.run.executor import run_suite
from harness.scenarios import server as scenario
from harness.scenarios.base import QueryPairs, ScenarioContext
from harness.suite import suite_from_dict
from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.serve import ServeSettings
from mlx_cross_encoder.serve.testing import running_server

SMOKE = Path(__file__).parents[2] / "suites" / "data" / "smoke"
LENIENT = {"min_samples": 1, "max_cv": 1e9, "max_load_per_core": 1e9}


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("scenario_bert"), seed=1, initializer_range=0.5)


def queries(n: int = 4) -> list[QueryPairs]:
    return [QueryPairs(f"q{i}", [(QUERIES[i], d) for d in DOCUMENTS], np.full(len(DOCUMENTS), 10)) for i in range(n)]


def http_ctx(url: str, bert_dir, **options) -> ScenarioContext:
    spec = SimpleNamespace(
        name="tiny",
        backend="http",
        model=str(bert_dir),
        dtype=None,
        batch_size=8,
        max_length=128,
        device="auto",
        instruction=None,
        options={"url": url, "shape": "cohere"},
    )
    backend = load_backend(spec, 128, bert_dir)
    return ScenarioContext(
        backend=backend, queries=queries(), repeats=1, min_time_s=0, max_repeats=1, warmup_queries=0, options=options
    )


def counter(url: str, route: str = "/v2/rerank") -> float:
    text = httpx.get(f"{url}/metrics").text
    m = re.search(rf'^rerank_requests_total{{route="{route}",status="200"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


class Slow:
    """A real model that takes at least ``seconds`` per predict call (to hold a server below a request rate)."""

    def __init__(self, model, seconds: float):
        self.model, self.seconds = model, seconds

    def predict(self, pairs, batch_size=32):
        time.sleep(self.seconds)
        return self.model.predict(pairs, batch_size=batch_size)


def test_closed_loop_levels_count_every_request_and_score_as_in_process(bert_dir):
    with running_server({"tiny": lambda: MLXCrossEncoder(bert_dir)}, ServeSettings(max_queue=64)) as url:
        before = counter(url)
        ctx = http_ctx(f"{url}/v2/rerank", bert_dir, concurrency=[1, 8], duration_s=1.0, warmup_s=0.3, p99_ms=1e7)
        out = scenario.measure(ctx)
        answered = counter(url) - before
    rec = out.record.model_dump()
    local = MLXCrossEncoder(bert_dir)
    for q, scores in zip(ctx.queries, out.passes[0]):
        np.testing.assert_allclose(scores, local.predict(q.pairs), rtol=1e-5, atol=1e-6)
    levels = rec["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 8] and rec["repeats"] == 2
    assert all(lv["status"] == "VALID" and lv["ok"] == lv["requests"] > 0 for lv in levels), levels
    assert rec["invalid_reasons"] == [] and rec["max_abs_diff_under_load"] < 1e-5
    # every request the generator counted (plus the sequential pass and the warm-ups) is one the server answered
    assert answered >= len(ctx.queries) + sum(lv["requests"] for lv in levels)
    for lv in levels:
        assert lv["achieved_qps"] == pytest.approx(lv["ok"] / lv["span_s"])
    assert rec["pairs_per_s"][1] == pytest.approx(levels[1]["ok"] * len(DOCUMENTS) / levels[1]["span_s"])


def test_open_loop_issues_the_scheduled_count_and_the_mlperf_rule_judges_it(bert_dir):
    slow = Slow(MLXCrossEncoder(bert_dir), seconds=0.25)
    settings = ServeSettings(max_queue=256, max_batch_pairs=len(DOCUMENTS))  # no merging: <= 4 requests/s
    with running_server({"tiny": lambda: MLXCrossEncoder(bert_dir), "slow": lambda: slow}, settings) as url:
        before = counter(url)
        easy = scenario.measure(
            http_ctx(
                f"{url}/v2/rerank", bert_dir, target_qps=4, duration_s=2.0, warmup_s=0.5, p99_ms=1e7, rate_tolerance=0.5
            )
        )
        windows = counter(url) - before - 4  # less the sequential pass
        tight = scenario.measure(
            http_ctx(f"{url}/v2/rerank", bert_dir, target_qps=4, duration_s=1.0, warmup_s=0, p99_ms=1e-3)
        )
        # 16 requests/s for 0.5 s against <= 4 answered a second: 8 requests, drained in about 2 s
        ctx = http_ctx(f"{url}/v2/rerank", bert_dir, target_qps=16, duration_s=0.5, warmup_s=0, p99_ms=1e7)
        ctx.backend.remote_model = "slow"
        overloaded = scenario.measure(ctx)
    level = easy.record.levels[0]
    assert level["requests"] == round(4 * 2.0) and windows == round(4 * 0.5) + round(4 * 2.0)
    assert level["status"] == "VALID", level
    assert any("p99 latency" in r for r in tight.record.levels[0]["reasons"])
    assert any("achieved" in r for r in overloaded.record.levels[0]["reasons"]), overloaded.record.levels[0]
    assert overloaded.record.invalid_reasons and overloaded.record.invalid_reasons[0].startswith("target_qps 16: ")


def test_no_latency_bound_is_never_valid(bert_dir):
    with running_server({"tiny": lambda: MLXCrossEncoder(bert_dir)}) as url:
        out = scenario.measure(http_ctx(f"{url}/v2/rerank", bert_dir, concurrency=2, duration_s=0.5, warmup_s=0))
    assert any("no p99_ms" in r for r in out.record.invalid_reasons)


def mlx_ctx(model_dir, **options) -> ScenarioContext:
    job = SimpleNamespace(
        reranker={"name": "tiny", "instruction": None, "options": {}}, model_dir=str(model_dir), max_length=64
    )
    backend = SimpleNamespace(name="mlx", dtype="float32", batch_size=8)
    return ScenarioContext(
        backend=backend,
        queries=queries(2),
        repeats=1,
        min_time_s=0,
        max_repeats=1,
        warmup_queries=0,
        options=options,
        job=job,
    )


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_started_server_is_stopped_after_and_its_death_is_reported(bert_dir):
    with scenario.started_server(mlx_ctx(bert_dir)) as ep:
        pid = ep.started["pid"]
        assert httpx.post(ep.url, json={"model": "tiny", "query": "q", "documents": ["a b"]}).status_code == 200
    assert pid_gone(pid)  # stopped and reaped
    with pytest.raises(scenario.ServerCrash, match="died during the load with status -9"):
        with scenario.started_server(mlx_ctx(bert_dir)) as ep:
            os.kill(ep.started["pid"], signal.SIGKILL)
            threading.Event().wait(0.5)
    with pytest.raises(scenario.ServerCrash, match="exited with status .* before answering /health"):
        with scenario.started_server(mlx_ctx(bert_dir.parent / "no-such-model")):
            pass


def test_harness_run_with_backend_mlx_starts_the_server_and_records_levels(tmp_path, bert_dir):
    data = {
        "name": "serve-test",
        "metrics": ["ndcg@10"],
        "datasets": [
            {
                "name": "smoke",
                "candidates": str(SMOKE / "candidates.json"),
                "qrels": str(SMOKE / "qrels.txt"),
                "top_k": 5,
            }
        ],
        "rerankers": [{"name": "tiny", "backend": "mlx", "model": str(bert_dir), "batch_size": 8}],
        "measure": {
            "warmup_queries": 0,
            "repeats": 1,
            "scenarios": ["single_query", "server"],
            **LENIENT,
            "scenario_options": {"server": {"concurrency": [2], "duration_s": 1.0, "warmup_s": 0.2, "p99_ms": 1e7}},
        },
    }
    suite = suite_from_dict(data, tmp_path, source="test")
    run_suite(suite, output=tmp_path / "r.json", progress=False, environment={"chip": {"name": "test"}})
    run = next(r for r in load_results(tmp_path / "r.json")["runs"] if r["reranker"] == "tiny")
    assert run["status"] == "ok", run.get("error")
    rec = run["scenarios"]["server"]
    command = rec["endpoint"]["started"]["command"]
    assert command[3:5] == ["serve", "--model"]
    assert command[command.index("--timeout") + 1] == "60.0"  # the server's 504 limit is the client's timeout_s
    assert rec["levels"][0]["ok"] > 0 and rec["scores_agree"] and rec["verdict"]["status"] == "VALID"
