"""Results files (schema 1): round trip, atomic writes, validation errors."""

from __future__ import annotations

import copy
import datetime as dt
import json
import math

import pytest

from harness.results import ResultsError, default_output, load_results, save_results, validate


def sample_results() -> dict:
    protocol = {"first_stage": "bm25", "top_k": 10, "add_judged_positives": False, "dataset_fingerprint": "ab" * 32}
    return {
        "schema": 1,
        "suite": "toy",
        "baseline": "b",
        "metrics": ["ndcg@10"],
        "environment": {"chip": {"name": "Test chip"}, "date": "2026-01-01T00:00:00+00:00"},
        "runs": [
            {"dataset": "d", "reranker": "bm25", "backend": "first_stage", "device": None, "status": "ok",
             "metrics": {"ndcg@10": 0.5}, "per_query": {"ndcg@10": {"1": 0.5, "2": 0.5}}, "protocol": protocol},
            {"dataset": "d", "reranker": "b", "backend": "mlx", "device": "mlx-gpu", "status": "ok",
             "metrics": {"ndcg@10": 0.75}, "per_query": {"ndcg@10": {"1": 1.0, "2": 0.5}},
             "perf": {"pairs_per_s": 100.0, "tokens_per_s": 4000.0, "peak_memory_mb": 512.0,
                      "latency_ms": {"p50": 10.0, "p95": 12.5, "p99": 13.0}, "load_s": 1.5},
             "protocol": {**protocol, "max_length": 512, "dtype": "float32"}, "latency_samples_ms": [10.0, 12.0]},
            {"dataset": "d", "reranker": "c", "backend": "torch", "device": None, "status": "error",
             "error": "worker killed (likely out of memory)", "metrics": {}, "per_query": {}, "protocol": protocol},
        ],
    }  # fmt: skip


def test_round_trip(tmp_path):
    obj = sample_results()
    path = save_results(obj, tmp_path / "sub" / "r.json")
    assert path == tmp_path / "sub" / "r.json"
    assert load_results(path) == obj
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left behind


def test_save_replaces_atomically_and_keeps_old_file_on_invalid_data(tmp_path):
    path = tmp_path / "r.json"
    save_results(sample_results(), path)
    bad = sample_results()
    del bad["runs"][1]["perf"]["pairs_per_s"]
    with pytest.raises(ResultsError, match="pairs_per_s"):
        save_results(bad, path)
    assert load_results(path) == sample_results()
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_non_finite_numbers_are_stored_as_null(tmp_path):
    obj = sample_results()
    obj["runs"][1]["metrics"]["ndcg@10"] = math.nan
    obj["runs"][1]["perf"]["tokens_per_s"] = math.inf
    path = save_results(obj, tmp_path / "r.json")
    json.loads(path.read_text())  # strict JSON: no NaN / Infinity tokens
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    loaded = load_results(path)
    assert loaded["runs"][1]["metrics"]["ndcg@10"] is None
    assert loaded["runs"][1]["perf"]["tokens_per_s"] is None


def _broken(mutate):
    obj = copy.deepcopy(sample_results())
    mutate(obj)
    return obj


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.pop("schema"), "no 'schema' key"),
        (lambda o: o.update(schema=2), "schema 2 is not supported"),
        (lambda o: o.update(runs={}), "'runs' must be a list"),
        (lambda o: o.pop("environment"), "'environment' must be a dict"),
        (lambda o: o["runs"][1].update(status="fine"), r"runs\[1\] \(b on d\): 'status' must be one of"),
        (lambda o: o["runs"][2].pop("error"), r"runs\[2\] \(c on d\): an error run needs a non-empty 'error'"),
        (lambda o: o["runs"][1].pop("perf"), r"runs\[1\] \(b on d\): 'perf' must be an object"),
        (lambda o: o["runs"][1]["perf"]["latency_ms"].pop("p95"), "perf.latency_ms must hold numbers"),
        (lambda o: o["runs"][1].update(latency_samples_ms="fast"), "'latency_samples_ms' must be a list"),
        (lambda o: o["runs"][0].update(metrics={"ndcg@10": "high"}), "'metrics' must map metric names to numbers"),
        (lambda o: o["runs"][0].pop("reranker"), r"runs\[0\]: 'reranker' must be a non-empty string"),
        (lambda o: o["runs"][0].pop("protocol"), "'protocol' must be an object"),
    ],
)
def test_validation_errors_name_the_place(mutate, message):
    with pytest.raises(ResultsError, match=message):
        validate(_broken(mutate))


def test_first_stage_runs_need_no_perf():
    obj = sample_results()
    assert "perf" not in obj["runs"][0]
    validate(obj)


def test_load_errors_are_one_line_with_the_path(tmp_path):
    with pytest.raises(ResultsError, match=r"nope\.json: no such results file"):
        load_results(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ResultsError, match=r"bad\.json: not valid JSON") as info:
        load_results(bad)
    assert "\n" not in str(info.value)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ResultsError, match=r"other\.json: no 'schema' key: not a harness results file"):
        load_results(other)


def test_default_output_name():
    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
    assert str(default_output("trec dl/19", when)) == "results/trec_dl_19-20260304T050607Z.json"
