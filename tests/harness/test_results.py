"""Results files (schema 3; schemas 1 and 2 still read): round trip, atomic writes, validation errors, locks, names."""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.results import (
    OutputLock,
    ResultsError,
    ResultsWriter,
    claim_default_output,
    default_output,
    load_results,
    read_results,
    save_results,
    validate,
)

REPO = Path(__file__).resolve().parents[2]


def sample_results() -> dict:
    protocol = {"first_stage": "bm25", "top_k": 10, "add_judged_positives": False, "dataset_fingerprint": "ab" * 32}
    return {
        "schema": 3,
        "suite": "toy",
        "baseline": "b",
        "metrics": ["ndcg@10"],
        "complete": True,
        "environment": {"chip": {"name": "Test chip"}, "date": "2026-01-01T00:00:00+00:00"},
        "runs": [
            {
                "dataset": "d",
                "reranker": "bm25",
                "backend": "first_stage",
                "device": None,
                "status": "ok",
                "metrics": {"ndcg@10": 0.5},
                "per_query": {"ndcg@10": {"1": 0.5, "2": 0.5}},
                "protocol": protocol,
            },
            {
                "dataset": "d",
                "reranker": "b",
                "backend": "mlx",
                "device": "mlx-gpu",
                "status": "ok",
                "metrics": {"ndcg@10": 0.75},
                "per_query": {"ndcg@10": {"1": 1.0, "2": 0.5}},
                "perf": {
                    "pairs_per_s": 100.0,
                    "tokens_per_s": 4000.0,
                    "peak_memory_mb": 512.0,
                    "latency_ms": {"p50": 10.0, "p95": 12.5, "p99": 13.0},
                    "load_s": 1.5,
                },
                "protocol": {**protocol, "max_length": 512, "dtype": "float32"},
                "latency_samples_ms": [10.0, 12.0],
                "scenarios": {
                    "single_query": {
                        "scenario": "single_query",
                        "repeats": 1,
                        "pass_s": [0.02],
                        "pairs_per_s": [100.0],
                        "tokens_per_s": [4000.0],
                        "pairs": 2,
                        "tokens": 80,
                        "samples": 2,
                        "latency_ms": {"p50": 10.0, "p90": 11.5, "p95": 12.5, "p99": 13.0},
                    },
                    "offline": {
                        "scenario": "offline",
                        "repeats": 2,
                        "pass_s": [0.01, 0.011],
                        "pairs_per_s": [200.0, 181.8],
                        "tokens_per_s": [8000.0, 7272.7],
                        "pairs": 2,
                        "tokens": 80,
                        "samples": 2,
                        "batches": 1,
                        "scores_agree": True,
                    },
                },
            },
            {
                "dataset": "d",
                "reranker": "c",
                "backend": "torch",
                "device": None,
                "status": "error",
                "error": "worker killed (likely out of memory)",
                "metrics": {},
                "per_query": {},
                "protocol": protocol,
            },
        ],
    }


def test_round_trip(tmp_path):
    obj = sample_results()
    path = save_results(obj, tmp_path / "sub" / "r.json")
    assert path == tmp_path / "sub" / "r.json"
    assert load_results(path) == obj
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left behind
    typed = read_results(path)
    assert typed.runs[1].perf.latency_ms.p95 == 12.5 and typed.complete is True


def schema_2_results() -> dict:
    old = sample_results()
    old["schema"] = 2
    for run in old["runs"]:
        run.pop("scenarios", None)
    return old


def test_schema_1_and_2_files_are_read_as_schema_3(tmp_path):
    old = schema_2_results()
    old["schema"] = 1
    del old["complete"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    loaded = load_results(path)
    assert loaded["schema"] == 3 and loaded["complete"] is None  # not recorded in schema 1
    assert loaded["runs"] == old["runs"]
    path.write_text(json.dumps(schema_2_results()))
    typed = read_results(path)
    assert typed.schema_version == 3 and typed.runs[1].scenarios is None  # schema 2: single_query, in perf


def test_a_run_without_single_query_has_null_single_query_figures(tmp_path):
    obj = sample_results()
    run = obj["runs"][1]
    run["perf"].update(pairs_per_s=None, tokens_per_s=None, latency_ms=None)
    run["latency_samples_ms"] = []
    del run["scenarios"]["single_query"]
    typed = read_results(save_results(obj, tmp_path / "r.json"))
    assert typed.runs[1].perf.pairs_per_s is None and typed.runs[1].scenarios["offline"].pairs_per_s[1] == 181.8
    run["scenarios"]["offline"]["pairs_per_s"] = "fast"
    with pytest.raises(ResultsError, match=r"runs\[1\] \(b on d\)\.scenarios\.offline\.pairs_per_s"):
        validate(obj)


@pytest.mark.parametrize("path", sorted((REPO / "results").glob("*.json")), ids=lambda p: p.name)
def test_every_committed_results_file_loads(path):
    results = load_results(path)
    assert results["runs"] and results["schema"] == 3


def test_save_replaces_atomically_and_keeps_old_file_on_invalid_data(tmp_path):
    path = tmp_path / "r.json"
    save_results(sample_results(), path)
    bad = sample_results()
    del bad["runs"][1]["perf"]["pairs_per_s"]
    with pytest.raises(ResultsError, match="pairs_per_s"):
        save_results(bad, path)
    assert load_results(path) == sample_results()
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


_CRASH = """
import os, signal, sys
from harness.results import store
obj = store.load_results(sys.argv[1])
obj["runs"] = obj["runs"] * 2000  # a large file: the crash comes mid-save
real_fsync = os.fsync
def crash(fd):  # the temporary file is written, the rename has not happened: die as a power cut would
    os.kill(os.getpid(), signal.SIGKILL)
store.os.fsync = crash
store.save_results(obj, sys.argv[1])
"""


def test_a_crash_during_save_keeps_the_old_file_intact(tmp_path):
    path = save_results(sample_results(), tmp_path / "r.json")
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(path)], cwd=REPO, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert path.read_bytes() == before and load_results(path) == sample_results()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "r.json"]
    assert all(n.startswith(".r.json.") and n.endswith(".tmp") for n in leftovers)  # never read as results


def test_files_keep_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_results(sample_results(), tmp_path / "r.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


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
        (lambda o: o.update(schema=4), "schema 4 is not supported"),
        (lambda o: o.update(runs={}), "runs: input should be a valid list"),
        (lambda o: o.pop("environment"), r"environment: missing \(required\)"),
        (lambda o: o["runs"][1].update(status="fine"), r"runs\[1\] \(b on d\)\.status: input should be 'ok' or"),
        (lambda o: o["runs"][2].pop("error"), r"runs\[2\] \(c on d\): an error run needs a non-empty error"),
        (lambda o: o["runs"][1].pop("perf"), r"runs\[1\] \(b on d\): an ok reranker run needs perf"),
        (lambda o: o["runs"][1]["perf"]["latency_ms"].pop("p95"), r"perf\.latency_ms\.p95: missing"),
        (lambda o: o["runs"][1].update(latency_samples_ms="fast"), r"latency_samples_ms: input should be a valid list"),
        (lambda o: o["runs"][0].update(metrics={"ndcg@10": "high"}), r"metrics\.ndcg@10: input should be a valid num"),
        (lambda o: o["runs"][0].update(metrics={"ndcg@10": True}), r"metrics\.ndcg@10: input should be a valid num"),
        (lambda o: o["runs"][0].pop("reranker"), r"runs\[0\]\.reranker: missing \(required\)"),
        (lambda o: o["runs"][0].pop("protocol"), r"protocol: missing \(required\)"),
        (
            lambda o: o["runs"][2].update(
                train={"model": "m", "backend": "mlx", "status": "error", "error": "killed", "exit_code": "nine"}
            ),
            r"runs\[2\] \(c on d\)\.train\.exit_code: input should be a valid integer",
        ),
    ],
)
def test_validation_errors_name_the_place(mutate, message):
    with pytest.raises(ResultsError, match=message):
        validate(_broken(mutate))


def test_every_problem_is_reported_at_once():
    bad = _broken(lambda o: (o["runs"][0].pop("reranker"), o["runs"][1]["perf"].pop("pairs_per_s")))
    with pytest.raises(ResultsError) as info:
        validate(bad)
    assert "runs[0].reranker" in str(info.value) and "perf.pairs_per_s" in str(info.value)


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
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps(sample_results()).replace("Test chip", "Test chïp").encode("latin-1"))
    with pytest.raises(ResultsError, match=r"latin\.json: not UTF-8 text") as info:
        load_results(latin)
    assert "\n" not in str(info.value)


def test_default_output_name():
    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
    assert str(default_output("trec dl/19", when)) == "results/trec_dl_19-20260304T050607Z.json"


def test_default_names_are_unique_for_runs_started_together(tmp_path):
    paths = [claim_default_output("smoke", directory=tmp_path) for _ in range(3)]  # same second
    assert len(set(paths)) == 3 and all(p.exists() for p in paths)


def test_a_second_writer_of_one_output_is_refused(tmp_path):
    path = tmp_path / "r.json"
    with OutputLock(path):
        code = f"from harness.results import OutputLock\nOutputLock({str(path)!r}).acquire()"
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode != 0 and "is being written by another harness run" in proc.stderr
    OutputLock(path).acquire().release()  # free again once the first run ends


def test_a_failed_save_goes_to_a_fallback_path(tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    writer = ResultsWriter(folder / "r.json", log=print)
    writer.save(sample_results())
    folder.rename(tmp_path / "moved")  # the output folder is gone mid-suite, a file in its place: no save can work
    folder.write_text("not a folder")
    written = writer.save(sample_results())
    assert written != folder / "r.json" and load_results(written) == sample_results()
    assert f"results go to {written}" in capsys.readouterr().out
    assert writer.save(sample_results()) == written  # later saves go on there
    written.unlink()
