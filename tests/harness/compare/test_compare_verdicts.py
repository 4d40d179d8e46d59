"""harness compare: planted regressions in edited copies of a committed results file are caught; the tests agree
with scipy; not-comparable inputs exit 2."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.cli import main as harness_main
from harness.compare import Gate
from harness.compare.stats import holm, mann_whitney_p, paired_randomization_p

RESULTS = Path(__file__).resolve().parents[3] / "results" / "trec-dl-local-cpu.json"


@pytest.fixture()
def base(tmp_path):
    """The committed file with every run's speed verdict VALID: the planted regressions are judged as measured on a
    quiet machine (an INVALID run is reported, never gated: test_speed_on_an_invalid_run_is_reported_not_gated)."""
    data = json.loads(RESULTS.read_text())
    for run in reranker_runs(data):
        run["verdict"] = {"status": "VALID", "reasons": []}
        for record in (run.get("scenarios") or {}).values():
            record["verdict"] = {"status": "VALID", "reasons": []}
    path = tmp_path / "base.json"
    path.write_text(json.dumps(data))
    return data, path


def write_head(tmp_path, data, edit):
    head = copy.deepcopy(data)
    edit(head)
    path = tmp_path / "head.json"
    path.write_text(json.dumps(head))
    return path


def reranker_runs(data):
    return [r for r in data["runs"] if r["backend"] != "first_stage" and r["status"] == "ok"]


def compare(*args, fmt="json"):
    return harness_main(["compare", *map(str, args), "--format", fmt])


def test_identical_file_is_no_regression(base, tmp_path, capsys):
    data, path = base
    assert compare(path, write_head(tmp_path, data, lambda h: None)) == 0
    out = json.loads(capsys.readouterr().out)
    assert {v["verdict"] for v in out["quality"]} == {"identical"}
    assert {v["verdict"] for v in out["speed"]} == {"no change"}
    assert out["regressions"] == []


def with_repeats(data, repeats=7, factor=1.0, seed=0):
    """Every run re-timed as ``repeats`` passes with 3% multiplicative noise per call, latencies times factor."""
    rng = np.random.default_rng(seed)
    for run in reranker_runs(data):
        one = run["latency_samples_ms"][: run["perf"]["queries"]]
        run["latency_samples_ms"] = [x * factor * rng.lognormal(0, 0.03) for _ in range(repeats) for x in one]
        run["perf"]["repeats"] = repeats
        run["protocol"]["repeats"] = repeats


def slower_by_a_fifth(base, tmp_path, also=None) -> tuple[Path, Path]:
    """BASE re-timed as 7 noisy passes, and a HEAD whose first reranker's latencies are all 20% higher (``also``:
    a further change to that run)."""
    data, _ = base
    with_repeats(data, seed=1)
    path = tmp_path / "base7.json"
    path.write_text(json.dumps(data))

    def slower(head):
        with_repeats(head, seed=2)
        run = reranker_runs(head)[0]
        run["latency_samples_ms"] = [x * 1.2 for x in run["latency_samples_ms"]]
        if also is not None:
            also(run)

    return path, write_head(tmp_path, data, slower)


def test_twenty_percent_latency_is_a_speed_regression(base, tmp_path, capsys):
    assert compare(*slower_by_a_fifth(base, tmp_path)) == 1
    out = json.loads(capsys.readouterr().out)
    slow = [v for v in out["speed"] if v["regression"]]
    assert len(slow) == 1 and slow[0]["ratio"] == pytest.approx(1.2, rel=0.05)
    assert slow[0]["samples"] == "per-repeat pass time"
    assert {v["verdict"] for v in out["speed"] if not v["regression"]} == {"no change"}  # noise alone: no alarm


def test_speed_gate_off_reports_but_passes(base, tmp_path, capsys):
    path, head = slower_by_a_fifth(base, tmp_path)
    assert harness_main(["compare", str(path), str(head), "--format", "json", "--no-speed-gate"]) == 0
    assert "slower" in {v["verdict"] for v in json.loads(capsys.readouterr().out)["speed"]}


def test_quality_degraded_on_ten_percent_of_queries_is_a_regression(base, tmp_path, capsys):
    data, path = base

    def degrade(head):
        run = reranker_runs(head)[0]
        values = run["per_query"]["ndcg@10"]
        judged = [q for q in sorted(values) if values[q]]  # halving a zero changes nothing
        for qid in judged[: max(1, len(values) // 10)]:
            values[qid] = values[qid] * 0.5

    assert compare(path, write_head(tmp_path, data, degrade)) == 1
    out = json.loads(capsys.readouterr().out)
    worse = [v for v in out["quality"] if v["regression"]]
    assert [(v["metric"], v["verdict"]) for v in worse] == [("ndcg@10", "worse")]


def test_extra_memory_is_a_memory_regression(base, tmp_path, capsys):
    data, path = base

    def more(head):
        run = reranker_runs(head)[0]
        run["perf"]["peak_memory_mb"] *= 1.5

    assert compare(path, write_head(tmp_path, data, more)) == 1
    assert [v["verdict"] for v in json.loads(capsys.readouterr().out)["memory"] if v["regression"]] == ["higher"]


def test_different_dataset_fingerprints_exit_2_and_are_named(base, tmp_path, capsys):
    data, path = base

    def other(head):
        reranker_runs(head)[0]["protocol"]["dataset_fingerprint"] = "0" * 64

    assert compare(path, write_head(tmp_path, data, other)) == 2
    assert "dataset_fingerprint" in capsys.readouterr().err


def test_bad_file_exits_2(base, tmp_path, capsys):
    _, path = base
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert compare(path, bad) == 2
    assert "bad.json" in capsys.readouterr().err


def test_markdown_names_the_regression(base, tmp_path, capsys):
    data, path = base

    def more(head):
        reranker_runs(head)[0]["perf"]["peak_memory_mb"] *= 2

    assert compare(path, write_head(tmp_path, data, more), fmt="md") == 1
    text = capsys.readouterr().out
    assert text.startswith("## harness compare: REGRESSION") and "❌ memory:" in text


def test_gate_section_read_from_yaml(base, tmp_path, capsys):
    data, path = base

    def more(head):
        reranker_runs(head)[0]["perf"]["peak_memory_mb"] *= 1.5

    gate = tmp_path / "gate.yaml"
    gate.write_text("gate:\n  memory_factor: 2.0\n")
    head = write_head(tmp_path, data, more)
    assert harness_main(["compare", str(path), str(head), "--gate", str(gate), "--format", "json"]) == 0
    gate.write_text("gate:\n  memory_factr: 2.0\n")
    assert harness_main(["compare", str(path), str(head), "--gate", str(gate)]) == 2
    assert "memory_factr" in capsys.readouterr().err


def test_per_repeat_samples_used_when_there_are_enough_repeats(base):
    data, _ = base
    from harness.compare.verdicts import speed_samples
    from harness.results.models import Run

    run = copy.deepcopy(reranker_runs(data)[0])
    n = len(run["latency_samples_ms"])
    run["latency_samples_ms"] = run["latency_samples_ms"] * 5
    run["perf"]["repeats"] = 5
    kind, samples = speed_samples(Run.model_validate(run), Gate().min_repeats_for_repeat_samples)
    assert kind == "per-repeat pass time" and len(samples) == 5
    assert samples[0] == pytest.approx(sum(run["latency_samples_ms"][:n]))


def test_paired_randomization_matches_scipy_permutation_test():
    rng = np.random.default_rng(1)
    x = rng.random(12)
    y = x + rng.normal(0.05, 0.1, 12)
    ref = stats.permutation_test(
        (x, y), lambda a, b: np.mean(b - a), permutation_type="samples", n_resamples=np.inf, alternative="two-sided"
    ).pvalue
    assert paired_randomization_p(x, y) == pytest.approx(ref)
    big_x, big_y = rng.random(40), rng.random(40)
    ref = stats.permutation_test(
        (big_x, big_y),
        lambda a, b: np.mean(b - a),
        permutation_type="samples",
        n_resamples=20000,
        alternative="two-sided",
        random_state=0,
    ).pvalue
    assert paired_randomization_p(big_x, big_y, permutations=20000) == pytest.approx(ref, abs=0.02)


def test_mann_whitney_and_holm_match_references():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [2.5, 6.0, 7.0, 8.0, 9.0]
    assert mann_whitney_p(a, b) == pytest.approx(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    # Holm by hand: sorted p 0.01, 0.02, 0.04 -> 3*0.01, max(.03, 2*.02), max(.04, .04)
    assert holm([0.04, 0.01, None, 0.02]) == pytest.approx([0.04, 0.03, None, 0.04])


def test_gate_recorded_in_head_is_used_and_flags_override(base, tmp_path, capsys):
    data, path = base

    def more(head):
        head["gate"] = {"memory_factor": 2.0}  # what harness run records from the suite's gate: section
        reranker_runs(head)[0]["perf"]["peak_memory_mb"] *= 1.5

    head = write_head(tmp_path, data, more)
    assert compare(path, head) == 0
    assert json.loads(capsys.readouterr().out)["gate"]["memory_factor"] == 2.0
    assert compare(path, head, "--memory-factor", "1.05") == 1  # a flag beats the recorded gate
    capsys.readouterr()
    bad = json.loads(head.read_text())
    bad["gate"] = {"memory_factr": 2.0}
    head.write_text(json.dumps(bad))
    assert compare(path, head) == 2
    assert "gate.memory_factr: unknown key (did you mean 'memory_factor'?)" in capsys.readouterr().err


def test_speed_on_an_invalid_run_is_reported_not_gated(base, tmp_path, capsys):
    def on_a_loaded_machine(run):
        run["verdict"] = {"status": "INVALID", "reasons": ["machine loaded"], "cv": 0.01}
        for record in (run.get("scenarios") or {}).values():  # schema 3: each scenario's verdict, as judge_run sets
            record["verdict"] = {"status": "INVALID", "reasons": ["machine loaded"]}

    path, head = slower_by_a_fifth(base, tmp_path, also=on_a_loaded_machine)
    assert compare(path, head) == 0
    slow = [v for v in json.loads(capsys.readouterr().out)["speed"] if v["verdict"] == "slower"]
    assert [(v["invalid"], v["regression"]) for v in slow] == [(["head"], False)]
    assert compare(path, head, "--gate-invalid-speed") == 1


def test_offline_scenario_gets_its_own_speed_verdict(base, tmp_path, capsys):
    """Schema-3 runs: one speed verdict per scenario both runs measured, on that scenario's pass times."""
    data, _ = base
    rng = np.random.default_rng(3)

    def offline(run, factor):
        passes = [factor * rng.lognormal(0, 0.02) for _ in range(7)]
        run["scenarios"] = {
            "offline": {
                "scenario": "offline",
                "repeats": 7,
                "pass_s": passes,
                "pairs_per_s": [100 / s for s in passes],
                "tokens_per_s": [1.0] * 7,
                "pairs": 100,
                "tokens": 100,
                "samples": 7,
            }
        }

    for run in reranker_runs(data):
        offline(run, 1.0)
    path = tmp_path / "base-offline.json"
    path.write_text(json.dumps(data))

    def slower_offline(head):
        offline(reranker_runs(head)[0], 1.25)
        for run in reranker_runs(head)[1:]:
            offline(run, 1.0)

    assert compare(path, write_head(tmp_path, data, slower_offline)) == 1
    out = json.loads(capsys.readouterr().out)
    assert {v["scenario"] for v in out["speed"]} == {"offline"}
    slow = [v for v in out["speed"] if v["regression"]]
    assert len(slow) == 1 and slow[0]["ratio"] == pytest.approx(1.25, rel=0.05)
    assert slow[0]["reranker"] == reranker_runs(data)[0]["reranker"] and slow[0]["samples"] == "per-repeat pass time"


def test_every_gate_flag_reaches_the_verdicts_gate_and_overrides_the_suite(base, tmp_path, capsys):
    """Each threshold flag of `harness compare` lands in the gate the verdicts use (reported in the JSON), over a
    --suite file's gate: section; a flag not given keeps the file's value."""
    data, path = base
    head = write_head(tmp_path, data, lambda h: None)
    suite = tmp_path / "suite.yaml"
    suite.write_text("gate: {speed_factor: 1.5, memory_factor: 1.3, quality_alpha: 0.2}\n")
    flags = ["--quality-tolerance", "0.5", "--quality-alpha", "0.01", "--require-significance"]
    flags += ["--speed-factor", "1.25", "--speed-alpha", "0.02", "--no-memory-gate", "--suite", str(suite)]
    assert harness_main(["compare", str(path), str(head), "--format", "json", *flags]) == 0
    gate = json.loads(capsys.readouterr().out)["gate"]
    quality = (gate["quality_tolerance"], gate["quality_alpha"], gate["quality_requires_significance"])
    assert quality == (0.5, 0.01, True)
    assert (gate["speed_factor"], gate["speed_alpha"], gate["memory_gate"]) == (1.25, 0.02, False)
    assert gate["memory_factor"] == 1.3  # from the file


def test_no_memory_gate_reports_a_memory_rise_without_failing(base, tmp_path, capsys):
    data, path = base

    def heavier(head):
        for run in reranker_runs(head):
            if run["perf"].get("peak_memory_mb"):
                run["perf"]["peak_memory_mb"] *= 1.5

    head = write_head(tmp_path, data, heavier)
    assert compare(path, head) == 1
    gated = [v for v in json.loads(capsys.readouterr().out)["memory"] if v["verdict"] == "higher"]
    assert gated and all(v["regression"] for v in gated)
    assert harness_main(["compare", str(path), str(head), "--format", "json", "--no-memory-gate"]) == 0
    reported = [v for v in json.loads(capsys.readouterr().out)["memory"] if v["verdict"] == "higher"]
    assert len(reported) == len(gated) and not any(v["regression"] for v in reported)
