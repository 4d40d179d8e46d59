"""VALID / INVALID speed verdicts: every repeat's pass time is recorded, and a scenario (and so its run) is INVALID
when its repeats' scores differ (a drifting backend) or differ from the evaluated scores beyond the dtype's
tolerance, when its pass times vary too much, when the machine was loaded, when it has too few samples, or when
min_time_s was not reached within max_repeats. Thresholds come from the suite's ``measure:``."""

from __future__ import annotations

from pathlib import Path

import builders
import numpy as np
import pytest
from faulty_backend import register as register_faulty_backend

from harness.report import build_report
from harness.results import load_results
from harness.run.executor import run_suite
from harness.run.verdict import coefficient_of_variation, judge_run, judge_scenario, score_check
from harness.suite import RerankerSpec, suite_from_dict
from harness.suite.models import MeasureSpec

TESTS = Path(__file__).parents[1]
SMOKE = TESTS.parent / "suites" / "data" / "smoke"
LENIENT = {"min_samples": 1, "max_cv": 1e9, "max_load_per_core": 1e9}  # only the scores can make it INVALID


def steady(**overrides):
    record = {
        "samples": 30,
        "pass_s": [1.0, 1.01, 0.99],
        "repeats_agree": True,
        "max_repeat_abs_diff": 0.0,
        "scores_agree": True,
        "max_abs_diff": 0.0,
        "score_tolerance": {"atol": 1e-4, "rtol": 1e-4},
        "min_time_reached": True,
        "load_avg_before": 0.5,
        "load_avg_after": 0.5,
        "cpu_count": 2,
    }
    return {**record, **overrides}


def test_steady_run_is_valid():
    verdict = judge_scenario(steady(), MeasureSpec())
    assert verdict["status"] == "VALID" and verdict["reasons"] == []
    assert verdict["cv"] == pytest.approx(0.01)  # sample sd of (1.0, 1.01, 0.99) / mean


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (steady(pass_s=[1.0, 2.0, 1.0]), "coefficient of variation 0.433 > max_cv 0.1"),
        (steady(repeats_agree=False, max_repeat_abs_diff=0.002), "scores differ between repeats (max |diff| 0.002"),
        (steady(scores_agree=False, max_abs_diff=0.5), "scores differ from the evaluated scores (max |diff| 0.5"),
        (steady(load_avg_after=9.0), "load average 9.00 on 2 cores"),
        (steady(samples=4), "too few samples: 4 timed calls < min_samples 5"),
        (steady(min_time_reached=False, min_time_s=5.0, repeats=3), "min_time_s 5.0 not reached"),
    ],
    ids=["cv", "repeats", "scenarios", "load", "samples", "min_time"],
)
def test_each_reason_makes_the_scenario_and_the_run_invalid(record, reason):
    verdict = judge_scenario(record, MeasureSpec())
    assert verdict["status"] == "INVALID"
    assert any(reason in r for r in verdict["reasons"]), verdict["reasons"]
    run = judge_run({"single_query": steady(), "offline": record}, MeasureSpec())
    assert run["status"] == "INVALID" and any(r.startswith("offline: ") and reason in r for r in run["reasons"])


@pytest.mark.parametrize(
    ("dtype", "diff", "agree"),
    [
        ("float32", 5e-5, True),
        ("float32", 1e-3, False),
        ("float16", 5e-3, True),
        ("float16", 5e-2, False),
        ("bfloat16", 3e-2, True),
        ("bfloat16", 0.2, False),
    ],
)
def test_score_check_uses_the_dtypes_tolerance(dtype, diff, agree):
    reference = [np.array([0.25, 0.5], dtype=np.float32), np.array([], dtype=np.float32)]
    moved = [[reference[0] + np.float32(diff), reference[1]]]
    max_diff, ok = score_check(moved, reference, dtype)
    assert ok is agree and max_diff == pytest.approx(diff, rel=1e-3)
    assert score_check([[np.array([np.nan, 0.5]), reference[1]]], reference, dtype)[1] is False


def test_coefficient_of_variation_is_sample_sd_over_mean():
    import statistics

    values = [3.0, 4.5, 2.5, 4.0]
    assert coefficient_of_variation(values) == pytest.approx(statistics.stdev(values) / statistics.mean(values))
    assert coefficient_of_variation([1.0]) is None


@pytest.fixture
def faulty_backend(monkeypatch, tmp_path):
    register_faulty_backend(monkeypatch, tmp_path / "cache")


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

    assert any(r.startswith("single_query: scores differ between repeats") for r in drifting["verdict"]["reasons"])
    # the report's cells are tested in tests/harness/test_report.py
    assert "INVALID" in build_report([load_results(out)], [str(out)])
