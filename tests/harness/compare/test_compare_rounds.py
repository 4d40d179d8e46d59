"""harness compare over interleaved rounds (``harness compare B1 H1 B2 H2``, harness.compare.rounds): a speed or
memory regression must repeat in every round, a quality drop counts in any round, rounds must measure the same
commits, and an INVALID run in any round keeps speed from gating. Results files are edited copies of a committed
file with synthetic pass times (one per repeat, as the single_query scenario records them)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main as harness_main

RESULTS = Path(__file__).resolve().parents[3] / "results" / "trec-dl-local-cpu.json"
REPEATS = 7


def reranker_runs(data):
    return [r for r in data["runs"] if r["backend"] != "first_stage" and r["status"] == "ok"]


@pytest.fixture()
def template():
    """The committed file, every run VALID and one commit: each test sets pass times per run."""
    data = json.loads(RESULTS.read_text())
    data["environment"].setdefault("git", {})["commit"] = "a" * 40
    for run in reranker_runs(data):
        run["verdict"] = {"status": "VALID", "reasons": []}
    return data


def timed(data, level, seed, slow=None, invalid=None):
    """A copy with every run's single_query passes ~ level s (1% noise); ``slow``: {run index: factor}."""
    out = copy.deepcopy(data)
    rng = np.random.default_rng(seed)
    for i, run in enumerate(reranker_runs(out)):
        factor = level * (slow or {}).get(i, 1.0)
        passes = [factor * rng.lognormal(0, 0.01) for _ in range(REPEATS)]
        verdict = {"status": "INVALID", "reasons": ["machine loaded"]} if invalid == i else {"status": "VALID"}
        run["verdict"] = {**verdict, "reasons": verdict.get("reasons", [])}
        run["scenarios"] = {
            "single_query": {
                "scenario": "single_query",
                "repeats": REPEATS,
                "pass_s": passes,
                "pairs_per_s": [100 / s for s in passes],
                "tokens_per_s": [1.0] * REPEATS,
                "pairs": 100,
                "tokens": 100,
                "samples": REPEATS,
                "verdict": {**verdict, "reasons": verdict.get("reasons", [])},
            }
        }
    return out


def write(tmp_path, name, data):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def compare(*files):
    return harness_main(["compare", *files, "--format", "json"])


def slow_in_round_one_only(template, tmp_path) -> list[str]:
    """B1 H1 B2 H2: round 1's head has run 0 30% slower (a drifting machine), round 2's is equal."""
    return [
        write(tmp_path, "b1", timed(template, 1.0, 1)),
        write(tmp_path, "h1", timed(template, 1.0, 2, slow={0: 1.3})),
        write(tmp_path, "b2", timed(template, 1.0, 3)),
        write(tmp_path, "h2", timed(template, 1.0, 4)),
    ]


def test_a_slowdown_in_one_round_only_is_not_a_regression(template, tmp_path, capsys):
    files = slow_in_round_one_only(template, tmp_path)
    assert compare(*files[:2]) == 1  # round 1 alone: the old protocol would fail
    capsys.readouterr()
    assert compare(*files) == 0
    out = json.loads(capsys.readouterr().out)
    row = next(v for v in out["speed"] if v["reranker"] == reranker_runs(template)[0]["reranker"])
    assert [r["verdict"] for r in row["rounds"]] == ["slower", "no change"]
    assert row["verdict"] != "slower" and not row["regression"]
    assert [r["exit_status"] for r in out["rounds"]] == [1, 0]
    assert row["base_n"] == row["head_n"] == 2 * REPEATS  # pooled over both rounds


def test_a_slowdown_in_every_round_is_a_regression(template, tmp_path, capsys):
    # round 2's machine is 40% slower than round 1's for both sides: the pooled ratio is still head/base
    files = [
        write(tmp_path, "b1", timed(template, 1.0, 1)),
        write(tmp_path, "h1", timed(template, 1.0, 2, slow={0: 1.2})),
        write(tmp_path, "b2", timed(template, 1.4, 3)),
        write(tmp_path, "h2", timed(template, 1.4, 4, slow={0: 1.2})),
    ]
    assert compare(*files) == 1
    out = json.loads(capsys.readouterr().out)
    slow = [v for v in out["speed"] if v["regression"]]
    assert len(slow) == 1 and slow[0]["verdict"] == "slower"
    assert [r["verdict"] for r in slow[0]["rounds"]] == ["slower", "slower"]
    assert slow[0]["ratio"] == pytest.approx(1.2, rel=0.05)
    assert {v["verdict"] for v in out["speed"] if not v["regression"]} == {"no change"}


def test_an_invalid_run_in_any_round_keeps_speed_from_gating(template, tmp_path, capsys):
    files = [
        write(tmp_path, "b1", timed(template, 1.0, 1)),
        write(tmp_path, "h1", timed(template, 1.0, 2, slow={0: 1.2})),
        write(tmp_path, "b2", timed(template, 1.0, 3)),
        write(tmp_path, "h2", timed(template, 1.0, 4, slow={0: 1.2}, invalid=0)),
    ]
    assert compare(*files) == 0
    row = json.loads(capsys.readouterr().out)["speed"][0]
    assert (row["verdict"], row["invalid"], row["regression"]) == ("slower", ["head 2"], False)
    assert harness_main(["compare", *files, "--gate-invalid-speed"]) == 1


def test_memory_must_rise_in_every_round_quality_in_any(template, tmp_path, capsys):
    def more_memory(data):
        reranker_runs(data)[0]["perf"]["peak_memory_mb"] *= 1.5
        return data

    def degraded(data):
        values = reranker_runs(data)[0]["per_query"]["ndcg@10"]
        for qid in [q for q in sorted(values) if values[q]][:2]:
            values[qid] *= 0.5
        return data

    base = [write(tmp_path, f"b{k}", timed(template, 1.0, k)) for k in (1, 2)]
    once = write(tmp_path, "mem-once", more_memory(timed(template, 1.0, 3)))
    plain = write(tmp_path, "plain", timed(template, 1.0, 4))
    again = write(tmp_path, "mem-again", more_memory(timed(template, 1.0, 5)))
    assert compare(base[0], once, base[1], plain) == 0  # memory up in round 1 only
    assert [v["verdict"] for v in json.loads(capsys.readouterr().out)["memory"]][0] == "no change"
    assert compare(base[0], once, base[1], again) == 1
    assert [v["verdict"] for v in json.loads(capsys.readouterr().out)["memory"] if v["regression"]] == ["higher"]
    worse = write(tmp_path, "worse", degraded(timed(template, 1.0, 6)))
    assert compare(base[0], plain, base[1], worse) == 1  # quality is deterministic: one round is enough
    out = json.loads(capsys.readouterr().out)
    assert [(v["metric"], v["verdict"]) for v in out["quality"] if v["regression"]] == [("ndcg@10", "worse")]
    assert any("rounds disagree on quality" in n for n in out["notes"])


def test_rounds_must_measure_the_same_commits(template, tmp_path, capsys):
    other = timed(template, 1.0, 3)
    other["environment"]["git"]["commit"] = "b" * 40
    files = [
        write(tmp_path, "b1", timed(template, 1.0, 1)),
        write(tmp_path, "h1", timed(template, 1.0, 2)),
        write(tmp_path, "b2", other),
        write(tmp_path, "h2", timed(template, 1.0, 4)),
    ]
    assert compare(*files) == 2
    assert "base commit" in capsys.readouterr().err
    assert compare(*files[:3]) == 2
    assert "pairs (one per round)" in capsys.readouterr().err


def test_markdown_lists_each_round(template, tmp_path, capsys):
    files = slow_in_round_one_only(template, tmp_path)
    assert harness_main(["compare", *files]) == 0
    text = capsys.readouterr().out
    assert "- round 1 (" in text and "- round 2 (" in text
    assert re.search(r"rounds: ×1\.[23]\d\d p=\S+ slower, ×[01]\.\d{3} p=\S+ no change", text)
