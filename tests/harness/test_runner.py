"""The runner: one worker process per (reranker, dataset); failures recorded, the other runs completed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import builders
import numpy as np
import pytest
from faulty_backend import register as register_faulty_backend

from harness import backends
from harness.metrics import evaluate
from harness.results import load_results
from harness.run.executor import run_suite
from harness.sources import load_dataset
from harness.suite import RerankerSpec, SuiteError, suite_from_dict

TESTS = Path(__file__).parents[1]
SMOKE = TESTS.parent / "suites" / "data" / "smoke"
ENV = {"chip": {"name": "test"}}  # the environment is captured once per run; tested in test_environment.py


@pytest.fixture(autouse=True)
def faulty_backend(monkeypatch, tmp_path):
    """Register tests/faulty_backend.py as backend "faulty" (workers find it through PYTHONPATH)."""
    register_faulty_backend(monkeypatch, tmp_path / "cache")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return builders.bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=2, initializer_range=0.2)


def make_suite(tmp_path, rerankers, datasets=None, baseline=None, measure=None):
    data = {
        "name": "runner-test",
        "datasets": datasets
        or [
            {
                "name": "smoke",
                "candidates": str(SMOKE / "candidates.json"),
                "qrels": str(SMOKE / "qrels.txt"),
                "top_k": 10,
            }
        ],
        "rerankers": [{"name": "placeholder", "backend": "mlx", "model": "local:none"}],
        "metrics": ["ndcg@10", "mrr@10"],
        "measure": measure or {"warmup_queries": 1, "repeats": 2},
    }
    suite = suite_from_dict(data, tmp_path, source="test")
    suite.rerankers = rerankers  # specs built here: the faulty backend is not a suite backend
    suite.baseline = baseline
    return suite


@pytest.fixture
def faulty(tiny_bert):
    """Spec maker for the faulty backend (on the tiny checkpoint: the runner resolves its max_length)."""

    def make(name, fault, when="predict"):
        return RerankerSpec(name=name, backend="faulty", model=str(tiny_bert), options={"fault": fault, "when": when})

    return make


def by_name(results):
    return {run["reranker"]: run for run in results["runs"]}


def test_failures_are_recorded_and_the_other_runs_complete(tmp_path, tiny_bert, faulty):
    bad_arch = tmp_path / "bad-arch"
    shutil.copytree(tiny_bert, bad_arch)
    config = json.loads((bad_arch / "config.json").read_text())
    (bad_arch / "config.json").write_text(json.dumps({**config, "architectures": ["FooForSequenceClassification"]}))
    rerankers = [
        RerankerSpec(name="missing", backend="mlx", model="nobody/no-such-model-anywhere"),
        RerankerSpec(name="bad-arch", backend="mlx", model=str(bad_arch)),
        faulty("raises", "raise"),
        faulty("killed", "kill"),
        faulty("segfault", "segv", when="load"),
        faulty("exits", "exit"),
        faulty("echo", "none"),
        RerankerSpec(name="tiny", backend="mlx", model=str(tiny_bert), batch_size=4),
    ]
    out = tmp_path / "out" / "results.json"
    results, path = run_suite(
        make_suite(tmp_path, rerankers, baseline="tiny"),
        output=out,
        progress=False,
        environment=ENV,
        log=lambda _: None,
    )
    assert path == out
    assert load_results(out) == json.loads(json.dumps(results))  # what is returned is what is stored
    assert [r["reranker"] for r in results["runs"]] == ["bm25"] + [r.name for r in rerankers]
    runs = by_name(results)
    assert {n for n, r in runs.items() if r["status"] == "ok"} == {"bm25", "echo", "tiny"}

    assert "could not fetch 'nobody/no-such-model-anywhere'" in runs["missing"]["error"]
    assert runs["bad-arch"]["error"].startswith("UnsupportedArchitectureError: unsupported architecture FooFor")
    tail = runs["bad-arch"]["traceback"].splitlines()
    assert "UnsupportedArchitectureError: unsupported architecture FooFor" in tail[-1]
    assert any("mlx_backend.py" in line for line in tail)
    assert runs["raises"]["error"] == "RuntimeError: deliberate failure for the test"
    assert "faulty_backend.py" in runs["raises"]["traceback"]
    assert runs["killed"]["error"] == "worker killed (likely out of memory)" and runs["killed"]["signal"] == "SIGKILL"
    assert runs["segfault"]["error"] == "worker crashed (SIGSEGV)"
    assert runs["exits"]["error"].startswith("worker exited with status 3 without a result")
    for name in ("missing", "bad-arch", "raises", "killed", "segfault", "exits"):
        run = runs[name]
        assert run["metrics"] == {} and "perf" not in run and run["protocol"]["dataset_fingerprint"]

    # the runs that work after the failures are complete and correct
    echo = runs["echo"]  # scores -rank keep the first-stage order: the first stage's quality, exactly
    assert echo["per_query"] == runs["bm25"]["per_query"] and echo["metrics"] == runs["bm25"]["metrics"]
    assert echo["device"] == "test-cpu"

    tiny = runs["tiny"]
    ds = load_dataset(make_suite(tmp_path, []).datasets[0])
    assert (
        tiny["protocol"]["dataset_fingerprint"] == ds.fingerprint() == runs["bm25"]["protocol"]["dataset_fingerprint"]
    )
    from mlx_cross_encoder import MLXCrossEncoder

    reference = MLXCrossEncoder(tiny_bert, max_length=128)
    scored, tokens = {}, 0
    for qid, cands in ds.candidates.items():
        pairs = [(ds.queries[qid], c.text) for c in cands]
        scored[qid] = dict(zip([c.docid for c in cands], map(float, reference.predict(pairs, batch_size=4))))
        tokens += int(reference.token_counts(pairs).sum())
    means, per_query = evaluate(ds.qrels, scored, ["ndcg@10", "mrr@10"], ds.relevance_level)
    assert tiny["per_query"] == per_query and tiny["metrics"] == means
    perf = tiny["perf"]
    assert (perf["queries"], perf["pairs"], perf["tokens"]) == (6, 52, tokens)
    assert (perf["repeats"], perf["warmup_queries"], perf["batch_size"]) == (2, 1, 4)
    assert len(tiny["latency_samples_ms"]) == 2 * 6 and min(tiny["latency_samples_ms"]) > 0
    assert perf["latency_ms"]["p50"] == pytest.approx(float(np.percentile(tiny["latency_samples_ms"], 50)))
    assert perf["pairs_per_s"] == pytest.approx(2 * 52 / (sum(tiny["latency_samples_ms"]) / 1000))
    assert perf["tokens_per_s"] == pytest.approx(2 * tokens / (sum(tiny["latency_samples_ms"]) / 1000))
    assert perf["repeats_identical"] is True and tiny["warnings"] == []
    assert perf["peak_memory_mb"] > 0 and perf["peak_rss_mb"] > 0 and perf["load_s"] > 0
    assert tiny["device"] in ("mlx-cpu", "mlx-gpu") and tiny["system"]["backend"] == "mlx"
    protocol = tiny["protocol"]
    assert (protocol["max_length"], protocol["max_length_source"], protocol["dtype"]) == (128, "tokenizer", "float32")
    assert protocol["model_fingerprint"] == tiny["system"]["weights_fingerprint"]
    assert (protocol["first_stage"], protocol["top_k"], protocol["add_judged_positives"]) == ("bm25", 10, False)
    assert (protocol["warmup_queries"], protocol["repeats"], protocol["seed"]) == (1, 2, 0)


def test_every_worker_failure_is_recorded_with_its_cause(tmp_path, monkeypatch, tiny_bert, faulty):
    """However a worker fails (its backend cannot be imported, it exits or is killed before writing a result, a
    library calls sys.exit, it leaves a result of a shape no worker writes), the results file says how: the error,
    the exit status or signal, and the tail of what the worker printed; never an unknown failure."""
    missing = backends.BackendInfo("no-module", "no_such_backend_module_anywhere", "a backend that cannot import")
    monkeypatch.setitem(backends.BACKENDS, "no-module", missing)
    rerankers = [
        RerankerSpec(name="import", backend="no-module", model=str(tiny_bert)),
        faulty("exit", "exit", when="load"),
        faulty("kill", "kill"),
        faulty("sysexit", "sysexit"),
        faulty("bad-result", "bad_result"),
        faulty("list-result", "list_result", when="load"),
    ]
    _, path = run_suite(
        make_suite(tmp_path, rerankers), output=tmp_path / "r.json", progress=False, environment=ENV, log=lambda _: None
    )
    runs = by_name(json.loads(path.read_text()))  # the file itself, not what run_suite returned
    for spec in rerankers:
        run = runs[spec.name]
        assert run["status"] == "error" and run["error"] and "unknown" not in run["error"], spec.name
        assert run["exit_code"] is not None or run["signal"] is not None, spec.name
    assert runs["import"]["error"] == "ModuleNotFoundError: No module named 'no_such_backend_module_anywhere'"
    assert "no_such_backend_module_anywhere" in runs["import"]["traceback"] and runs["import"]["exit_code"] == 1
    assert runs["exit"]["exit_code"] == 3 and "status 3" in runs["exit"]["error"]
    assert runs["kill"]["signal"] == "SIGKILL" and runs["kill"]["exit_code"] == -9
    assert runs["sysexit"]["error"].startswith("SystemExit: 0") and "faulty_backend.py" in runs["sysexit"]["traceback"]
    for name in ("bad-result", "list-result"):
        assert runs[name]["exit_code"] == 5 and "status 5" in runs[name]["error"], runs[name]["error"]
    assert "{'status': 'error'}" in runs["bad-result"]["error"] and "[1, 2]" in runs["list-result"]["error"]
    for name, fault in (("exit", "exit"), ("kill", "kill"), ("sysexit", "sysexit"), ("bad-result", "bad_result")):
        assert f"faulty backend: {fault}" in runs[name]["log_tail"], name  # what the worker printed last


def test_timeout_kills_the_worker(tmp_path, faulty):
    results, _ = run_suite(
        make_suite(tmp_path, [faulty("hangs", "sleep"), faulty("echo", "none")]),
        output=tmp_path / "r.json",
        timeout_s=5,
        progress=False,
        environment=ENV,
        log=lambda _: None,
    )
    runs = by_name(results)
    assert runs["hangs"]["status"] == "error" and runs["hangs"]["error"] == "timed out after 5 s (worker killed)"
    assert runs["echo"]["status"] == "ok"


def test_a_dataset_that_fails_to_load_does_not_stop_the_others(tmp_path, faulty):
    gone = tmp_path / "gone.json"
    shutil.copy(SMOKE / "candidates.json", gone)
    datasets = [
        {"name": "gone", "candidates": str(gone), "qrels": str(SMOKE / "qrels.txt"), "top_k": 10},
        {"name": "smoke", "candidates": str(SMOKE / "candidates.json"), "qrels": str(SMOKE / "qrels.txt"), "top_k": 3},
    ]
    suite = make_suite(tmp_path, [faulty("echo", "none")], datasets=datasets)
    gone.unlink()  # after the suite was validated
    logged = []
    results, _ = run_suite(suite, output=tmp_path / "r.json", progress=False, environment=ENV, log=logged.append)
    runs = [(r["dataset"], r["reranker"], r["backend"], r["status"]) for r in results["runs"]]
    assert runs == [
        ("gone", "bm25", "first_stage", "error"),
        ("gone", "echo", "faulty", "error"),
        ("smoke", "bm25", "first_stage", "ok"),
        ("smoke", "echo", "faulty", "ok"),
    ]
    assert all("dataset gone could not be loaded" in r["error"] for r in results["runs"][:2])
    assert results["runs"][3]["perf"]["pairs"] == 6 * 3  # top_k 3
    assert len(logged) == 4 and logged[0].startswith("[1/4] bm25 on gone: error: dataset gone could not be loaded")


def test_only_and_max_queries(tmp_path, faulty):
    suite = make_suite(tmp_path, [faulty("echo", "none"), faulty("other", "raise")])
    results, _ = run_suite(
        suite,
        output=tmp_path / "r.json",
        only=["echo"],
        max_queries=2,
        progress=False,
        environment=ENV,
        log=lambda _: None,
    )
    assert [r["reranker"] for r in results["runs"]] == ["bm25", "echo"]
    assert results["selection"] == {"only": ["echo"], "max_queries": 2}
    echo = results["runs"][1]
    assert echo["protocol"]["n_queries"] == 2 and echo["protocol"]["max_queries"] == 2
    assert len(echo["per_query"]["ndcg@10"]) == 2
    with pytest.raises(SuiteError, match="--only nope: not a reranker or dataset of suite 'runner-test'"):
        run_suite(suite, output=tmp_path / "r2.json", only=["nope"], environment=ENV)


def test_max_length_beyond_the_model_is_an_error_run(tmp_path, tiny_bert):
    spec = RerankerSpec(name="too-long", backend="mlx", model=str(tiny_bert), max_length=4096)
    results, _ = run_suite(
        make_suite(tmp_path, [spec]), output=tmp_path / "r.json", progress=False, environment=ENV, log=lambda _: None
    )
    run = by_name(results)["too-long"]
    assert run["status"] == "error"
    assert (
        run["error"]
        == f"BackendError: max_length 4096 exceeds the 128 positions of {tiny_bert.name}; use max_length <= 128"
    )
