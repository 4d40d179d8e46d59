"""Measurement scenarios (harness.scenarios): single_query (one predict per query) and offline (every pair of the
dataset in length-sorted batches across queries, planned by mlx_cross_encoder.base.length_sorted_batches), the
min_time_s / max_repeats loop, the score check across scenarios and repeats, and the suite's measure keys."""

from __future__ import annotations

from pathlib import Path

import builders
import numpy as np
import pytest
from faulty_backend import register as register_faulty_backend

from harness.report import build_report
from harness.results import load_results
from harness.run.executor import run_suite
from harness.run.verdict import judge_scenario
from harness.scenarios import SCENARIOS, offline, single_query
from harness.scenarios.base import QueryPairs, ScenarioContext, TimedPass, repeat_passes
from harness.suite import RerankerSpec, SuiteError, suite_from_dict
from harness.suite.models import MeasureSpec
from mlx_cross_encoder.base import length_sorted_batches

TESTS = Path(__file__).parents[1]
SMOKE = TESTS.parent / "suites" / "data" / "smoke"
LENIENT = {"min_samples": 1, "max_cv": 1e9, "max_load_per_core": 1e9}


class RecordingBackend:
    """Scores a pair by its own text only (so any correct batching gives the same scores) and records calls."""

    batch_size = 3
    dtype = "float32"

    def __init__(self, options=None):
        self.options = options or {}
        self.calls: list[list[tuple[str, str]]] = []

    def predict(self, pairs, batch_size):
        self.calls.append(list(pairs))
        return np.asarray([len(q) + 0.01 * len(d) for q, d in pairs], dtype=np.float32)

    def reset_peak_memory(self):
        pass

    def peak_memory_mb(self):
        return None


def queries() -> list[QueryPairs]:
    texts = [["a b c d e", "a", "a b"], ["x y", "x y z w v u"], ["m n o p", "m", "m n", "m n o"]]
    out = []
    for i, docs in enumerate(texts):
        q = f"query {i}"
        out.append(QueryPairs(f"q{i}", [(q, d) for d in docs], np.asarray([2 + len(d.split()) for d in docs])))
    return out


def context(backend, **kw) -> ScenarioContext:
    args = {"repeats": 2, "min_time_s": 0.0, "max_repeats": 10, "warmup_queries": 0}
    return ScenarioContext(backend=backend, queries=queries(), **{**args, **kw})


@pytest.mark.parametrize("budget", [None, 12])
def test_offline_runs_the_planners_batches_across_queries_and_maps_scores_back(budget):
    options = {"max_batch_tokens": budget} if budget else {}
    backend = RecordingBackend(options)
    out = offline.measure(context(backend, repeats=1))
    flat = [p for q in queries() for p in q.pairs]
    lengths = np.concatenate([q.tokens for q in queries()])
    planned = length_sorted_batches(lengths, backend.batch_size, budget)
    assert backend.calls == [[flat[i] for i in b] for b in planned]  # the planner's batches, one call each
    assert any(len({q for q, _ in call}) > 1 for call in backend.calls)  # batches mix queries
    for q, scores in zip(queries(), out.passes[0]):  # every score back at its own pair
        np.testing.assert_array_equal(scores, RecordingBackend().predict(q.pairs, 0))
    rec = out.record
    assert (rec.batches, rec.pairs, rec.tokens) == (len(planned), len(flat), int(lengths.sum()))
    assert rec.padded_tokens == sum(len(b) * int(lengths[b].max()) for b in planned)
    assert rec.max_batch_tokens == budget and len(rec.pairs_per_s) == rec.repeats == 1
    warmed = RecordingBackend(options)
    offline.measure(context(warmed, repeats=1, warmup_queries=1))  # warm-up: one untimed pass over every batch
    assert warmed.calls == backend.calls * 2


def test_single_query_is_one_call_per_query_with_p90():
    backend = RecordingBackend()
    out = single_query.measure(context(backend, repeats=3))
    assert backend.calls == [q.pairs for q in queries()] * 3
    rec = out.record
    assert rec.samples == 9 == len(out.latency_samples_ms) and len(rec.pass_s) == 3
    assert rec.latency_ms.p50 <= rec.latency_ms.p90 <= rec.latency_ms.p99
    assert rec.latency_ms.p90 == pytest.approx(np.percentile(out.latency_samples_ms, 90))


def test_min_time_s_adds_passes_until_reached_and_max_repeats_bounds_them():
    def one_pass():
        return TimedPass(seconds=0.3, scores=[])

    passes, reached = repeat_passes(one_pass, context(None, repeats=2, min_time_s=1.0, max_repeats=10))
    assert (len(passes), reached) == (4, True)  # 2 repeats (0.6 s) + 2 more to reach 1.0 s
    passes, reached = repeat_passes(one_pass, context(None, repeats=2, min_time_s=1.0, max_repeats=3))
    assert (len(passes), reached) == (3, False)
    passes, reached = repeat_passes(one_pass, context(None, repeats=5, min_time_s=0.1, max_repeats=5))
    assert (len(passes), reached) == (5, True)  # repeats are always made
    record = {"samples": 9, "pass_s": [0.3] * 3, "min_time_s": 1.0, "min_time_reached": False, "repeats": 3}
    verdict = judge_scenario(record, MeasureSpec(**LENIENT))
    assert verdict["status"] == "INVALID" and "min_time_s 1.0 not reached" in verdict["reasons"][0]


def test_measure_keys_are_checked_with_their_field_paths():
    data = {
        "name": "x",
        "datasets": [
            {"name": "smoke", "candidates": str(SMOKE / "candidates.json"), "qrels": str(SMOKE / "qrels.txt")}
        ],
        "rerankers": [{"name": "a", "backend": "mlx", "model": "local:x"}],
        "measure": {
            "scenarios": ["offline", "offline", "bogus"],
            "repeats": 3,
            "max_repeats": 2,
            "min_time_s": -1,
            "scenario_options": {"offline": {"x": 1}, "nope": {}},
        },
    }
    with pytest.raises(SuiteError) as info:
        suite_from_dict(data, SMOKE, source="s.yaml")
    text = str(info.value)
    for line in (
        "measure.scenarios[2]: must be one of single_query, offline",
        "measure.scenarios[1]: duplicate scenario 'offline'",
        "measure.max_repeats: must be >= repeats (3), got 2",
        "measure.min_time_s: must be a non-negative number",
        "measure.scenario_options.offline.x: unknown option for scenario offline",
        "measure.scenario_options.nope: not a scenario",
    ):
        assert line in text, text
    data["measure"] = {}
    assert suite_from_dict(data, SMOKE, source="s.yaml").measure.scenarios == ["single_query"]  # old suites
    assert set(SCENARIOS) >= {"single_query", "offline"}


@pytest.fixture
def faulty_backend(monkeypatch, tmp_path):
    register_faulty_backend(monkeypatch, tmp_path / "cache")


def test_both_scenarios_in_one_run_agree_and_are_kept_per_repeat(tmp_path, faulty_backend):
    """A real MLX cross-encoder: both scenarios' scores agree, every pass is kept, quality is computed once from
    the first scenario; a backend whose scores depend on the batch (faulty 'none': -position in the call) makes
    the run INVALID through the offline scenario, while its quality is still the single_query scores'."""
    model = builders.bert_cross_encoder(tmp_path / "bert", seed=2, initializer_range=0.2)
    data = {
        "name": "scenario-test",
        "metrics": ["ndcg@10"],
        "datasets": [
            {"name": "smoke", "candidates": str(SMOKE / "candidates.json"), "qrels": str(SMOKE / "qrels.txt")}
        ],
        "rerankers": [{"name": "placeholder", "backend": "mlx", "model": "local:none"}],
        "measure": {"warmup_queries": 1, "repeats": 2, "scenarios": ["single_query", "offline"], **LENIENT},
    }
    suite = suite_from_dict(data, tmp_path, source="test")
    suite.rerankers = [
        RerankerSpec(name="mlx", backend="mlx", model=str(model), batch_size=8),
        RerankerSpec(name="batch-dependent", backend="faulty", model=str(model), options={"fault": "none"}),
    ]
    out = tmp_path / "r.json"
    run_suite(suite, output=out, progress=False, environment={"chip": {"name": "test"}})
    results = load_results(out)
    runs = {r["reranker"]: r for r in results["runs"]}
    mlx, faulty = runs["mlx"], runs["batch-dependent"]
    assert list(mlx["scenarios"]) == ["single_query", "offline"]
    assert mlx["protocol"]["scenarios"] == ["single_query", "offline"]
    for rec in mlx["scenarios"].values():
        assert len(rec["pass_s"]) == len(rec["pairs_per_s"]) == len(rec["tokens_per_s"]) == rec["repeats"] == 2
        assert rec["scores_agree"] and rec["repeats_agree"] and rec["verdict"]["status"] == "VALID"
    assert mlx["scenarios"]["offline"]["batches"] == -(-mlx["perf"]["pairs"] // 8)
    assert mlx["verdict"]["status"] == "VALID"
    assert faulty["scenarios"]["single_query"]["scores_agree"]
    assert faulty["scenarios"]["offline"]["scores_agree"] is False
    assert faulty["verdict"]["status"] == "INVALID"
    assert any(r.startswith("offline: scores differ from the evaluated scores") for r in faulty["verdict"]["reasons"])
    assert faulty["metrics"]["ndcg@10"] == runs["bm25"]["metrics"]["ndcg@10"]  # single_query's -rank: bm25 order
    assert "batch-dependent" in build_report([results], [str(out)])


def test_min_time_s_reaches_the_worker_and_an_offline_only_run_has_no_single_query_figures(tmp_path, faulty_backend):
    """min_time_s out of reach: max_repeats passes are made (whatever the machine's speed) and the run is INVALID;
    without single_query, perf's single-query figures are null and the file still loads and renders."""
    model = builders.bert_cross_encoder(tmp_path / "bert", seed=2, initializer_range=0.2)
    data = {
        "name": "min-time-test",
        "metrics": ["ndcg@10"],
        "datasets": [
            {"name": "smoke", "candidates": str(SMOKE / "candidates.json"), "qrels": str(SMOKE / "qrels.txt")}
        ],
        "rerankers": [{"name": "placeholder", "backend": "mlx", "model": "local:none"}],
        "measure": {"repeats": 1, "min_time_s": 1e6, "max_repeats": 3, "scenarios": ["offline"], **LENIENT},
    }
    suite = suite_from_dict(data, tmp_path, source="test")
    suite.rerankers = [RerankerSpec(name="steady", backend="faulty", model=str(model), options={"fault": "none"})]
    out = tmp_path / "r.json"
    run_suite(suite, output=out, progress=False, environment={"chip": {"name": "test"}})
    results = load_results(out)
    run = next(r for r in results["runs"] if r["reranker"] == "steady")
    offline = run["scenarios"]["offline"]
    assert offline["repeats"] == len(offline["pass_s"]) == 3 and offline["min_time_reached"] is False
    assert run["protocol"]["min_time_s"] == 1e6 and run["protocol"]["scenarios"] == ["offline"]
    assert run["verdict"]["status"] == "INVALID"
    assert any(r.startswith("offline: min_time_s 1000000.0 not reached") for r in run["verdict"]["reasons"])
    assert run["perf"]["pairs_per_s"] is None and run["perf"]["latency_ms"] is None
    assert run["latency_samples_ms"] == [] and run["metrics"]["ndcg@10"] is not None
    assert "steady" in build_report([results], [str(out)])
