"""VALID / INVALID speed verdicts: every repeat's pass time is recorded, and a run is INVALID when its repeats'
scores differ (a drifting backend), when its pass times vary too much, when the machine was loaded, or when it has
too few samples. Thresholds come from the suite's ``measure:``."""

from __future__ import annotations

from pathlib import Path

import builders
import pytest

from harness import backends
from harness.report import build_report
from harness.report.speed import median_interval, pass_rates, speed_cell
from harness.results import load_results
from harness.run.executor import run_suite
from harness.run.verdict import coefficient_of_variation, judge
from harness.suite import RerankerSpec, suite_from_dict
from harness.suite.models import MeasureSpec

TESTS = Path(__file__).parents[1]
SMOKE = TESTS.parent / "suites" / "data" / "smoke"
LENIENT = {"min_samples": 1, "max_cv": 1e9, "max_load_per_core": 1e9}  # only the scores can make it INVALID


def steady(**overrides):
    perf = {
        "pass_s": [1.0, 1.01, 0.99],
        "repeats_identical": True,
        "max_repeat_abs_diff": 0.0,
        "load_avg_before": 0.5,
        "load_avg_after": 0.5,
        "cpu_count": 2,
    }
    return {**perf, **overrides}


def test_steady_run_is_valid():
    verdict = judge(steady(), 30, MeasureSpec())
    assert verdict["status"] == "VALID" and verdict["reasons"] == []
    assert verdict["cv"] == pytest.approx(0.01)  # sample sd of (1.0, 1.01, 0.99) / mean


@pytest.mark.parametrize(
    ("perf", "samples", "reason"),
    [
        (steady(pass_s=[1.0, 2.0, 1.0]), 30, "coefficient of variation 0.433 > max_cv 0.1"),
        (steady(repeats_identical=False, max_repeat_abs_diff=0.002), 30, "scores differ between repeats"),
        (steady(load_avg_after=9.0), 30, "load average 9.00 on 2 cores"),
        (steady(), 4, "too few samples: 4 latency samples < min_samples 5"),
    ],
    ids=["cv", "scores", "load", "samples"],
)
def test_each_reason_makes_the_run_invalid(perf, samples, reason):
    verdict = judge(perf, samples, MeasureSpec())
    assert verdict["status"] == "INVALID"
    assert any(reason in r for r in verdict["reasons"]), verdict["reasons"]


def test_coefficient_of_variation_is_sample_sd_over_mean():
    import statistics

    values = [3.0, 4.5, 2.5, 4.0]
    assert coefficient_of_variation(values) == pytest.approx(statistics.stdev(values) / statistics.mean(values))
    assert coefficient_of_variation([1.0]) is None


@pytest.fixture
def faulty_backend(monkeypatch, tmp_path):
    monkeypatch.setitem(backends.BACKENDS, "faulty", backends.BackendInfo("faulty", "faulty_backend", "test faults"))
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(tmp_path / "cache"))


def test_repeats_are_recorded_and_a_drifting_backend_is_invalid(tmp_path, faulty_backend):
    model = builders.bert_cross_encoder(tmp_path / "bert", seed=2, initializer_range=0.2)
    data = {
        "name": "verdict-test",
        "metrics": ["ndcg@10"],
        "datasets": [
            {
                "name": "smoke",
                "candidates": str(SMOKE / "candidates.json"),
                "qrels": str(SMOKE / "qrels.txt"),
                "top_k": 10,
            }
        ],
        "rerankers": [{"name": "placeholder", "backend": "mlx", "model": "local:none"}],
        "measure": {"warmup_queries": 0, "repeats": 3, **LENIENT},
    }
    suite = suite_from_dict(data, tmp_path, source="test")
    suite.rerankers = [
        RerankerSpec(name=n, backend="faulty", model=str(model), options={"fault": f})
        for n, f in (("steady", "none"), ("drifting", "drift"))
    ]
    out = tmp_path / "r.json"
    run_suite(suite, output=out, progress=False, environment={"chip": {"name": "test"}})
    runs = {r["reranker"]: r for r in load_results(out)["runs"]}
    steady_run, drifting = runs["steady"], runs["drifting"]
    assert len(steady_run["perf"]["pass_s"]) == 3
    assert len(steady_run["latency_samples_ms"]) == 3 * steady_run["perf"]["queries"]
    assert steady_run["verdict"]["status"] == "VALID", steady_run["verdict"]
    assert drifting["verdict"]["status"] == "INVALID"
    assert any("scores differ between repeats" in r for r in drifting["verdict"]["reasons"])
    assert drifting["metrics"] == steady_run["metrics"]  # quality from the first pass: the drift keeps the order

    report = build_report([load_results(out)], [str(out)])
    low_high = median_interval(pass_rates(steady_run["perf"]))
    assert low_high is not None and speed_cell(steady_run) in report
    assert speed_cell(steady_run).endswith(" VALID") and speed_cell(drifting).endswith(" INVALID")
    assert "INVALID: scores differ between repeats" in report


def test_speed_cell_is_the_median_with_a_bootstrap_interval():
    run = {
        "perf": {"pairs_per_s": 95.0, "pairs": 100, "pass_s": [1.0, 1.25, 0.8, 1.0, 1.1]},
        "verdict": {"status": "VALID", "reasons": []},
    }
    rates = [100.0, 80.0, 125.0, 100.0, 100 / 1.1]
    median, low, high = median_interval(rates)
    assert median == pytest.approx(100.0) and min(rates) <= low <= median <= high <= max(rates)
    assert speed_cell(run) == f"100.0 [{low:.1f}, {high:.1f}] VALID"
    assert speed_cell({"perf": {"pairs_per_s": 95.0}}) == "95.0"  # a file from before repeats were recorded
