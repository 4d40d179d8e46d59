"""Planted regressions measured by the real harness (worker processes, results files) and caught by
``harness compare`` as CI calls it (scripts/bench-pr.sh: two interleaved rounds, base/head then head/base, one
compare over both): a backend option that adds 20% latency, scores degraded on 10% of the queries, extra memory
held. The suite's gate: section is recorded in the results and used by compare."""

from __future__ import annotations

import json
from pathlib import Path

import builders
import pytest

from harness import backends
from harness.cli import main as harness_main
from harness.results import load_results
from harness.run.executor import run_suite
from harness.suite import RerankerSpec, suite_from_dict

HERE = Path(__file__).parent
QUERIES = 20  # q0 .. q19: "degrade" reverses q0 and q10 (10%)
DOCS = 5  # d0 (relevant) .. d4
MS_PER_PAIR = 5


@pytest.fixture
def planted(monkeypatch, tmp_path):
    monkeypatch.setitem(backends.BACKENDS, "planted", backends.BackendInfo("planted", "planted_backend", "test"))
    monkeypatch.setenv("PYTHONPATH", str(HERE))  # the worker imports planted_backend
    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(tmp_path / "cache"))
    candidates = [
        {
            "query": f"q{i} topic",
            "hits": [
                {"content": f"d{j} text", "qid": i, "docid": f"d{j}", "rank": j + 1, "score": float(DOCS - j)}
                for j in range(DOCS)
            ],
        }
        for i in range(QUERIES)
    ]
    (tmp_path / "candidates.json").write_text(json.dumps(candidates))
    (tmp_path / "qrels.txt").write_text("".join(f"{i} 0 d0 1\n" for i in range(QUERIES)))
    return builders.bert_cross_encoder(tmp_path / "bert", seed=2)


def measure(tmp_path, model, name, options):
    data = {
        "name": "planted",
        "metrics": ["ndcg@10", "mrr@10"],
        "datasets": [{"name": "toy", "candidates": "candidates.json", "qrels": "qrels.txt", "top_k": DOCS}],
        "rerankers": [{"name": "r", "backend": "mlx", "model": "local:none"}],
        # 7 passes: Mann-Whitney U on 7 vs 7 can reach p < 0.002; a loaded test machine must not make it INVALID
        "measure": {"warmup_queries": 1, "repeats": 7, "max_cv": 1e9, "max_load_per_core": 1e9},
        "gate": {"memory_factor": 1.2, "speed_factor": 1.1},
    }
    suite = suite_from_dict(data, tmp_path, source="test")
    suite.rerankers = [RerankerSpec(name="r", backend="planted", model=str(model), options=options)]
    out = tmp_path / f"{name}.json"
    run_suite(suite, output=out, progress=False, environment={"chip": {"name": "test"}})
    return out


def test_planted_latency_quality_and_memory_regressions_are_caught(planted, tmp_path, capsys):
    # 5 ms a pair (a pass: 100 pairs, 0.5 s vs 0.6 s): a query's 5 ms of planted latency stands well above a loaded
    # machine's scheduling jitter (at 2 ms a pair, a CI box running other tests let passes overlap: "not significant")
    slow = {"ms_per_pair": MS_PER_PAIR, "slowdown": 1.2, "degrade": True, "extra_mb": 30}
    base1 = measure(tmp_path, planted, "base-1", {"ms_per_pair": MS_PER_PAIR})
    assert load_results(base1)["gate"]["memory_factor"] == 1.2  # the suite's gate: section, recorded
    head1 = measure(tmp_path, planted, "head-1", slow)
    head2 = measure(tmp_path, planted, "head-2", slow)  # round 2 in the other order, as bench-pr.sh runs it
    base2 = measure(tmp_path, planted, "base-2", {"ms_per_pair": MS_PER_PAIR})
    assert harness_main(["compare", str(base1), str(head1), str(base2), str(head2), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["gate"]["memory_factor"] == 1.2
    assert [r["exit_status"] for r in out["rounds"]] == [1, 1]
    speed = [v for v in out["speed"] if v["scenario"] == "single_query"]
    assert [(v["verdict"], v["regression"]) for v in speed] == [("slower", True)]
    assert [r["verdict"] for r in speed[0]["rounds"]] == ["slower", "slower"]
    assert speed[0]["ratio"] == pytest.approx(1.2, rel=0.1)
    worse = {v["metric"]: v for v in out["quality"] if v["regression"]}
    assert set(worse) == {"ndcg@10", "mrr@10"} and worse["ndcg@10"]["queries_changed"] == 2  # q0 and q10
    assert [(v["verdict"], round(v["ratio"], 2)) for v in out["memory"]] == [("higher", 1.3)]
