"""Scale-out: ``harness run --shard i/n`` (queries split by a stable hash of their id) and ``harness merge``
(shards back into one file: metrics identical to an unsharded run; non-comparable, overlapping or missing shards
refused with the file and field named)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import builders
import pytest
from faulty_backend import register as register_faulty_backend

from harness.cli import main
from harness.results import load_results
from harness.results.merge import MergeError, merge_files
from harness.run.executor import run_suite
from harness.run.shard import Shard, shard_of
from harness.suite import RerankerSpec, suite_from_dict

TESTS = Path(__file__).parents[1]
SMOKE = TESTS.parent / "suites" / "data" / "smoke"
LENIENT = {"min_samples": 1, "max_cv": 1e9, "max_load_per_core": 1e9}


def test_a_query_has_one_shard_whatever_the_process_hash_seed():
    qids = [f"q{i}" for i in range(200)] + ["1037798", "é-ü"]
    shards = [shard_of(q, 3) for q in qids]
    assert set(shards) == {1, 2, 3}  # every shard gets queries
    for i in (1, 2, 3):  # Shard(i, 3) holds exactly the queries assigned to i: the shards partition the set
        assert [q for q in qids if Shard(index=i, count=3).holds(q)] == [q for q, s in zip(qids, shards) if s == i]
    code = "import json,sys; from harness.run.shard import shard_of; print(json.dumps([shard_of(q, 3) for q in json.load(sys.stdin)]))"
    for seed in ("1", "2"):  # Python's hash() would differ between these processes
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], input=json.dumps(qids), capture_output=True, text=True, env=env, check=True
        )
        assert json.loads(out.stdout) == shards


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "2", "a/b", "-1/2"])
def test_bad_shard_arguments_are_refused(text):
    with pytest.raises(ValueError, match="--shard must be I/N"):
        Shard.parse(text)


@pytest.fixture(scope="module")
def shard_files(tmp_path_factory):
    """An unsharded run and its two shards (MLX tiny BERT, single_query then offline, 2 repeats)."""
    tmp = tmp_path_factory.mktemp("shards")
    model = builders.bert_cross_encoder(tmp / "bert", seed=2, initializer_range=0.2)
    data = {
        "name": "shard-test",
        "metrics": ["ndcg@10", "mrr@10"],
        "datasets": [
            {"name": "smoke", "candidates": str(SMOKE / "candidates.json"), "qrels": str(SMOKE / "qrels.txt")}
        ],
        "rerankers": [{"name": "placeholder", "backend": "mlx", "model": "local:none"}],
        "measure": {"warmup_queries": 1, "repeats": 2, "scenarios": ["single_query", "offline"], **LENIENT},
    }
    suite = suite_from_dict(data, tmp, source="test")
    suite.rerankers = [RerankerSpec(name="mlx", backend="mlx", model=str(model), batch_size=4)]
    files = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RERANKER_HARNESS_CACHE", str(tmp / "cache"))
        for name, shard in (("full", None), ("s1", Shard(index=1, count=2)), ("s2", Shard(index=2, count=2))):
            files[name] = tmp / f"{name}.json"
            run_suite(suite, output=files[name], progress=False, environment={"chip": {"name": "test"}}, shard=shard)
        files["suite"] = suite
        yield files


def runs_of(doc):
    return {r["reranker"]: r for r in doc["runs"]}


def test_merged_shards_give_the_metrics_of_an_unsharded_run(shard_files, tmp_path):
    full, s1, s2 = (load_results(shard_files[k]) for k in ("full", "s1", "s2"))
    n1, n2 = (runs_of(d)["mlx"]["protocol"]["n_queries"] for d in (s1, s2))
    assert n1 >= 1 and n2 >= 1 and n1 + n2 == runs_of(full)["mlx"]["protocol"]["n_queries"]
    assert s1["selection"]["shard"] == "1/2" and runs_of(s2)["mlx"]["protocol"]["shard"] == {"index": 2, "count": 2}
    out = tmp_path / "merged.json"
    assert main(["merge", str(shard_files["s2"]), str(shard_files["s1"]), "--output", str(out)]) == 0
    merged = load_results(out)
    for name in ("bm25", "mlx"):
        a, b = runs_of(merged)[name], runs_of(full)[name]
        assert a["metrics"] == b["metrics"] and a["per_query"] == b["per_query"]  # identical, not approximately
        for key in ("dataset_fingerprint", "n_queries", "n_pairs", "model_fingerprint"):
            assert a["protocol"].get(key) == b["protocol"].get(key), key
        assert "shard" not in a["protocol"]
    mlx, ref = runs_of(merged)["mlx"], runs_of(full)["mlx"]
    assert (mlx["perf"]["pairs"], mlx["perf"]["tokens"]) == (ref["perf"]["pairs"], ref["perf"]["tokens"])
    assert len(mlx["latency_samples_ms"]) == len(ref["latency_samples_ms"]) == 2 * ref["perf"]["queries"]
    parts = [runs_of(d)["mlx"]["scenarios"]["offline"] for d in (s1, s2)]
    offline = mlx["scenarios"]["offline"]
    assert offline["pass_s"] == [parts[0]["pass_s"][k] + parts[1]["pass_s"][k] for k in range(2)]  # pass by pass
    assert offline["pairs"] == ref["perf"]["pairs"] and mlx["verdict"]["status"] == "VALID"
    assert merged["selection"]["shard"] is None and [m["shard"] for m in merged["merged_shards"]] == ["1/2", "2/2"]
    assert main(["merge", str(shard_files["s1"]), str(shard_files["s2"]), "--output", str(out)]) == 2  # exists


def write(doc, path):
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s1, s2: [s1], r"missing shards: 2/2 \(given: 1/2\)"),
        (lambda s1, s2: [s1, s1], r"selection.shard: 1/2 overlaps"),
        (
            lambda s1, s2: [s1, {**s2, "selection": {**s2["selection"], "shard": "2/3"}}],
            r"selection.shard: 2/3 is not of 2 shards",
        ),
        (lambda s1, s2: [s1, {**s2, "selection": {**s2["selection"], "shard": None}}], r"selection.shard: not a shard"),
        (lambda s1, s2: [s1, {**s2, "measure": {**s2["measure"], "repeats": 5}}], r"b\.json: measure: "),
        (lambda s1, s2: [s1, {**s2, "fingerprint": "0" * 64}], r"b\.json: fingerprint: "),
        (
            lambda s1, s2: [s1, {**s2, "complete": False, "incomplete_reason": "interrupted by SIGTERM"}],
            r"b\.json: complete: False \(interrupted by SIGTERM\)",
        ),
        (
            lambda s1, s2: [s1, {**s2, "selection": {**s2["selection"], "max_queries": 3}}],
            r"b\.json: selection\.max_queries: 3",
        ),
    ],
    ids=["missing", "overlap", "count", "unsharded", "measure", "suite-fingerprint", "incomplete", "selection"],
)
def test_merge_refuses_what_cannot_be_merged(shard_files, tmp_path, change, message):
    s1, s2 = (load_results(shard_files[k]) for k in ("s1", "s2"))
    docs = change(s1, s2)
    paths = [write(doc, tmp_path / name) for doc, name in zip(docs, ("a.json", "b.json"))]
    with pytest.raises(MergeError, match=message):
        merge_files(paths)


@pytest.mark.parametrize("field", ["model_fingerprint", "full_dataset_fingerprint", "dtype"])
def test_merge_names_the_run_and_protocol_field_that_differs(shard_files, tmp_path, field):
    s1, s2 = (load_results(shard_files[k]) for k in ("s1", "s2"))
    s2 = copy.deepcopy(s2)
    index = next(i for i, r in enumerate(s2["runs"]) if r["reranker"] == "mlx")
    s2["runs"][index]["protocol"][field] = "something else"
    paths = [write(s1, tmp_path / "a.json"), write(s2, tmp_path / "b.json")]
    with pytest.raises(MergeError, match=rf"b\.json: runs\[{index}\] \(mlx on smoke\)\.protocol\.{field}: "):
        merge_files(paths)


def test_resume_keeps_its_own_shard_and_refuses_another(shard_files, tmp_path):
    from harness.results import ResultsError

    path = write(load_results(shard_files["s1"]), tmp_path / "s1.json")
    with pytest.raises(ResultsError, match=r"selection\.shard is '1/2', this run's is '2/2'"):
        run_suite(shard_files["suite"], output=path, resume=True, progress=False, shard=Shard(index=2, count=2))
    results, _ = run_suite(
        shard_files["suite"],
        output=path,
        resume=True,
        progress=False,
        environment={"chip": {"name": "test"}},
        shard=Shard(index=1, count=2),
    )
    assert runs_of(results)["mlx"]["per_query"] == runs_of(load_results(shard_files["s1"]))["mlx"]["per_query"]


def test_a_shard_without_queries_of_a_dataset_is_empty_not_a_failure(tmp_path, monkeypatch):
    """6 smoke queries in 6 shards: shard 3/6 gets none. Its runs say 'empty shard' (nothing measured, no worker)
    and harness merge leaves it out: the merged metrics still equal the unsharded run's."""
    register_faulty_backend(monkeypatch, tmp_path / "cache")
    model = builders.bert_cross_encoder(tmp_path / "bert", seed=2, initializer_range=0.2)
    data = {
        "name": "empty-shard-test",
        "metrics": ["ndcg@10"],
        "datasets": [
            {"name": "smoke", "candidates": str(SMOKE / "candidates.json"), "qrels": str(SMOKE / "qrels.txt")}
        ],
        "rerankers": [{"name": "placeholder", "backend": "mlx", "model": "local:none"}],
        "measure": {"warmup_queries": 0, "repeats": 1, **LENIENT},
    }
    suite = suite_from_dict(data, tmp_path, source="test")
    suite.rerankers = [RerankerSpec(name="steady", backend="faulty", model=str(model), options={"fault": "none"})]
    env = {"chip": {"name": "test"}}
    full = tmp_path / "full.json"
    run_suite(suite, output=full, progress=False, environment=env)
    shards = []
    for i in range(1, 7):
        shards.append(tmp_path / f"s{i}.json")
        run_suite(suite, output=shards[-1], progress=False, environment=env, shard=Shard(index=i, count=6))
    empty = runs_of(load_results(shards[2]))
    assert {r["error"] for r in empty.values()} == {"empty shard: shard 3/6 holds no query of dataset smoke"}
    assert empty["steady"]["protocol"]["n_queries"] == 0
    out = tmp_path / "merged.json"
    assert main(["merge", *map(str, shards), "--output", str(out)]) == 0
    merged, reference = runs_of(load_results(out)), runs_of(load_results(full))
    for name in ("bm25", "steady"):
        assert merged[name]["status"] == "ok" and merged[name]["metrics"] == reference[name]["metrics"]
        assert merged[name]["per_query"] == reference[name]["per_query"]
        assert merged[name]["protocol"]["n_queries"] == 6


def test_harness_run_of_an_empty_shard_exits_0(tmp_path, monkeypatch, capsys):
    """A CI matrix job whose shard holds no query of the suite's datasets measured nothing and failed nothing."""
    model = builders.bert_cross_encoder(tmp_path / "bert", seed=2, initializer_range=0.2)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        json.dumps(
            {
                "name": "empty",
                "datasets": [
                    {"name": "smoke", "candidates": str(SMOKE / "candidates.json"), "qrels": str(SMOKE / "qrels.txt")}
                ],
                "rerankers": [{"name": "m", "backend": "mlx", "model": str(model)}],
            }
        )
    )
    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "r.json"
    assert main(["run", str(suite), "--shard", "3/6", "--output", str(out), "--no-progress"]) == 0
    assert {r["status"] for r in load_results(out)["runs"]} == {"error"}  # recorded, not measured


def test_only_single_query_and_offline_are_pooled(shard_files, tmp_path):
    """A server scenario's load levels are per shard: merge leaves them out of the merged run and says so."""
    docs = [copy.deepcopy(load_results(shard_files[k])) for k in ("s1", "s2")]
    for doc in docs:
        run = next(r for r in doc["runs"] if r["reranker"] == "mlx")
        run["scenarios"]["server"] = {**run["scenarios"]["offline"], "scenario": "server", "pairs": None}
    merged = merge_files([write(doc, tmp_path / f"{i}.json") for i, doc in enumerate(docs)])
    run = next(r for r in merged.runs if r.reranker == "mlx")
    assert list(run.scenarios) == ["single_query", "offline"]
    assert "server: not pooled across shards (its figures are in the shard files)" in run.warnings
